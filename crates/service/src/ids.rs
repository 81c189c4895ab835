//! New ids: a type prefix and a UUIDv7 in hex, so ids sort roughly by creation time and
//! reveal nothing else.

use giftd_domain::{
    AdjustmentId, ApiKeyId, AuditEventId, CardId, CheckoutId, HoldId, MerchantId, ProgramId, StaffId,
    StaffSessionId, TransactionId,
};

fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::now_v7().simple())
}

pub fn merchant() -> MerchantId {
    MerchantId::new(new_id(MerchantId::PREFIX))
}

pub fn program() -> ProgramId {
    ProgramId::new(new_id(ProgramId::PREFIX))
}

pub fn card() -> CardId {
    CardId::new(new_id(CardId::PREFIX))
}

pub fn hold() -> HoldId {
    HoldId::new(new_id(HoldId::PREFIX))
}

pub fn transaction() -> TransactionId {
    TransactionId::new(new_id(TransactionId::PREFIX))
}

pub fn api_key() -> ApiKeyId {
    ApiKeyId::new(new_id(ApiKeyId::PREFIX))
}

pub fn adjustment() -> AdjustmentId {
    AdjustmentId::new(new_id(AdjustmentId::PREFIX))
}

pub fn audit_event() -> AuditEventId {
    AuditEventId::new(new_id(AuditEventId::PREFIX))
}

pub fn staff() -> StaffId {
    StaffId::new(new_id(StaffId::PREFIX))
}

pub fn staff_session() -> StaffSessionId {
    StaffSessionId::new(new_id(StaffSessionId::PREFIX))
}

pub fn checkout() -> CheckoutId {
    CheckoutId::new(new_id(CheckoutId::PREFIX))
}

/// An id inside a checkout (a tender, a refund): `prefix` and a UUIDv7.
pub fn prefixed(prefix: &str) -> String {
    new_id(prefix)
}

pub fn cardholder_link() -> giftd_domain::CardholderLinkId {
    giftd_domain::CardholderLinkId::new(new_id(giftd_domain::CardholderLinkId::PREFIX))
}
