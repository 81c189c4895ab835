//! The business outcomes an operation can be refused with. These are not failures of the
//! system: each front-end maps them, variant by variant, to its own status codes and bodies.

use crate::card::CardState;
use crate::ledger::TransactionType;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("invalid amount: {reason}")]
    InvalidAmount { reason: String },
    #[error("the card is in {card}, the request in {requested}")]
    CurrencyMismatch {
        card: &'static str,
        requested: &'static str,
    },
    #[error("insufficient funds: {available} available, {requested} requested")]
    InsufficientFunds { available: i64, requested: i64 },
    #[error("the card is {state}")]
    CardNotActive { state: CardState },
    #[error("the card has expired")]
    CardExpired,
    #[error("too many wrong security codes; the card is locked for now")]
    CardLocked { locked_until_millis: i64 },
    #[error("unknown card number or wrong security code")]
    InvalidCard,
    #[error("limit exceeded: {reason}")]
    LimitExceeded { reason: String },
    #[error("the program does not allow reloading its cards")]
    NotReloadable,
    #[error("the hold is {state}, not pending")]
    HoldNotPending { state: &'static str },
    #[error("not reversible: {reason}")]
    NotReversible { reason: String },
    #[error("refund of {requested} exceeds the {refundable} still refundable")]
    RefundExceedsAmount { refundable: i64, requested: i64 },
    #[error("a {transaction_type} cannot be refunded")]
    NotRefundable { transaction_type: TransactionType },
    #[error("the card is {state}; {reason}")]
    InvalidState { state: CardState, reason: String },
    /// A checkout's state does not allow what was asked (capture a voided checkout, ...).
    #[error("{reason}")]
    CheckoutState { reason: String },
    #[error("the card still holds {balance} (of which {held} held); deactivate with cashout")]
    CardNotEmpty { balance: i64, held: i64 },
    #[error("invalid transfer: {reason}")]
    InvalidTransfer { reason: String },
    #[error("invalid program: {reason}")]
    InvalidProgram { param: &'static str, reason: String },
    /// The program was made inactive: it issues no new cards and activates no card stock.
    #[error("the program is inactive: it issues no new cards and activates no card stock")]
    ProgramInactive,
}
