//! The Terminal API facade's error mapping: every refusal becomes a `Response` with `Result`
//! `Failure`, an `ErrorCondition` from nexo's list and an `AdditionalResponse`
//! (`message=...`, URL-encoded as Adyen writes it); a message that cannot be read at all is
//! rejected with an `EventNotification` (`EventToNotify: Reject`), as Adyen's cloud does, and
//! never with a 5xx. The `match`es have no `_` arm: a new refusal must be mapped here.
//!
//! HTTP statuses: 200 for every answer and rejection (the outcome is in the body, as with
//! Adyen), 401 for a missing or unknown `X-API-Key`, 500 (opaque, cause logged once here) when
//! giftd itself fails.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use giftd_domain::{DomainError, Timestamp};
use giftd_service::{Refusal, ServiceError};
use serde::Serialize;

use super::wire::{
    TerminalEventHeader, TerminalEventNotification, TerminalMessageHeader, TerminalRejectBody,
    TerminalRejectEnvelope, TerminalResult, time_stamp,
};
use crate::edge::sentence;

/// The nexo `ErrorCondition`s giftd answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCondition {
    /// The card cannot be used: unknown number, not active, expired.
    InvalidCard,
    /// The message is well formed JSON but a field is missing or wrong.
    MessageFormat,
    /// The message a TransactionStatus names is still being processed.
    InProgress,
    /// The operation is not allowed here (a type of payment giftd does not do, a reversal of
    /// something that cannot be reversed, a card in the wrong state).
    NotAllowed,
    /// The transaction to reverse, or the message a TransactionStatus names, is not known.
    NotFound,
    /// The issuer refused: not enough value, a limit, too many wrong PINs.
    Refusal,
    /// The PIN (security code) sent with the card is not the card's.
    WrongPin,
}

impl ErrorCondition {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "InProgress",
            Self::InvalidCard => "InvalidCard",
            Self::MessageFormat => "MessageFormat",
            Self::NotAllowed => "NotAllowed",
            Self::NotFound => "NotFound",
            Self::Refusal => "Refusal",
            Self::WrongPin => "WrongPIN",
        }
    }
}

/// Why a request failed, as the `Response` of its answer says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalFailure {
    pub condition: ErrorCondition,
    pub message: String,
}

impl TerminalFailure {
    pub fn new(condition: ErrorCondition, message: impl Into<String>) -> Self {
        Self {
            condition,
            message: message.into(),
        }
    }

    pub fn message_format(message: impl Into<String>) -> Self {
        Self::new(ErrorCondition::MessageFormat, message)
    }

    pub fn result(&self) -> TerminalResult {
        TerminalResult {
            result: "Failure",
            error_condition: Some(self.condition.as_str()),
            additional_response: Some(additional_response(&self.message)),
        }
    }
}

/// `message=The+card+...`: the way Adyen writes `AdditionalResponse`.
pub fn additional_response(message: &str) -> String {
    serde_urlencoded::to_string([("message", message)]).unwrap_or_else(|_| "message=Failure".to_owned())
}

