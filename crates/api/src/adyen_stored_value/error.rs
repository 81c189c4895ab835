//! The Stored Value API facade's error mapping. Two kinds of failure, as Adyen has them:
//!
//! - A request giftd cannot read (a missing or malformed field) is a 4xx with Adyen's
//!   `ServiceError` body: `{"status", "errorCode", "message", "errorType", "pspReference"}`.
//!   401 for a missing or unknown key, 404 for an unknown operation, 422 for an
//!   `Idempotency-Key` reused with another request, 500 (opaque; the cause is logged once,
//!   here) when giftd itself fails.
//! - A request giftd read and refused is a 200 with `resultCode` `Refused`, `NotEnoughBalance`
//!   or `Error`, Adyen's `refusalReason`, and giftd's own explanation in
//!   `thirdPartyRefusalReason` (giftd is the third party, the card's issuer).
//!
//! The `match`es have no `_` arm: a new refusal must be mapped here.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use giftd_domain::DomainError;
use giftd_service::{Refusal, ServiceError};

use super::wire::AdyenSvServiceError;
use crate::edge::sentence;

/// The `errorCode`s giftd answers 4xx with: Adyen's codes for the same problems.
pub mod codes {
    /// The request's JSON, or a field of it, is malformed.
    pub const STRUCTURE: &str = "702";
    /// `merchantAccount` is missing.
    pub const MERCHANT_ACCOUNT: &str = "901";
    /// `reference` is missing or too long.
    pub const REFERENCE: &str = "130";
    /// `amount` is missing.
    pub const NO_AMOUNT: &str = "100";
    /// `amount` is not a whole positive number of minor units in a known currency.
    pub const INVALID_AMOUNT: &str = "137";
    /// `paymentMethod.number` is missing or cannot be a card number.
    pub const INVALID_CARD_NUMBER: &str = "101";
    /// `originalReference` is missing.
    pub const ORIGINAL_REFERENCE: &str = "167";
    /// Authentication, routing, idempotency and internal failures.
    pub const GENERAL: &str = "000";
    /// An `Idempotency-Key` already used with another request.
    pub const IDEMPOTENCY: &str = "704";
}

/// A 4xx or 5xx answer of the Stored Value API facade.
#[derive(Debug)]
pub struct AdyenSvError {
    pub status: StatusCode,
    pub error_code: &'static str,
    pub message: String,
    pub error_type: &'static str,
    pub psp_reference: Option<String>,
}

impl AdyenSvError {
    fn new(
        status: StatusCode,
        error_code: &'static str,
        error_type: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            error_code,
            message: message.into(),
            error_type,
            psp_reference: None,
        }
    }

    /// 400: the request is malformed or incomplete.
    pub fn validation(error_code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error_code, "validation", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            codes::GENERAL,
            "security",
            "HTTP Status Response - Unauthorized",
        )
    }

    /// A refusal at the edge, before the request is read: 429 (`security`) or 431.
    pub fn edge(status: StatusCode, message: String) -> Self {
        let error_type = if status == StatusCode::TOO_MANY_REQUESTS {
            "security"
        } else {
            "validation"
        };
        Self::new(status, codes::GENERAL, error_type, message)
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            codes::GENERAL,
            "validation",
            "No such Stored Value API operation: use issue, changeStatus, load, checkBalance, mergeBalance or voidTransaction.",
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            codes::GENERAL,
            "validation",
            "Stored Value API operations take POST.",
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::GENERAL,
            "internal",
            "Something went wrong inside giftd.",
        )
    }

    pub fn with_reference(mut self, psp_reference: &str) -> Self {
        self.psp_reference = Some(psp_reference.to_owned());
        self
    }

    pub fn body(&self) -> Vec<u8> {
        let body = AdyenSvServiceError {
            status: self.status.as_u16(),
            error_code: self.error_code,
            message: self.message.clone(),
            error_type: self.error_type,
            psp_reference: self.psp_reference.clone(),
        };
        serde_json::to_vec(&body).expect("an error body always serializes")
    }
}

impl IntoResponse for AdyenSvError {
    fn into_response(self) -> Response {
        crate::json_response(self.status, self.body())
    }
}

impl From<ServiceError> for AdyenSvError {
    fn from(error: ServiceError) -> Self {
        match error {
            // Staff sign in to the native API only; here a session is no credential.
            ServiceError::Unauthorized | ServiceError::Staff(_) => Self::unauthorized(),
            ServiceError::InsufficientScope { .. } => Self::new(
                StatusCode::FORBIDDEN,
                codes::GENERAL,
                "security",
                "HTTP Status Response - Forbidden",
            ),
            ServiceError::NotFound(what) => Self::validation(codes::STRUCTURE, format!("No such {what}.")),
            ServiceError::Invalid { param, message } => {
                Self::validation(codes::STRUCTURE, format!("{param}: {message}."))
            }
            ServiceError::IdempotencyKeyReused => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                codes::IDEMPOTENCY,
                "validation",
                "This Idempotency-Key was already used with a different request.",
            ),
            ServiceError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable; answering 503");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    codes::GENERAL,
                    "internal",
                    crate::native::error::UNAVAILABLE_MESSAGE,
                )
            }
            ServiceError::Internal(cause) => {
                tracing::error!(error = %cause, "stored value API request failed inside giftd");
                Self::internal()
            }
        }
    }
}

