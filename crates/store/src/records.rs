//! Rows as the service sees them: domain snapshots plus what is stored beside them.

use giftd_domain::operations::{CardSnapshot, HoldSnapshot};
use giftd_domain::{
    CardId, CardState, CheckoutId, CloseReason, HoldId, MerchantId, ProgramId, Timestamp, TransactionId,
    TransactionType,
};

/// A card as stored. The number is only ever here encrypted, the security code only hashed.
#[derive(Debug, Clone)]
pub struct CardRecord {
    pub merchant_id: MerchantId,
    pub snapshot: CardSnapshot,
    /// Why the card was closed, when it is.
    pub closed_reason: Option<CloseReason>,
    pub last4: String,
    pub number_ciphertext: Vec<u8>,
    pub number_fingerprint: Vec<u8>,
    pub security_code_hash: Vec<u8>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionRecord {
    pub id: TransactionId,
    pub merchant_id: MerchantId,
    pub card_id: CardId,
    pub transaction_type: TransactionType,
    pub amount: i64,
    pub currency: String,
    pub balance_before: i64,
    pub balance_after: i64,
    pub reference: Option<String>,
    pub reverses: Option<TransactionId>,
    pub hold_id: Option<HoldId>,
    pub created_at: Timestamp,
}

/// What the service adds to a decision when appending it.
#[derive(Debug, Clone)]
pub struct TransactionMeta {
    pub id: TransactionId,
    pub reference: Option<String>,
    pub reverses: Option<TransactionId>,
    pub hold_id: Option<HoldId>,
    pub now: Timestamp,
}

#[derive(Debug, Clone)]
pub struct HoldRecord {
    pub merchant_id: MerchantId,
    pub snapshot: HoldSnapshot,
    pub captured_amount: i64,
    pub created_at: Timestamp,
}

/// A stored answer to an idempotent request. The body is stored as the service gives it (the
/// service encrypts it, since a card's creation response carries its number).
#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    pub request_hash: Vec<u8>,
    pub status: u16,
    pub body: Vec<u8>,
    pub created_at: Timestamp,
}

/// An API key as stored: its keyed hash, never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: giftd_domain::ApiKeyId,
    pub merchant_id: giftd_domain::MerchantId,
    pub name: String,
    pub scope: giftd_domain::Scope,
    /// The key's first characters, to tell keys apart (none for keys made before they were kept).
    pub prefix: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
}

/// A page of a list, newest first. `cursor` is the id of the last item of the previous page.
#[derive(Debug, Clone)]
pub struct Page {
    pub limit: u32,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct CardFilter {
    pub state: Option<CardState>,
    pub program_id: Option<ProgramId>,
}

/// A checkout as stored: its state is a JSON document the service owns (the store neither
/// reads nor decides anything in it); `version` guards concurrent drivers.
#[derive(Debug, Clone)]
pub struct CheckoutRow {
    pub id: CheckoutId,
    pub merchant_id: MerchantId,
    pub state: String,
    pub version: i64,
    /// A step is left to run.
    pub open: bool,
    /// The recovery loop leaves the checkout alone until then.
    pub lease_until: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
