//! Rows as the service sees them: domain snapshots plus what is stored beside them.

use giftd_domain::operations::{CardSnapshot, HoldSnapshot};
use giftd_domain::{
    CardId, CardState, Channel, CheckoutId, CloseReason, HoldId, MerchantId, ProgramId, Timestamp,
    TransactionId, TransactionType,
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
    /// The front-end it came through; `None` for a transaction written before migration 0020,
    /// which did not record it.
    pub channel: Option<Channel>,
    pub created_at: Timestamp,
}

/// What the service adds to a decision when appending it.
#[derive(Debug, Clone)]
pub struct TransactionMeta {
    pub id: TransactionId,
    pub reference: Option<String>,
    pub reverses: Option<TransactionId>,
    pub hold_id: Option<HoldId>,
    /// The front-end the request came through.
    pub channel: Channel,
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

/// A staff member as stored: the password only as its argon2id hash (a PHC string), the TOTP
/// secret only encrypted. Neither shows in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct StaffRecord {
    pub id: giftd_domain::StaffId,
    pub merchant_id: giftd_domain::MerchantId,
    /// Lower case, unique across giftd.
    pub email: String,
    pub role: giftd_domain::Role,
    pub password_hash: String,
    /// Set while the password is a temporary one: it must be changed at sign-in, and stops
    /// working at this time.
    pub temporary_password_expires_at: Option<Timestamp>,
    /// The TOTP secret, encrypted; set from enrolment on, in use once `totp_enabled_at` is.
    pub totp_secret: Option<Vec<u8>>,
    pub totp_enabled_at: Option<Timestamp>,
    /// The last TOTP time step accepted: a code is never accepted twice.
    pub totp_last_step: Option<i64>,
    /// Failed sign-ins, under the same lockout rule as security codes.
    pub attempts: giftd_domain::lockout::Attempts,
    pub created_at: Timestamp,
    pub disabled_at: Option<Timestamp>,
    pub last_sign_in_at: Option<Timestamp>,
}

impl std::fmt::Debug for StaffRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaffRecord")
            .field("id", &self.id)
            .field("merchant_id", &self.merchant_id)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("password_hash", &"redacted")
            .field(
                "temporary_password_expires_at",
                &self.temporary_password_expires_at,
            )
            .field("totp_secret", &self.totp_secret.as_ref().map(|_| "redacted"))
            .field("totp_enabled_at", &self.totp_enabled_at)
            .field("attempts", &self.attempts)
            .field("created_at", &self.created_at)
            .field("disabled_at", &self.disabled_at)
            .field("last_sign_in_at", &self.last_sign_in_at)
            .finish_non_exhaustive()
    }
}

/// A staff member's session as stored: the keyed hash of its token, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffSessionRecord {
    pub id: giftd_domain::StaffSessionId,
    pub staff_id: giftd_domain::StaffId,
    pub merchant_id: giftd_domain::MerchantId,
    pub created_at: Timestamp,
    /// When it was last used (recorded at most about once a minute).
    pub last_seen_at: Timestamp,
    /// Its absolute end, however active it is.
    pub expires_at: Timestamp,
    /// When it was signed out or ended by a change to its staff member.
    pub ended_at: Option<Timestamp>,
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
    /// The last 4 digits of the number (the support desk's search).
    pub last4: Option<String>,
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
