//! The Clover facade's one error shape and the mapping of every refusal and failure to Clover's
//! status codes, error types and codes. The `match`es have no `_` arm: a new refusal must be
//! mapped here.
//!
//! Bodies: `{"error": {"type", "code", "message", "param"?, "decline_code"?}}`, the fields of
//! Clover's ecommerce errors. Types: `invalid_request_error` (400, 404), `authentication_error`
//! (401), `card_error` (402, code `card_declined` with a `decline_code`), `idempotency_error`
//! (409), `rate_limit_error` (429) and `api_error` (500, opaque; the cause is logged once, here).

use crate::edge::sentence;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use giftd_domain::DomainError;
use giftd_service::clover::CloverRefusal;
use giftd_service::{Refusal, Rendered, ServiceError};
use serde::Serialize;

#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize)]
struct ErrorDetail<'a> {
    #[serde(rename = "type")]
    error_type: &'static str,
    code: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    param: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decline_code: Option<&'static str>,
}

/// An error answer of the Clover facade.
#[derive(Debug)]
pub struct CloverError {
    pub status: StatusCode,
    pub error_type: &'static str,
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
    pub decline_code: Option<&'static str>,
}

const INVALID_REQUEST: &str = "invalid_request_error";
const CARD_ERROR: &str = "card_error";