/// The failure a refusal is answered with. `pin_presented`: the request sent a security code
/// with its card, so an unknown number or wrong code is `WrongPIN` (the two are answered alike,
/// so that a guess learns nothing); without one, an unknown number is `InvalidCard`.
pub fn failure(refusal: &Refusal, pin_presented: bool) -> TerminalFailure {
    use ErrorCondition as C;
    match refusal {
        Refusal::Domain(error) => {
            let message = sentence(error.to_string());
            let condition = match error {
                DomainError::InvalidCard => {
                    return if pin_presented {
                        TerminalFailure::new(C::WrongPin, "The card number or PIN is incorrect.")
                    } else {
                        TerminalFailure::new(C::InvalidCard, "Unknown card.")
                    };
                }
                // Only a deactivation (`redemptionType` `deactivate`) gives this here; the
                // domain's sentence names the native API's remedy, not the Terminal API's.
                DomainError::CardNotEmpty { .. } => {
                    return TerminalFailure::new(
                        C::NotAllowed,
                        "The card still holds value, and a deactivation pays nothing out: send redemptionType cashback|deactivate to pay it out and close the card.",
                    );
                }
                DomainError::CardLocked { .. } => {
                    return TerminalFailure::new(
                        C::Refusal,
                        "Too many wrong PINs for this card; try again later.",
                    );
                }
                DomainError::CardNotActive { .. } | DomainError::CardExpired => C::InvalidCard,
                DomainError::InsufficientFunds { .. }
                | DomainError::LimitExceeded { .. }
                | DomainError::InvalidAmount { .. }
                | DomainError::RefundExceedsAmount { .. } => C::Refusal,
                DomainError::CurrencyMismatch { .. }
                | DomainError::NotReloadable
                | DomainError::ProgramInactive
                | DomainError::HoldNotPending { .. }
                | DomainError::NotReversible { .. }
                | DomainError::NotRefundable { .. }
                | DomainError::InvalidState { .. }
                | DomainError::CheckoutState { .. }
                | DomainError::InvalidTransfer { .. } => C::NotAllowed,
                DomainError::InvalidProgram { .. } => C::MessageFormat,
            };
            TerminalFailure::new(condition, message)
        }
        Refusal::NotFound(what) => TerminalFailure::new(C::NotFound, format!("No such {what}.")),
        Refusal::CardNumberTaken => {
            TerminalFailure::new(C::NotAllowed, "A card with this number already exists.")
        }
        Refusal::Invalid { param, message } => TerminalFailure::new(
            C::MessageFormat,
            format!("{param}: {}", sentence(message.clone())),
        ),
        // Only Clover commands give these; the Terminal API never runs one.
        Refusal::Clover(refusal) => TerminalFailure::new(C::NotAllowed, sentence(refusal.to_string())),
        // Only checkouts give these; the Terminal API never runs one.
        Refusal::Checkout(refusal) => TerminalFailure::new(C::NotAllowed, sentence(refusal.to_string())),
    }
}

/// Adyen's error body for the HTTP-level failures of the cloud endpoint.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ServiceErrorBody<'a> {
    status: u16,
    error_code: &'static str,
    message: &'a str,
    error_type: &'static str,
}

fn service_error_body(status: StatusCode, error_type: &'static str, message: &str) -> Vec<u8> {
    let body = ServiceErrorBody {
        status: status.as_u16(),
        error_code: "000",
        message,
        error_type,
    };
    serde_json::to_vec(&body).expect("an error body always serializes")
}

fn service_error(status: StatusCode, error_type: &'static str, message: &'static str) -> Response {
    crate::json_response(status, service_error_body(status, error_type, message))
}

/// A refusal at the edge, before the message is read (429 rate limited, 431 headers too
/// large), in the shape of the endpoint's other HTTP-level errors.
pub fn edge(status: StatusCode, message: &str) -> Response {
    let error_type = if status == StatusCode::TOO_MANY_REQUESTS {
        "security"
    } else {
        "validation"
    };
    crate::json_response(status, service_error_body(status, error_type, message))
}

const INTERNAL_MESSAGE: &str = "Something went wrong inside giftd.";

/// The opaque 500 answer, for a renderer that met something it cannot render (a bug).
pub fn internal_rendered() -> giftd_service::Rendered {
    let status = StatusCode::INTERNAL_SERVER_ERROR;
    giftd_service::Rendered {
        status: status.as_u16(),
        body: service_error_body(status, "internal", INTERNAL_MESSAGE),
    }
}

/// 401: a missing or unknown `X-API-Key`.
pub fn unauthorized() -> Response {
    service_error(
        StatusCode::UNAUTHORIZED,
        "security",
        "HTTP Status Response - Unauthorized",
    )
}

