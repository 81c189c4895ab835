//! The read models front-ends render. The HTTP crate depends on this crate and not on
//! `giftd-store`, so everything it shows comes through here: a card without the hash of its
//! security code or its number's fingerprint ([`Card`]), and the store's plain rows (a
//! transaction, a hold, a report line, a webhook event, the pools' statistics and the names of
//! the store's metrics) re-exported under this crate's name, since they carry nothing a
//! front-end must not see.

use giftd_domain::operations::CardSnapshot;
use giftd_domain::{CloseReason, MerchantId, Timestamp};
use giftd_store::CardRecord;

pub use giftd_store::{
    ActivityLine, AdjustmentRecord, ApiKeyRecord, AttemptRow, AuditEventRow, AuditFilter, CardFilter,
    ChannelLine, DeliveryRow, DormantCard, EventRow, HoldRecord, LEDGER_TRANSACTIONS_TOTAL, LiabilityLine,
    Page, PoolStats, TransactionRecord, WRITE_JOBS_TOTAL,
};

/// A card as front-ends see it: its state and last 4 digits. Its number stays encrypted and
/// private to this crate (the Gr4vy facade's `bin` is decrypted here, `gr4vy.rs`); the hash of
/// its security code and its number's fingerprint are not carried at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    pub merchant_id: MerchantId,
    pub snapshot: CardSnapshot,
    /// Why the card was closed, when it is.
    pub closed_reason: Option<CloseReason>,
    pub last4: String,
    pub created_at: Timestamp,
    pub(crate) number_ciphertext: Vec<u8>,
}

impl From<CardRecord> for Card {
    fn from(record: CardRecord) -> Self {
        Card {
            merchant_id: record.merchant_id,
            snapshot: record.snapshot,
            closed_reason: record.closed_reason,
            last4: record.last4,
            created_at: record.created_at,
            number_ciphertext: record.number_ciphertext,
        }
    }
}