impl CloverError {
    fn new(
        status: StatusCode,
        error_type: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            error_type,
            code,
            message: message.into(),
            param: None,
            decline_code: None,
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// 400 `invalid_request`: the request is malformed or incomplete.
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "invalid_request",
            message,
        )
        .with_param(param)
    }

    /// 400 `invalid_charge_amount`: an amount that is not a positive whole number of cents.
    pub fn invalid_amount(param: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "invalid_charge_amount",
            message,
        )
        .with_param(param)
    }

    /// 400 `amount_too_large`.
    pub fn amount_too_large(param: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "amount_too_large",
            message,
        )
        .with_param(param)
    }

    /// 404 `resource_missing`: an unknown (or revoked, or another merchant's) token, charge,
    /// refund or promotion code.
    pub fn missing(param: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            INVALID_REQUEST,
            "resource_missing",
            message,
        )
        .with_param(param)
    }

    /// 402 `card_declined` with the reason in `decline_code`.
    fn declined(decline_code: &'static str, message: impl Into<String>) -> Self {
        Self {
            decline_code: Some(decline_code),
            ..Self::new(StatusCode::PAYMENT_REQUIRED, CARD_ERROR, "card_declined", message)
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "unauthorized",
            "Missing or unknown API key: send the merchant's giftd API key as the apiKey header or as Authorization: Bearer <key>.",
        )
    }

    /// A refusal at the edge, before the request is read: 429 (`rate_limit_error`) or 431.
    pub fn edge(status: StatusCode, message: String) -> Self {
        if status == StatusCode::TOO_MANY_REQUESTS {
            Self::new(status, "rate_limit_error", "rate_limit", message)
        } else {
            Self::new(status, INVALID_REQUEST, "invalid_request", message)
        }
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            INVALID_REQUEST,
            "resource_missing",
            "No such endpoint.",
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            INVALID_REQUEST,
            "invalid_request",
            "This endpoint does not take that method.",
        )
    }

    pub fn body(&self) -> Vec<u8> {
        let body = ErrorBody {
            error: ErrorDetail {
                error_type: self.error_type,
                code: self.code,
                message: &self.message,
                param: self.param.as_deref(),
                decline_code: self.decline_code,
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

impl IntoResponse for CloverError {
    fn into_response(self) -> Response {
        crate::json_response(self.status, self.body())
    }
}

impl From<&DomainError> for CloverError {
    fn from(error: &DomainError) -> Self {
        let message = sentence(error.to_string());
        match error {
            DomainError::InvalidAmount { .. } => Self::invalid_amount("amount", message),
            DomainError::CurrencyMismatch { .. } => Self::invalid("currency", message),
            DomainError::InsufficientFunds { .. } => Self::declined("insufficient_funds", message),
            DomainError::CardNotActive { .. } => Self::declined("card_not_active", message),
            DomainError::CardExpired => Self::declined("expired_card", message),
            DomainError::CardLocked { .. } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "rate_limit",
                "Too many wrong security codes for this card number; try again later.",
            ),
            // Unknown number and wrong code answer alike, so a guess learns nothing.
            DomainError::InvalidCard => Self::declined(
                "invalid_card",
                "The gift card number or security code is incorrect.",
            ),
            DomainError::LimitExceeded { .. } => Self::amount_too_large("amount", message),
            DomainError::NotReloadable => Self::declined("not_reloadable", message),
            // Activating a card (of new stock, or a new virtual card) of an inactive program.
            DomainError::ProgramInactive => Self::declined("program_inactive", message),
            DomainError::HoldNotPending { .. } => Self::new(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                "charge_already_captured",
                message,
            ),
            DomainError::NotReversible { .. } => Self::declined("not_reversible", message),
            DomainError::RefundExceedsAmount { refundable: 0, .. } => Self::new(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                "charge_already_refunded",
                message,
            ),
            DomainError::RefundExceedsAmount { .. } => Self::amount_too_large("amount", message),
            DomainError::NotRefundable { .. } => Self::invalid("charge", message),
            DomainError::InvalidState { .. } => Self::declined("invalid_card_state", message),
            // Only checkouts give this; the Clover facade never runs one.
            DomainError::CheckoutState { .. } => Self::declined("invalid_state", message),
            DomainError::CardNotEmpty { .. } => Self::declined("card_not_empty", message),
            DomainError::InvalidProgram { param, .. } => Self::invalid(param, message),
            DomainError::InvalidTransfer { .. } => Self::invalid("source", message),
        }
    }
}

impl From<&CloverRefusal> for CloverError {
    fn from(refusal: &CloverRefusal) -> Self {
        let message = sentence(refusal.to_string());
        match refusal {
            CloverRefusal::AlreadyCaptured => Self::new(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                "charge_already_captured",
                message,
            ),
            CloverRefusal::AlreadyRefunded => Self::new(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                "charge_already_refunded",
                message,
            ),
            CloverRefusal::LockExpired => Self::new(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                "charge_expired_for_capture",
                message,
            ),
            CloverRefusal::AmountTooLarge { .. } => Self::amount_too_large("amount", message),
        }
    }
}

impl From<&Refusal> for CloverError {
    fn from(refusal: &Refusal) -> Self {
        match refusal {
            Refusal::Domain(error) => error.into(),
            Refusal::Clover(refusal) => refusal.into(),
            // A checkout's gift card leg (its redemption, or its hold) refunded, voided, captured
            // or released here rather than through its checkout: `Owned`, naming the checkout.
            // The others only a checkout's own commands give.
            Refusal::Checkout(refusal) => Self::invalid("checkout", sentence(refusal.to_string())),
            Refusal::NotFound(what) => Self::missing(what, format!("No such {}.", what.replace('_', " "))),
            Refusal::CardNumberTaken => Self::invalid("number", "A card with this number already exists."),
            Refusal::Invalid { param, message } => Self::invalid(param, sentence(message.clone())),
        }
    }
}

impl From<ServiceError> for CloverError {
    fn from(error: ServiceError) -> Self {
        match error {
            // Staff sign in to the native API only; here a session is no credential.
            ServiceError::Unauthorized | ServiceError::Staff(_) => Self::unauthorized(),
            ServiceError::InsufficientScope { scope } => Self::new(
                StatusCode::FORBIDDEN,
                "authentication_error",
                "insufficient_scope",
                format!("This API key's scope ({scope}) does not allow this request."),
            ),
            ServiceError::NotFound(what) => Self::missing(what, format!("No such {what}.")),
            ServiceError::Invalid { param, message } => Self::invalid(param, sentence(message)),
            ServiceError::IdempotencyKeyReused => Self::new(
                StatusCode::CONFLICT,
                "idempotency_error",
                "idempotency_key_reused",
                "This Idempotency-Key was already used with a different request.",
            ),
            ServiceError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable; answering 503");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "api_error",
                    "service_unavailable",
                    crate::native::error::UNAVAILABLE_MESSAGE,
                )
            }
            ServiceError::Internal(cause) => {
                tracing::error!(error = %cause, "clover request failed inside giftd");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "api_error",
                    "processing_error",
                    "Something went wrong inside giftd.",
                )
            }
        }
    }
}