/// A refused request's `resultCode`, `refusalReason` and `thirdPartyRefusalReason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdyenSvRefusal {
    pub result_code: &'static str,
    pub refusal_reason: &'static str,
    pub detail: String,
}

const REFUSED: &str = "Refused";
const ERROR: &str = "Error";
const NOT_PERMITTED: &str = "Transaction Not Permitted";

/// What a refusal is answered with. `code_presented`: the request sent a `securityCode`, so an
/// unknown number and a wrong code are answered alike (a guess learns nothing); without one,
/// an unknown number is an invalid card number.
pub fn refusal(refusal: &Refusal, code_presented: bool) -> AdyenSvRefusal {
    let answer = |result_code, refusal_reason, detail: String| AdyenSvRefusal {
        result_code,
        refusal_reason,
        detail: sentence(detail),
    };
    match refusal {
        Refusal::Domain(error) => {
            let detail = error.to_string();
            match error {
                DomainError::InsufficientFunds { .. } => {
                    answer("NotEnoughBalance", "Not enough balance", detail)
                }
                DomainError::InvalidCard if code_presented => answer(
                    REFUSED,
                    "Invalid card number or security code",
                    "The card number or security code is incorrect.".into(),
                ),
                DomainError::InvalidCard => {
                    answer(REFUSED, "Invalid Card Number", "Unknown card number.".into())
                }
                DomainError::CardLocked { .. } => answer(
                    REFUSED,
                    "Allowable PIN tries exceeded",
                    "Too many wrong security codes for this card number; try again later.".into(),
                ),
                DomainError::CardExpired => answer(REFUSED, "Expired Card", detail),
                DomainError::CardNotActive { .. } => answer(REFUSED, "Blocked Card", detail),
                DomainError::InvalidAmount { .. } | DomainError::RefundExceedsAmount { .. } => {
                    answer(REFUSED, "Invalid Amount", detail)
                }
                DomainError::CurrencyMismatch { .. } => answer(ERROR, "Invalid Amount", detail),
                DomainError::LimitExceeded { .. }
                | DomainError::NotReloadable
                | DomainError::ProgramInactive
                | DomainError::HoldNotPending { .. }
                | DomainError::NotReversible { .. }
                | DomainError::NotRefundable { .. }
                | DomainError::InvalidState { .. }
                | DomainError::CheckoutState { .. }
                | DomainError::CardNotEmpty { .. }
                | DomainError::InvalidTransfer { .. } => answer(REFUSED, NOT_PERMITTED, detail),
                DomainError::InvalidProgram { .. } => answer(ERROR, "Invalid program", detail),
            }
        }
        Refusal::NotFound("transaction") => answer(
            REFUSED,
            "Original pspReference not found",
            "No transaction has this pspReference.".into(),
        ),
        Refusal::NotFound(what) => answer(ERROR, "Not found", format!("no such {what}")),
        Refusal::CardNumberTaken => answer(
            ERROR,
            NOT_PERMITTED,
            "a card with this number already exists".into(),
        ),
        Refusal::Invalid { param, message } => {
            answer(ERROR, "Invalid request", format!("{param}: {message}"))
        }
        // Only Clover commands give these; this facade never runs one.
        Refusal::Clover(refusal) => answer(ERROR, NOT_PERMITTED, refusal.to_string()),
        // Only checkouts give these; this facade never runs one.
        Refusal::Checkout(refusal) => answer(ERROR, NOT_PERMITTED, refusal.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_enough_balance_has_its_own_result_code() {
        let answer = refusal(
            &Refusal::Domain(DomainError::InsufficientFunds {
                available: 1,
                requested: 2,
            }),
            false,
        );
        assert_eq!(answer.result_code, "NotEnoughBalance");
    }

    #[test]
    fn unknown_numbers_and_wrong_codes_answer_alike_when_a_code_was_sent() {
        let with_code = refusal(&Refusal::Domain(DomainError::InvalidCard), true);
        assert_eq!(with_code.refusal_reason, "Invalid card number or security code");
        let without = refusal(&Refusal::Domain(DomainError::InvalidCard), false);
        assert_eq!(without.refusal_reason, "Invalid Card Number");
    }
}
