//! The Gr4vy facade's one error shape and the mapping of every refusal and failure to it.
//! The `match`es have no `_` arm: a new refusal must be mapped here.
//!
//! Bodies are Gr4vy's envelope: `{"type": "error", "code", "status", "message", "details"}`,
//! with `code` the one Gr4vy gives for the status (`bad_request` 400, `unauthorized` 401,
//! `not_found` 404, `method_not_allowed` 405, `duplicate_record` 409, `server_error` 500 and 503).
//! A `details` entry names the field at fault and carries giftd's own error code as `type`.
//! A refused command is 400 (Gr4vy answers a request it cannot carry out so), except an
//! object that does not exist (404). A 500 says nothing of its cause; the cause is logged once.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use giftd_domain::{DomainError, wallet};
use giftd_service::{Refusal, Rendered, ServiceError};

use super::wire::{Gr4vyErrorBody, Gr4vyErrorDetail};
use crate::native::error::ApiError;

/// An error answer of the Gr4vy facade.
#[derive(Debug)]
pub struct Gr4vyError {
    pub status: StatusCode,
    pub message: String,
    pub details: Vec<Gr4vyErrorDetail>,
}

impl Gr4vyError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// A 400 about one field of the request.
    pub fn invalid(location: &'static str, field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            status: StatusCode::BAD_REQUEST,
            details: vec![detail(location, field, &message, "invalid_request")],
            message,
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("The {what} could not be found."))
    }

    /// Gr4vy's `code` for each status it answers with.
    pub fn code(&self) -> &'static str {
        match self.status.as_u16() {
            400 => "bad_request",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not_found",
            405 => "method_not_allowed",
            409 => "duplicate_record",
            429 => "too_many_requests",
            _ => "server_error",
        }
    }

    pub fn rendered(&self) -> Rendered {
        let body = Gr4vyErrorBody {
            kind: "error",
            code: self.code(),
            status: self.status.as_u16(),
            message: &self.message,
            details: &self.details,
        };
        Rendered {
            status: self.status.as_u16(),
            body: serde_json::to_vec(&body).expect("an error body always serializes"),
        }
    }

    /// The answer to a refused command.
    pub fn from_refusal(refusal: &Refusal) -> Self {
        match refusal {
            // The seed's limit, word for word, with nothing more to say.
            Refusal::Domain(error) if wallet::is_wallet_limit(error) => {
                Self::new(StatusCode::BAD_REQUEST, wallet::WALLET_LIMIT_MESSAGE)
            }
            Refusal::Domain(error) => Self::refused(error),
            Refusal::NotFound(what) => Self::not_found(gr4vy_name(what)),
            Refusal::CardNumberTaken
            | Refusal::Invalid { .. }
            | Refusal::Clover(_)
            | Refusal::Checkout(_) => Self::from_native(ApiError::from(refusal), "body"),
        }
    }

    /// A business refusal: 400, with giftd's code in `details`.
    fn refused(error: &DomainError) -> Self {
        let native = ApiError::from(error);
        let pointer = match error {
            DomainError::InvalidCard | DomainError::CardLocked { .. } => "number",
            DomainError::InvalidAmount { .. }
            | DomainError::CurrencyMismatch { .. }
            | DomainError::InsufficientFunds { .. }
            | DomainError::CardNotActive { .. }
            | DomainError::CardExpired
            | DomainError::LimitExceeded { .. }
            | DomainError::NotReloadable
            | DomainError::ProgramInactive
            | DomainError::HoldNotPending { .. }
            | DomainError::NotReversible { .. }
            | DomainError::RefundExceedsAmount { .. }
            | DomainError::NotRefundable { .. }
            | DomainError::InvalidState { .. }
            | DomainError::CheckoutState { .. }
            | DomainError::CardNotEmpty { .. }
            | DomainError::InvalidTransfer { .. }
            | DomainError::InvalidProgram { .. } => "",
        };
        Self {
            status: StatusCode::BAD_REQUEST,
            details: vec![detail("body", pointer, &native.message, native.code)],
            message: native.message,
        }
    }

    /// An error as the native layer words it (extractors, parsing), in this envelope: its
    /// status kept where Gr4vy has it, else 400; its code and field in `details`.
    pub fn from_native(error: ApiError, location: &'static str) -> Self {
        let status = match error.status.as_u16() {
            401 | 404 | 405 | 409 | 500 | 503 => error.status,
            // 408 and 413 have no Gr4vy envelope of their own; 422 is a 400 in Gr4vy's terms.
            _ => StatusCode::BAD_REQUEST,
        };
        let details = if matches!(status.as_u16(), 401 | 500 | 503) {
            Vec::new()
        } else {
            let field = error.param.as_deref().unwrap_or_default();
            vec![detail(location, field, &error.message, error.code)]
        };
        Self {
            status,
            message: error.message,
            details,
        }
    }
}

/// The facade's words for what was not found.
fn gr4vy_name(what: &str) -> &str {
    match what {
        "card" => "gift card",
        "checkout" => "transaction",
        other => other,
    }
}

fn detail(location: &'static str, field: &str, message: &str, kind: &str) -> Gr4vyErrorDetail {
    Gr4vyErrorDetail {
        location,
        pointer: if field.is_empty() {
            String::new()
        } else {
            format!("/{field}")
        },
        message: message.to_owned(),
        kind: kind.to_owned(),
    }
}

impl From<ServiceError> for Gr4vyError {
    fn from(error: ServiceError) -> Self {
        match error {
            // Staff sign in to the native API only; here a session is no credential.
            ServiceError::Unauthorized | ServiceError::Staff(_) => Self::new(
                StatusCode::UNAUTHORIZED,
                "Missing or unknown API key; send Authorization: Bearer <giftd API key>.",
            ),
            ServiceError::InsufficientScope { scope } => Self {
                status: StatusCode::FORBIDDEN,
                details: vec![detail(
                    "header",
                    "Authorization",
                    &format!("This API key's scope ({scope}) does not allow this request."),
                    "insufficient_scope",
                )],
                message: format!("This API key's scope ({scope}) does not allow this request."),
            },
            ServiceError::NotFound(what) => Self::not_found(gr4vy_name(what)),
            other @ (ServiceError::Invalid { .. }
            | ServiceError::IdempotencyKeyReused
            | ServiceError::Unavailable(_)
            | ServiceError::Internal(_)) => Self::from_native(ApiError::from(other), "body"),
        }
    }
}

impl From<ApiError> for Gr4vyError {
    fn from(error: ApiError) -> Self {
        Self::from_native(error, "body")
    }
}

impl IntoResponse for Gr4vyError {
    fn into_response(self) -> Response {
        let rendered = self.rendered();
        crate::json_response(self.status, rendered.body)
    }
}
