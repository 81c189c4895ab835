//! The native API's one error shape and the mapping of every refusal and failure to a status
//! and a stable code. The `match`es have no `_` arm: a new refusal must be mapped here.
//!
//! Bodies: `{"error": {"code", "message", "param"?}}`. A 500 says nothing of its cause; the
//! cause is logged once, here.

use crate::edge::sentence;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use giftd_domain::DomainError;
use giftd_service::checkout::CheckoutRefusal;
use giftd_service::staff::StaffRefusal;
use giftd_service::{Refusal, Rendered, ServiceError};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable snake_case word, e.g. `insufficient_funds`.
    pub code: &'static str,
    /// A human sentence.
    pub message: String,
    /// The one request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}

/// An error answer of the native API.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            param: None,
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message).with_param(param)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("No such {what}."))
    }

    pub fn body(&self) -> Vec<u8> {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message.clone(),
                param: self.param.clone(),
            },
        };
        serde_json::to_vec(&body).expect("an error body always serializes")
    }

    pub fn rendered(&self) -> Rendered {
        Rendered {
            status: self.status.as_u16(),
            body: self.body(),
        }
    }
}

/// The answer to a request the database could not take (every front-end says the same).
pub const UNAVAILABLE_MESSAGE: &str = "The database is unavailable right now; retry shortly with the same Idempotency-Key, which also tells whether a request the outage cut off took effect.";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        crate::json_response(self.status, self.body())
    }
}

impl From<&DomainError> for ApiError {
    fn from(error: &DomainError) -> Self {
        use StatusCode as S;
        let message = sentence(error.to_string());
        let (status, code, param) = match error {
            DomainError::InvalidAmount { .. } => (S::UNPROCESSABLE_ENTITY, "invalid_amount", Some("amount")),
            DomainError::CurrencyMismatch { .. } => {
                (S::UNPROCESSABLE_ENTITY, "currency_mismatch", Some("currency"))
            }
            DomainError::InsufficientFunds { .. } => {
                (S::UNPROCESSABLE_ENTITY, "insufficient_funds", Some("amount"))
            }
            DomainError::CardNotActive { .. } => (S::UNPROCESSABLE_ENTITY, "card_not_active", None),
            DomainError::CardExpired => (S::UNPROCESSABLE_ENTITY, "card_expired", None),
            DomainError::CardLocked { .. } => (S::UNPROCESSABLE_ENTITY, "card_locked", None),
            DomainError::InvalidCard => (S::NOT_FOUND, "invalid_card", None),
            DomainError::LimitExceeded { .. } => (S::UNPROCESSABLE_ENTITY, "limit_exceeded", Some("amount")),
            DomainError::NotReloadable => (S::UNPROCESSABLE_ENTITY, "not_reloadable", None),
            DomainError::ProgramInactive => (S::UNPROCESSABLE_ENTITY, "program_inactive", None),
            DomainError::HoldNotPending { .. } => (S::CONFLICT, "hold_not_pending", None),
            DomainError::NotReversible { .. } | DomainError::NotRefundable { .. } => {
                (S::CONFLICT, "not_reversible", None)
            }
            DomainError::RefundExceedsAmount { .. } => {
                (S::UNPROCESSABLE_ENTITY, "refund_exceeds_amount", Some("amount"))
            }
            DomainError::InvalidState { .. } | DomainError::CheckoutState { .. } => {
                (S::CONFLICT, "invalid_state", None)
            }
            DomainError::CardNotEmpty { .. } => (S::CONFLICT, "card_not_empty", None),
            DomainError::InvalidProgram { param, .. } => (S::BAD_REQUEST, "invalid_request", Some(*param)),
            DomainError::InvalidTransfer { .. } => (S::UNPROCESSABLE_ENTITY, "invalid_transfer", None),
        };
        let error = Self::new(status, code, message);
        match param {
            Some(param) => error.with_param(param),
            None => error,
        }
    }
}

impl From<&Refusal> for ApiError {
    fn from(refusal: &Refusal) -> Self {
        match refusal {
            Refusal::Domain(error) => error.into(),
            Refusal::NotFound(what) => Self::not_found(what),
            Refusal::CardNumberTaken => Self::new(
                StatusCode::CONFLICT,
                "card_number_taken",
                "A card with this number already exists.",
            )
            .with_param("number"),
            Refusal::Invalid { param, message } => Self::invalid(param, sentence(message.clone())),
            // Only Clover commands give these; the native API never runs one.
            Refusal::Clover(refusal) => Self::new(
                StatusCode::CONFLICT,
                "invalid_state",
                sentence(refusal.to_string()),
            ),
            Refusal::Checkout(CheckoutRefusal::PaymentRefused { code, message }) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "payment_declined",
                sentence(format!("{message} ({code})")),
            ),
            Refusal::Checkout(CheckoutRefusal::CaptureFailed { code, message }) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "capture_failed",
                sentence(format!("{message} ({code})")),
            ),
            Refusal::Checkout(refusal @ CheckoutRefusal::Owned { .. }) => Self::new(
                StatusCode::CONFLICT,
                "checkout_owned",
                sentence(refusal.to_string()),
            ),
            Refusal::Checkout(CheckoutRefusal::Stale) => Self::new(
                StatusCode::CONFLICT,
                "invalid_state",
                "The checkout changed while this request ran; read it again.",
            ),
        }
    }
}

impl From<&StaffRefusal> for ApiError {
    fn from(refusal: &StaffRefusal) -> Self {
        use StatusCode as S;
        let message = sentence(refusal.to_string());
        match refusal {
            StaffRefusal::InvalidCredentials => Self::new(S::UNAUTHORIZED, "invalid_credentials", message),
            StaffRefusal::TotpRequired => {
                Self::new(S::UNAUTHORIZED, "totp_required", message).with_param("totp_code")
            }
            StaffRefusal::Locked { until } => Self::new(
                S::TOO_MANY_REQUESTS,
                "sign_in_locked",
                format!(
                    "Too many failed sign-ins: this account is locked until {}.",
                    crate::edge::rfc3339(*until)
                ),
            ),
            StaffRefusal::Disabled => Self::new(S::FORBIDDEN, "account_disabled", message),
            StaffRefusal::TemporaryPasswordExpired => Self::new(S::UNAUTHORIZED, "password_expired", message),
            StaffRefusal::PasswordChangeRequired => {
                Self::new(S::FORBIDDEN, "password_change_required", message)
            }
            StaffRefusal::InsufficientRole { .. } => Self::new(S::FORBIDDEN, "insufficient_role", message),
            StaffRefusal::OwnAdjustment => Self::new(S::FORBIDDEN, "own_adjustment", message),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Unauthorized => Self::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Missing or unknown API key, or a session that has ended; send Authorization: Bearer <key or session token>.",
            ),
            ServiceError::InsufficientScope { scope } => Self::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!(
                    "This API key's scope ({scope}) does not allow this request; use a key with more power."
                ),
            ),
            ServiceError::Staff(refusal) => Self::from(&refusal),
            ServiceError::NotFound(what) => Self::not_found(what),
            ServiceError::Invalid { param, message } => Self::invalid(param, sentence(message)),
            ServiceError::IdempotencyKeyReused => Self::new(
                StatusCode::CONFLICT,
                "idempotency_key_reused",
                "This Idempotency-Key was already used with a different request.",
            ),
            ServiceError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable; answering 503");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    UNAVAILABLE_MESSAGE,
                )
            }
            ServiceError::Internal(cause) => {
                tracing::error!(error = %cause, "request failed inside giftd");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "Something went wrong inside giftd.",
                )
            }
        }
    }
}
