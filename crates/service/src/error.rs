//! The service's errors. [`Refusal`] is a business outcome of a command (rendered by each
//! front-end, and stored with the idempotency record like any answer); [`ServiceError`] is
//! what can go wrong around a command or a read.

use giftd_domain::DomainError;
use giftd_store::StoreError;

/// Why a command was refused. Nothing of a refused command is kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("a card with this number already exists")]
    CardNumberTaken,
    #[error("{message}")]
    Invalid { param: &'static str, message: String },
    /// A refusal only the Clover facade gives.
    #[error(transparent)]
    Clover(#[from] crate::clover::CloverRefusal),
    /// A refusal only checkouts give.
    #[error(transparent)]
    Checkout(#[from] crate::checkout::CheckoutRefusal),
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("missing or unknown API key")]
    Unauthorized,
    /// The key is valid, but its scope does not allow this request.
    #[error("this API key's scope ({scope}) does not allow this request")]
    InsufficientScope { scope: giftd_domain::Scope },
    /// A staff member's sign-in refused, or a signed-in request their role or account does not
    /// allow (only the native API takes staff sessions; see `crate::staff`).
    #[error(transparent)]
    Staff(#[from] crate::staff::StaffRefusal),
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("{message}")]
    Invalid { param: &'static str, message: String },
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    /// The database cannot serve now (down, restarting, out of space, read-only): callers answer
    /// 503 and the client retries later.
    #[error("database unavailable: {0}")]
    Unavailable(StoreError),
    /// A failure of giftd or its database, not of the request. Callers log it once and answer
    /// with an opaque 500.
    #[error("internal error: {0}")]
    Internal(StoreError),
}

impl ServiceError {
    /// A front-end got an outcome its command's family does not produce for that command: a
    /// bug of giftd, answered as an internal error.
    pub fn unexpected_outcome() -> Self {
        Self::Internal(StoreError::Corrupt("unexpected outcome".into()))
    }
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        if error.is_unavailable() {
            Self::Unavailable(error)
        } else {
            Self::Internal(error)
        }
    }
}

/// Inside a job: either the command was refused (roll back its writes, answer the refusal) or
/// the store failed (roll back, answer 500). Nominally `pub` because [`crate::Operation`]
/// names it, but its module is private: nothing outside this crate can reach it.
#[derive(Debug)]
pub enum Failure {
    Refused(Refusal),
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(refusal)
    }
}

impl From<DomainError> for Failure {
    fn from(error: DomainError) -> Self {
        Self::Refused(Refusal::Domain(error))
    }
}