/// What stops a request before it reaches a command, as the endpoint answers it.
#[derive(Debug)]
pub enum TerminalError {
    Unauthorized,
    /// The key's scope does not allow the Terminal API (a `read_only` key).
    Forbidden,
    /// giftd failed; nothing of the request was kept.
    Internal,
    /// The database could not take the request; nothing of it was kept.
    Unavailable,
}

impl IntoResponse for TerminalError {
    fn into_response(self) -> Response {
        match self {
            Self::Unauthorized => unauthorized(),
            Self::Forbidden => service_error(
                StatusCode::FORBIDDEN,
                "security",
                "HTTP Status Response - Forbidden",
            ),
            Self::Internal => service_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", INTERNAL_MESSAGE),
            Self::Unavailable => service_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "internal",
                crate::native::error::UNAVAILABLE_MESSAGE,
            ),
        }
    }
}

impl From<ServiceError> for TerminalError {
    fn from(error: ServiceError) -> Self {
        match error {
            // Staff sign in to the native API only; here a session is no credential.
            ServiceError::Unauthorized | ServiceError::Staff(_) => Self::Unauthorized,
            ServiceError::InsufficientScope { .. } => Self::Forbidden,
            // Reads and commands of this facade give these only through a refusal; if one
            // reaches here it is a bug, answered like any failure inside giftd.
            ServiceError::NotFound(_) | ServiceError::Invalid { .. } | ServiceError::IdempotencyKeyReused => {
                tracing::error!(error = %error, "unexpected service error in the Terminal API");
                Self::Internal
            }
            ServiceError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable; answering 503");
                Self::Unavailable
            }
            ServiceError::Internal(cause) => {
                tracing::error!(error = %cause, "terminal API request failed inside giftd");
                Self::Internal
            }
        }
    }
}

/// A message the cloud does not deliver: an `EventNotification` with `EventToNotify: Reject`,
/// `EventDetails` saying why, and the message itself in base64. What of its header could be
/// read is echoed.
pub fn reject(
    header: Option<&TerminalMessageHeader>,
    details: &str,
    message: Option<&[u8]>,
    now: Timestamp,
) -> Response {
    // A header field is echoed only when it holds no control or bidirectional character.
    let text = |v: Option<&super::wire::WireText>| {
        v.filter(|t| crate::text::check_str(&t.0).is_ok())
            .map(|t| t.0.clone())
    };
    let body = TerminalRejectEnvelope {
        request: TerminalRejectBody {
            event_notification: TerminalEventNotification {
                event_to_notify: "Reject",
                event_details: additional_response(details),
                rejected_message: message
                    .filter(|bytes| !bytes.is_empty())
                    .map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes)),
                time_stamp: time_stamp(now),
            },
            message_header: TerminalEventHeader {
                device_id: text(header.and_then(|h| h.device_id.as_ref())),
                message_category: "Event",
                message_class: "Event",
                message_type: "Notification",
                poi_id: text(header.and_then(|h| h.poi_id.as_ref())),
                protocol_version: "3.0",
                sale_id: text(header.and_then(|h| h.sale_id.as_ref())),
                service_id: text(header.and_then(|h| h.service_id.as_ref())),
            },
        },
    };
    crate::json_response(
        StatusCode::OK,
        serde_json::to_vec(&body).expect("a rejection always serializes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn additional_response_is_url_encoded_like_adyens() {
        assert_eq!(
            additional_response("Terminal is not reachable"),
            "message=Terminal+is+not+reachable"
        );
    }

    #[test]
    fn an_unknown_card_is_wrong_pin_only_when_a_pin_was_sent() {
        let refusal = Refusal::Domain(DomainError::InvalidCard);
        assert_eq!(failure(&refusal, false).condition, ErrorCondition::InvalidCard);
        assert_eq!(failure(&refusal, true).condition, ErrorCondition::WrongPin);
    }
}
