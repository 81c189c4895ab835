//! giftd's pure business rules: money, card numbers and secrets, card and hold states, program
//! rules, ledger entries, and the decisions every operation takes.
//!
//! Nothing here does IO, reads a clock or draws randomness on its own: time comes in as a
//! [`Timestamp`] argument and randomness as an `&mut impl Rng`. No async, no SQL, no HTTP.
//! Every value that exists is valid ("parse, don't validate"): constructors refuse bad input.

pub mod access;
pub mod adjustment;
pub mod card;
pub mod checkout;
pub mod error;
pub mod ids;
pub mod ledger;
pub mod linked;
pub mod lockout;
pub mod major_units;
pub mod money;
pub mod operations;
pub mod program;
pub mod staff;
pub mod stock;
pub mod stored_value;
pub mod time;
pub mod wallet;

pub use access::{Access, Scope};
pub use card::{CardKind, CardNumber, CardState, CloseReason, SecurityCode};
pub use error::DomainError;
pub use ids::{
    AdjustmentId, ApiKeyId, AuditEventId, CardId, CardholderLinkId, CheckoutId, EventId, HoldId, MerchantId,
    ProgramId, StaffId, StaffSessionId, TransactionId, WebhookDeliveryId, WebhookEndpointId,
};
pub use ledger::{Account, Channel, JournalEntry, Posting, TransactionType};
pub use money::{Amount, Currency};
pub use program::{NewProgram, Program, ProgramChanges};
pub use staff::Role;
pub use time::{Date, Timestamp};
