//! The Terminal API's recovery messages. A sale system that lost the answer to a message asks
//! with a `TransactionStatusRequest` naming it (`MessageReference`: SaleID, POIID, ServiceID,
//! MessageCategory); giftd answers with the answer it stored under that ServiceID
//! (`RepeatedMessageResponse`), or `Failure` with `InProgress` while the message is still being
//! processed by this server, or `NotFound`. Without a ServiceID the most recent Payment,
//! Reversal or StoredValue message of that SaleID and POIID is meant. An `AbortRequest` is
//! answered 200 with no body: giftd answers every message before it takes the next, so there
//! is never anything in progress to abort, and the aborted message's own answer (recoverable
//! with TransactionStatus) tells what happened. Both are reads: nothing is written.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use giftd_domain::MerchantId;
use giftd_service::adyen::TERMINAL_SCOPE;
use giftd_service::{Rendered, ServiceError};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::error::{ErrorCondition, TerminalError, TerminalFailure};
use super::wire::*;
use super::{Category, MAX_DEVICE_ID_LENGTH, MAX_SERVICE_ID_LENGTH, envelope, header_field, parse_part};
use crate::AppState;

/// How many of a sale system's latest stored answers a TransactionStatus without a ServiceID
/// looks through for a Payment, Reversal or StoredValue (balance inquiries are stored too).
pub const MAX_LATEST_CANDIDATES: u32 = 32;

/// The categories a TransactionStatus without a `MessageCategory` or `ServiceID` looks for:
/// the messages that move value.
const TRANSACTION_CATEGORIES: [Category; 3] = [Category::Payment, Category::Reversal, Category::StoredValue];

/// The Terminal API messages this server is processing now, by merchant and idempotency key
/// (`[SaleID, POIID, ServiceID]`), so that a TransactionStatus can answer `InProgress`. A
/// message processed by another giftd process is not seen here: it is `NotFound` until its
/// answer is stored.
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<Mutex<HashSet<(MerchantId, String)>>>);

/// Marks one message in flight until dropped.
pub struct InFlightGuard {
    set: InFlight,
    entry: (MerchantId, String),
}

impl InFlight {
    pub fn enter(&self, merchant: &MerchantId, key: &str) -> InFlightGuard {
        let entry = (merchant.clone(), key.to_owned());
        self.lock().insert(entry.clone());
        InFlightGuard {
            set: self.clone(),
            entry,
        }
    }

    /// Whether a message of `merchant` whose key starts with `prefix` is in flight.
    fn any(&self, merchant: &MerchantId, prefix: &str) -> bool {
        self.lock()
            .iter()
            .any(|(m, key)| m == merchant && key.starts_with(prefix))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<(MerchantId, String)>> {
        // A panic while holding the lock leaves a set that is still consistent.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.set.lock().remove(&self.entry);
    }
}

/// The idempotency key of a Terminal API message: shared with the command path in `mod.rs`.
pub fn message_key(sale_id: &str, poi_id: &str, service_id: &str) -> String {
    serde_json::to_string(&[sale_id, poi_id, service_id]).expect("strings serialize")
}

/// The start of every key of one SaleID and POIID: `["sale","poi",`.
fn device_prefix(sale_id: &str, poi_id: &str) -> String {
    let mut prefix = serde_json::to_string(&[sale_id, poi_id]).expect("strings serialize");
    prefix.pop();
    prefix.push(',');
    prefix
}

/// `TransactionStatusRequest`. `header` is the answer's header; `sale_id` and `poi_id` the
/// request's.
pub async fn transaction_status(
    app: &AppState,
    merchant: &MerchantId,
    body: Option<&RawValue>,
    header: TerminalResponseHeader,
    sale_id: &str,
    poi_id: &str,
) -> Response {
    let answer = |response: TerminalTransactionStatusResponse| {
        let mut body = super::empty_header_body(header.clone());
        body.transaction_status = Some(response);
        let rendered = envelope(body);
        crate::json_response(StatusCode::OK, rendered.body)
    };
    let failure = |failure: TerminalFailure| {
        answer(TerminalTransactionStatusResponse {
            response: failure.result(),
            message_reference: None,
            repeated_message_response: None,
        })
    };
    // The body is optional: an empty request means the latest transaction of this device.
    let request: TerminalTransactionStatusRequest = match body {
        None => TerminalTransactionStatusRequest {
            message_reference: None,
            receipt_reprint_flag: None,
            document_qualifier: None,
        },
        Some(raw) => match parse_part(raw, "TransactionStatusRequest") {
            Ok(request) => request,
            Err(details) => return failure(TerminalFailure::message_format(details)),
        },
    };
    let reference = request.message_reference.unwrap_or_default();
    let ref_sale = match reference.sale_id.as_ref() {
        Some(text) => match header_field(Some(text), "SaleID", MAX_DEVICE_ID_LENGTH) {
            Ok(text) => text,
            Err(details) => return failure(TerminalFailure::message_format(reference_field(details))),
        },
        None => sale_id.to_owned(),
    };
    let ref_poi = match reference.poi_id.as_ref() {
        Some(text) => match header_field(Some(text), "POIID", MAX_DEVICE_ID_LENGTH) {
            Ok(text) => text,
            Err(details) => return failure(TerminalFailure::message_format(reference_field(details))),
        },
        None => poi_id.to_owned(),
    };
    let wanted = match reference.message_category.as_deref() {
        None => None,
        Some(name) => match Category::parse(name) {
            Some(category) => Some(category),
            // A category giftd never answers (CardAcquisition, Loyalty, ...) has no answer here.
            None => return failure(not_found()),
        },
    };
    let found = match reference.service_id.as_ref() {
        Some(text) => {
            let service_id = match header_field(Some(text), "ServiceID", MAX_SERVICE_ID_LENGTH) {
                Ok(text) => text,
                Err(details) => return failure(TerminalFailure::message_format(reference_field(details))),
            };
            let key = message_key(&ref_sale, &ref_poi, &service_id);
            if app.terminal_in_flight.any(merchant, &key) {
                return failure(in_progress());
            }
            match app.service.stored_answer(merchant, TERMINAL_SCOPE, &key).await {
                Ok(stored) => stored
                    .and_then(|rendered| Stored::read(rendered, service_id))
                    .filter(|stored| wanted.is_none_or(|category| stored.category == category)),
                Err(error) => return service_failure(error),
            }
        }
        None => {
            let prefix = device_prefix(&ref_sale, &ref_poi);
            if app.terminal_in_flight.any(merchant, &prefix) {
                return failure(in_progress());
            }
            let latest = app
                .service
                .stored_answers_by_prefix(merchant, TERMINAL_SCOPE, &prefix, MAX_LATEST_CANDIDATES)
                .await;
            match latest {
                Ok(latest) => latest.into_iter().find_map(|(key, rendered)| {
                    let service_id = serde_json::from_str::<[String; 3]>(&key).ok()?[2].clone();
                    Stored::read(rendered, service_id).filter(|stored| match wanted {
                        Some(category) => stored.category == category,
                        None => TRANSACTION_CATEGORIES.contains(&stored.category),
                    })
                }),
                Err(error) => return service_failure(error),
            }
        }
    };
    let Some(stored) = found else {
        return failure(not_found());
    };
    answer(TerminalTransactionStatusResponse {
        response: TerminalResult {
            result: "Success",
            error_condition: None,
            additional_response: None,
        },
        message_reference: Some(TerminalMessageReferenceOut {
            message_category: stored.category.as_str().to_owned(),
            service_id: stored.service_id,
            sale_id: ref_sale,
            poi_id: ref_poi,
        }),
        repeated_message_response: Some(TerminalRepeatedMessageResponse {
            message_header: stored.header,
            repeated_response_message_body: stored.body,
        }),
    })
}

/// `AbortRequest`: 200 with an empty body, nothing changed (see the module's note). A message
/// that is not an AbortRequest is rejected as any malformed message is.
pub fn abort(body: Option<&RawValue>) -> Result<Response, String> {
    let raw = body.ok_or_else(|| "An Abort message needs an AbortRequest.".to_owned())?;
    let request: TerminalAbortRequest = parse_part(raw, "AbortRequest")?;
    tracing::info!(
        service_id = request
            .message_reference
            .service_id
            .as_ref()
            .map(|t| t.0.as_str()),
        "a Terminal API abort arrived after the message it names was answered; nothing to abort"
    );
    Ok(StatusCode::OK.into_response())
}

/// A stored answer split into what a `RepeatedMessageResponse` carries.
struct Stored {
    category: Category,
    service_id: String,
    header: Value,
    body: Map<String, Value>,
}

impl Stored {
    /// `None` for an answer that is not a Terminal API response (none is stored otherwise).
    fn read(rendered: Rendered, service_id: String) -> Option<Self> {
        let Value::Object(mut answer) = serde_json::from_slice(&rendered.body).ok()? else {
            return None;
        };
        let Value::Object(mut response) = answer.remove("SaleToPOIResponse")? else {
            return None;
        };
        let header = response.remove("MessageHeader")?;
        let category = Category::parse(header.get("MessageCategory")?.as_str()?)?;
        let name = format!("{}Response", category.as_str());
        let inner = response.remove(&name)?;
        Some(Self {
            category,
            service_id,
            header,
            body: Map::from_iter([(name, inner)]),
        })
    }
}

fn reference_field(details: String) -> String {
    details.replace("MessageHeader.", "MessageReference.")
}

fn not_found() -> TerminalFailure {
    TerminalFailure::new(
        ErrorCondition::NotFound,
        "No message with this reference was answered within the last 48 hours.",
    )
}

fn in_progress() -> TerminalFailure {
    TerminalFailure::new(ErrorCondition::InProgress, "Uncompleted transaction")
}

fn service_failure(error: ServiceError) -> Response {
    TerminalError::from(error).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_in_flight_until_its_guard_drops_and_only_for_its_merchant() {
        let in_flight = InFlight::default();
        let merchant = MerchantId::new("mer_a");
        let other = MerchantId::new("mer_b");
        let key = message_key("POS1", "V400m-1", "S1");
        let guard = in_flight.enter(&merchant, &key);
        assert!(in_flight.any(&merchant, &key));
        assert!(in_flight.any(&merchant, &device_prefix("POS1", "V400m-1")));
        assert!(!in_flight.any(&merchant, &device_prefix("POS1", "V400m-2")));
        assert!(!in_flight.any(&other, &key));
        drop(guard);
        assert!(!in_flight.any(&merchant, &key));
    }

    #[test]
    fn a_device_prefix_starts_every_key_of_that_device_and_no_other() {
        let prefix = device_prefix("POS1", "V400m-1");
        assert!(message_key("POS1", "V400m-1", "S1").starts_with(&prefix));
        assert!(!message_key("POS1", "V400m-10", "S1").starts_with(&prefix));
        assert!(!message_key("POS1\",\"V400m-1", "x", "S1").starts_with(&prefix));
    }
}
