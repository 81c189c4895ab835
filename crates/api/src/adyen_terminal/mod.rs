//! The Adyen Terminal API facade, cloud sync flavour: `POST /sync` takes a
//! `{"SaleToPOIRequest": ...}` and answers `{"SaleToPOIResponse": ...}`, so that a
//! point-of-sale system written for Adyen's cloud (`https://terminal-api-test.adyen.com/sync`)
//! works against giftd, which plays both the cloud and the terminal.
//!
//! Messages: BalanceInquiry; StoredValue (Activate, Load, Unload, Reverse); Payment with a gift
//! card (PaymentType Normal, with partial authorisation, cash-out and deactivation through
//! `redemptionType`, and Refund: an unreferenced refund);
//! Reversal of a payment; TransactionStatus and Abort (`status.rs`). Handlers convert the wire request straight into service commands
//! (`giftd_service::adyen::AdyenCommand`, never the native API's types) and render the outcome
//! in Adyen's shape with this module's renderer and `error.rs`. A repeated ServiceID (per SaleID
//! and POIID, for 48 hours) replays the first answer, or is rejected when the message differs.
//! No SQL and no business rules here. docs/ADYEN.md records the mapping and every choice the
//! vendor's documentation leaves open.

pub mod error;
pub mod status;
pub mod wire;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use giftd_domain::{Amount, CardNumber, Currency, MerchantId, SecurityCode, Timestamp};
use giftd_service::adyen::{
    AdyenApi, AdyenCommand, AdyenMovement, AdyenOutcome, AdyenReference, PresentedCard, StoredValueItem,
    TERMINAL_SCOPE, Tag,
};
use giftd_service::{IdempotencyKey, Refusal, Rendered, ServiceError};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::AppState;
use error::{ErrorCondition, TerminalError, TerminalFailure};
use wire::*;

/// How the edge guards the Terminal API (`guard.rs`): a message presenting a `SecurityCode`
/// counts toward the rate limits; refusals in the Terminal API's shape.
pub const EDGE: crate::guard::FrontEndEdge = crate::guard::FrontEndEdge {
    owns: |path| path == "/sync",
    code_fields: &["SecurityCode"],
    counts: crate::guard::none,
    inspects_body: crate::guard::every_write,
    refusal: |status, _, message| error::edge(status, &message),
    query_refusal: None,
    channel: giftd_domain::Channel::Adyen,
};

/// The header Adyen's cloud takes the API key in (any case).
pub const API_KEY_HEADER: &str = "x-api-key";
/// Longest `ServiceID`: nexo's pattern is `^.{1,10}$`.
pub const MAX_SERVICE_ID_LENGTH: usize = 10;
/// Longest `SaleID` or `POIID` giftd keeps (they name a cash register and a terminal).
pub const MAX_DEVICE_ID_LENGTH: usize = 64;
/// Most `StoredValueData` entries in one StoredValueRequest (all are applied, or none).
pub const MAX_STORED_VALUE_ITEMS: usize = 10;
/// Longest sale reference (`SaleTransactionID.TransactionID`) kept with giftd's transactions.
pub const MAX_SALE_REFERENCE_LENGTH: usize = 255;
/// The one `PaymentInstrumentType` giftd takes: gift cards.
const STORED_VALUE: &str = "StoredValue";
/// The key of giftd's extension to `StoredValueAccountID`: the card's security code (PIN).
const SECURITY_CODE_FIELD: &str = "SecurityCode";

/// The facade's route: `POST /sync`, at the root as Adyen's cloud has it.
pub fn router() -> Router<AppState> {
    Router::new().route("/sync", post(sync))
}

/// The merchant behind the `X-API-Key` header (a giftd merchant API key).
pub struct TerminalMerchant(pub MerchantId);

impl FromRequestParts<AppState> for TerminalMerchant {
    type Rejection = TerminalError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let key = crate::credentials::key_header(&parts.headers, API_KEY_HEADER).unwrap_or_default();
        Ok(Self(
            state.service.authenticate(key, crate::access::of(parts)).await?,
        ))
    }
}

/// What a message asks: one of the categories that run a command, or a recovery message
/// (`status.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Message {
    Command(Category),
    TransactionStatus,
    Abort,
}

impl Message {
    fn parse(value: &str) -> Option<Self> {
        match value {
            "TransactionStatus" => Some(Self::TransactionStatus),
            "Abort" => Some(Self::Abort),
            other => Category::parse(other).map(Self::Command),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Command(category) => category.as_str(),
            Self::TransactionStatus => "TransactionStatus",
            Self::Abort => "Abort",
        }
    }
}

/// The categories of the messages that run a command, and whose answers are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    BalanceInquiry,
    StoredValue,
    Payment,
    Reversal,
}

impl Category {
    fn as_str(self) -> &'static str {
        match self {
            Self::BalanceInquiry => "BalanceInquiry",
            Self::StoredValue => "StoredValue",
            Self::Payment => "Payment",
            Self::Reversal => "Reversal",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value {
            "BalanceInquiry" => Some(Self::BalanceInquiry),
            "StoredValue" => Some(Self::StoredValue),
            "Payment" => Some(Self::Payment),
            "Reversal" => Some(Self::Reversal),
            _ => None,
        }
    }
}

/// One StoredValueData entry, as its result echoes it.
#[derive(Debug, Clone)]
struct ItemView {
    transaction_type: &'static str,
    account: Option<Value>,
    product_code: Option<Value>,
    ean_upc: Option<Value>,
    amount_sent: bool,
}

/// What of the request the answer echoes, and what it needs besides the outcome.
#[derive(Debug, Clone)]
struct View {
    header: TerminalResponseHeader,
    category: Category,
    sale_data: Value,
    /// The `POITransactionID` of this request (also on a failure, where it names nothing).
    reference: AdyenReference,
    now: Timestamp,
    pin_presented: bool,
    merchant_id: String,
    items: Vec<ItemView>,
    payment_type: &'static str,
    /// A gift card payment's `redemptionType`, when it had one.
    redemption: Option<RedemptionType>,
    account: Option<Value>,
}

/// A message that is not even a request giftd can answer: rejected, never answered.
struct Rejection {
    header: Option<TerminalMessageHeader>,
    details: String,
}

impl Rejection {
    fn new(header: Option<&TerminalMessageHeader>, details: impl Into<String>) -> Self {
        Self {
            header: header.cloned(),
            details: details.into(),
        }
    }
}

/// `POST /sync`.
async fn sync(
    State(app): State<AppState>,
    TerminalMerchant(merchant): TerminalMerchant,
    body: Body,
) -> Response {
    let now = app.service.now();
    let max_body_bytes = app.limits.max_body_bytes;
    let Ok(bytes) = axum::body::to_bytes(body, max_body_bytes).await else {
        let details = format!("The message is larger than {max_body_bytes} bytes.");
        return error::reject(None, &details, None, now);
    };
    match handle(&app, merchant, &bytes, now).await {
        Ok(response) => response,
        Err(rejection) => error::reject(rejection.header.as_ref(), &rejection.details, Some(&bytes), now),
    }
}

fn parse_part<'a, T: serde::Deserialize<'a>>(raw: &'a RawValue, name: &str) -> Result<T, String> {
    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if path.is_empty() || path == "." {
            format!("{name}: {inner}.")
        } else {
            format!("{name}.{path}: {inner}.")
        }
    })
}

/// A header field that must be there: text of 1 to `max` printable characters.
fn header_field(value: Option<&WireText>, name: &str, max: usize) -> Result<String, String> {
    let text = value.map(|t| t.0.as_str()).unwrap_or_default();
    let fine =
        !text.is_empty() && text.len() <= max && text.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    if fine {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "MessageHeader.{name} is required: 1 to {max} printable characters."
        ))
    }
}

async fn handle(
    app: &AppState,
    merchant: MerchantId,
    bytes: &[u8],
    now: Timestamp,
) -> Result<Response, Rejection> {
    let canonical: Value = crate::json::from_slice(bytes)
        .map_err(|e| Rejection::new(None, format!("The message is not valid JSON: {e}.")))?;
    let envelope: TerminalEnvelope<'_> = serde_json::from_slice(bytes)
        .map_err(|e| Rejection::new(None, format!("The message is not a SaleToPOIRequest: {e}.")))?;
    let request = envelope
        .request
        .ok_or_else(|| Rejection::new(None, "The message has no SaleToPOIRequest."))?;
    let parts: TerminalParts<'_> =
        parse_part(request, "SaleToPOIRequest").map_err(|details| Rejection::new(None, details))?;
    let header: TerminalMessageHeader = parse_part(
        parts
            .message_header
            .ok_or_else(|| Rejection::new(None, "The message has no MessageHeader."))?,
        "MessageHeader",
    )
    .map_err(|details| Rejection::new(None, details))?;
    let reject = |details: String| Rejection::new(Some(&header), details);
    if header.message_class.as_deref() != Some("Service") || header.message_type.as_deref() != Some("Request")
    {
        return Err(reject(
            "giftd answers requests only: MessageClass Service, MessageType Request.".into(),
        ));
    }
    let sale_id = header_field(header.sale_id.as_ref(), "SaleID", MAX_DEVICE_ID_LENGTH).map_err(reject)?;
    let poi_id = header_field(header.poi_id.as_ref(), "POIID", MAX_DEVICE_ID_LENGTH).map_err(reject)?;
    let service_id =
        header_field(header.service_id.as_ref(), "ServiceID", MAX_SERVICE_ID_LENGTH).map_err(reject)?;
    let category_name = header.message_category.clone().unwrap_or_default();
    let message = Message::parse(&category_name).ok_or_else(|| {
        // Named back only when the text rule lets it be echoed.
        let named = if crate::text::check_str(&category_name).is_ok() {
            format!(" {category_name:?}")
        } else {
            String::new()
        };
        reject(format!(
            "giftd does not handle MessageCategory{named}; it handles BalanceInquiry, StoredValue, Payment, Reversal, TransactionStatus and Abort."
        ))
    })?;
    // A message with a control or bidirectional formatting character anywhere is answered
    // MessageFormat before any of its parts is read into the answer, so none is echoed back;
    // of the header, only fields without one are.
    let refused_text = crate::text::check_json(bytes).err();
    let echoed = |text: Option<&WireText>| {
        text.filter(|t| crate::text::check_str(&t.0).is_ok())
            .map(|t| t.0.clone())
    };
    let response_header = TerminalResponseHeader {
        protocol_version: echoed(header.protocol_version.as_ref()).unwrap_or_else(|| "3.0".to_owned()),
        sale_id: sale_id.clone(),
        message_class: "Service",
        message_category: message.as_str(),
        service_id: Some(service_id.clone()),
        device_id: echoed(header.device_id.as_ref()),
        poi_id: poi_id.clone(),
        message_type: "Response",
    };
    let category = match message {
        Message::Command(category) => category,
        Message::TransactionStatus => {
            if let Some(refused) = refused_text {
                return Err(reject(refused.to_string()));
            }
            return Ok(status::transaction_status(
                app,
                &merchant,
                parts.transaction_status_request,
                response_header,
                &sale_id,
                &poi_id,
            )
            .await);
        }
        Message::Abort => {
            if let Some(refused) = refused_text {
                return Err(reject(refused.to_string()));
            }
            return status::abort(parts.abort_request).map_err(reject);
        }
    };
    let mut view = View {
        header: response_header,
        category,
        sale_data: Value::Object(Map::new()),
        reference: AdyenReference::generate(),
        now,
        pin_presented: false,
        merchant_id: merchant.to_string(),
        items: Vec::new(),
        payment_type: "Normal",
        redemption: None,
        account: None,
    };
    let body = match category {
        Category::BalanceInquiry => parts.balance_inquiry_request,
        Category::StoredValue => parts.stored_value_request,
        Category::Payment => parts.payment_request,
        Category::Reversal => parts.reversal_request,
    };
    let command = match (refused_text, body) {
        (Some(refused), _) => Err(TerminalFailure::message_format(refused.to_string())),
        (None, None) => Err(TerminalFailure::message_format(format!(
            "A {} message needs a {}Request.",
            category.as_str(),
            category.as_str()
        ))),
        (None, Some(body)) => match category {
            Category::BalanceInquiry => balance_inquiry(body, &mut view),
            Category::StoredValue => stored_value(body, &mut view),
            Category::Payment => payment(body, &mut view),
            Category::Reversal => reversal(body, &mut view),
        },
    };
    let command = match command {
        Ok(command) => command,
        // Nothing ran, so nothing is remembered under the ServiceID: a corrected message with
        // the same ServiceID is processed.
        Err(failure) => return Ok(answer(failure_body(&view, &failure))),
    };
    let idempotency = IdempotencyKey {
        scope: TERMINAL_SCOPE,
        key: status::message_key(&sale_id, &poi_id, &service_id),
        request_hash: request_hash(&canonical),
    };
    // Seen by a TransactionStatus for this message until its answer is stored and sent.
    let _in_flight = app.terminal_in_flight.enter(&merchant, &idempotency.key);
    let rendered = app
        .service
        .execute(
            merchant,
            command,
            Some(idempotency),
            Box::new(move |result| render(result, &view)),
        )
        .await;
    match rendered {
        Ok(rendered) => Ok(answer(rendered)),
        Err(ServiceError::IdempotencyKeyReused) => Err(reject(format!(
            "ServiceID {service_id} was already used by SaleID {sale_id} on POIID {poi_id} for another message within 48 hours."
        ))),
        Err(error) => Ok(TerminalError::from(error).into_response()),
    }
}

fn answer(rendered: Rendered) -> Response {
    let status = StatusCode::from_u16(rendered.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    crate::json_response(status, rendered.body)
}

/// Method, path and the message in canonical form (keys sorted, whitespace dropped): the same
/// message under the same ServiceID is a retry, anything else a reuse.
fn request_hash(message: &Value) -> Vec<u8> {
    let mut digest = Sha256::new();
    digest.update(b"POST\n/sync\n");
    digest.update(message.to_string().as_bytes());
    digest.finalize().to_vec()
}

// ---- reading requests into commands ----

type Parsed<T> = Result<T, TerminalFailure>;

fn part<T: DeserializeOwned>(raw: &RawValue, name: &str) -> Parsed<T> {
    parse_part(raw, name).map_err(TerminalFailure::message_format)
}

fn currency(code: Option<&str>, field: &str) -> Parsed<Currency> {
    let code = code.ok_or_else(|| TerminalFailure::message_format(format!("{field} is required.")))?;
    Currency::parse(code).ok_or_else(|| {
        TerminalFailure::message_format(format!("{field} must be a three-letter ISO 4217 code, e.g. EUR."))
    })
}

/// A decimal amount in minor units of `currency`: `None` for zero.
fn minor_amount(value: WireDecimal, currency: Currency, field: &str) -> Parsed<Option<Amount>> {
    let minor = value
        .0
        .to_minor(currency)
        .map_err(|error| TerminalFailure::message_format(format!("{field}: {error}.")))?;
    if minor == 0 {
        return Ok(None);
    }
    Amount::new(minor)
        .map(Some)
        .map_err(|_| TerminalFailure::message_format(format!("{field} must be more than zero.")))
}

fn positive_amount(value: Option<WireDecimal>, currency: Currency, field: &str) -> Parsed<Amount> {
    let value = value.ok_or_else(|| TerminalFailure::message_format(format!("{field} is required.")))?;
    minor_amount(value, currency, field)?
        .ok_or_else(|| TerminalFailure::message_format(format!("{field} must be more than zero.")))
}

/// The card in a `StoredValueAccountID`: `StoredValueID` (or `Value`, as older clients name
/// it), and giftd's `SecurityCode` extension when the PIN was taken. Records in `view` whether
/// a PIN came, and returns the account to echo (without the PIN).
fn presented_card(account: Option<&Value>, view: &mut View) -> Parsed<(PresentedCard, Value)> {
    let Some(account) = account else {
        return Err(TerminalFailure::new(
            ErrorCondition::InvalidCard,
            "No card was presented: send PaymentInstrumentData.StoredValueAccountID with the card number.",
        ));
    };
    let Some(object) = account.as_object() else {
        return Err(TerminalFailure::message_format(
            "StoredValueAccountID must be an object.",
        ));
    };
    let number = object
        .get("StoredValueID")
        .or_else(|| object.get("Value"))
        .and_then(text_of)
        .ok_or_else(|| {
            TerminalFailure::new(
                ErrorCondition::InvalidCard,
                "No card number: send StoredValueAccountID.StoredValueID.",
            )
        })?;
    let security_code = object.get(SECURITY_CODE_FIELD).map(text_of);
    if security_code.is_some() {
        view.pin_presented = true;
    }
    // A number or code that cannot be a card's cannot match one: answered like a wrong one.
    let declined = |pin: bool| error::failure(&Refusal::Domain(giftd_domain::DomainError::InvalidCard), pin);
    let number = CardNumber::parse(&number).ok_or_else(|| declined(false))?;
    // A malformed code is checked like a wrong one (it counts toward the lockout).
    let security_code =
        security_code.map(|text| SecurityCode::presented(text.as_deref().unwrap_or_default()));
    let mut echoed = object.clone();
    echoed.remove(SECURITY_CODE_FIELD);
    Ok((
        PresentedCard {
            number,
            security_code,
        },
        Value::Object(echoed),
    ))
}

/// The sale's echo and the sale system's reference of it.
fn sale(sale_data: Option<&TerminalSaleData>, view: &mut View) -> Parsed<Option<String>> {
    let Some(sale_data) = sale_data else {
        return Ok(None);
    };
    let mut echo = Map::new();
    if let Some(id) = &sale_data.sale_transaction_id {
        echo.insert("SaleTransactionID".into(), id.clone());
    }
    if let Some(reference) = &sale_data.sale_reference_id {
        echo.insert("SaleReferenceID".into(), Value::String(reference.0.clone()));
    }
    view.sale_data = Value::Object(echo);
    let reference = sale_data
        .sale_transaction_id
        .as_ref()
        .and_then(|id| id.get("TransactionID"))
        .and_then(text_of);
    match reference {
        Some(reference) if reference.len() > MAX_SALE_REFERENCE_LENGTH => {
            Err(TerminalFailure::message_format(format!(
                "SaleData.SaleTransactionID.TransactionID is longer than {MAX_SALE_REFERENCE_LENGTH} characters."
            )))
        }
        other => Ok(other),
    }
}

fn tag(view: &View, merchant_reference: Option<String>) -> Tag {
    Tag {
        reference: view.reference.clone(),
        merchant_reference,
    }
}

/// The `POITransactionID` an earlier answer gave. One that cannot be ours names nothing.
fn original_reference(
    original: Option<&TerminalOriginalPoiTransaction>,
    field: &str,
) -> Parsed<AdyenReference> {
    let id = original
        .and_then(|o| o.poi_transaction_id.as_ref())
        .and_then(|p| p.transaction_id.as_ref())
        .ok_or_else(|| {
            TerminalFailure::message_format(format!("{field}.POITransactionID.TransactionID is required."))
        })?;
    AdyenReference::parse(&id.0)
        .ok_or_else(|| TerminalFailure::new(ErrorCondition::NotFound, "No such transaction."))
}

fn check_instrument_type(data: &TerminalPaymentInstrumentData) -> Parsed<()> {
    match data.payment_instrument_type.as_deref() {
        None | Some(STORED_VALUE) => Ok(()),
        Some(other) => Err(TerminalFailure::new(
            ErrorCondition::NotAllowed,
            format!("giftd processes gift cards only (PaymentInstrumentType StoredValue), not {other}."),
        )),
    }
}

fn balance_inquiry(body: &RawValue, view: &mut View) -> Parsed<AdyenCommand> {
    let request: TerminalBalanceInquiryRequest = part(body, "BalanceInquiryRequest")?;
    let data = request
        .payment_account_req
        .and_then(|r| r.payment_instrument_data);
    if let Some(data) = &data {
        check_instrument_type(data)?;
    }
    let account = data.and_then(|d| d.stored_value_account_id);
    let (card, _) = presented_card(account.as_ref(), view)?;
    Ok(AdyenCommand::Balance { card })
}

fn stored_value(body: &RawValue, view: &mut View) -> Parsed<AdyenCommand> {
    let request: TerminalStoredValueRequest = part(body, "StoredValueRequest")?;
    let merchant_reference = sale(request.sale_data.as_ref(), view)?;
    let entries = request.stored_value_data.unwrap_or_default();
    if entries.is_empty() || entries.len() > MAX_STORED_VALUE_ITEMS {
        return Err(TerminalFailure::message_format(format!(
            "StoredValueData must list 1 to {MAX_STORED_VALUE_ITEMS} entries."
        )));
    }
    let mut items = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let field = |name: &str| format!("StoredValueData[{i}].{name}");
        let amount_field = field("ItemAmount");
        // An amount needs its currency: the exponent that reads it is the currency's.
        let currency = match (&entry.item_amount, entry.currency.as_deref()) {
            (None, None) => None,
            (_, code) => Some(currency(code, &field("Currency"))?),
        };
        let amount = match (entry.item_amount, currency) {
            (Some(value), Some(currency)) => Some(minor_amount(value, currency, &amount_field)?),
            _ => None,
        };
        let kind = entry.stored_value_transaction_type.as_deref().unwrap_or_default();
        let (transaction_type, item, account) = match kind {
            "Activate" => {
                let (card, account) = presented_card(entry.stored_value_account_id.as_ref(), view)?;
                let item = StoredValueItem::Activate {
                    card,
                    amount: amount.flatten(),
                    currency,
                };
                ("Activate", item, Some(account))
            }
            "Load" => {
                let (card, account) = presented_card(entry.stored_value_account_id.as_ref(), view)?;
                let currency = currency.ok_or_else(|| {
                    TerminalFailure::message_format(format!(
                        "{} and {} are required.",
                        amount_field,
                        field("Currency")
                    ))
                })?;
                let amount = positive_amount(entry.item_amount, currency, &amount_field)?;
                (
                    "Load",
                    StoredValueItem::Load {
                        card,
                        amount,
                        currency,
                    },
                    Some(account),
                )
            }
            "Unload" => {
                let (card, account) = presented_card(entry.stored_value_account_id.as_ref(), view)?;
                if amount.is_some_and(|a| a.is_none()) {
                    return Err(TerminalFailure::message_format(format!(
                        "{amount_field} must be more than zero; leave it out to unload all that is available."
                    )));
                }
                let item = StoredValueItem::Unload {
                    card,
                    amount: amount.flatten(),
                    currency,
                };
                ("Unload", item, Some(account))
            }
            "Reverse" => {
                let original = original_reference(
                    entry.original_poi_transaction.as_ref(),
                    &field("OriginalPOITransaction"),
                )?;
                let (card, account) = match &entry.stored_value_account_id {
                    Some(account) => {
                        let (card, account) = presented_card(Some(account), view)?;
                        (Some(card), Some(account))
                    }
                    None => (None, None),
                };
                let item = StoredValueItem::Reverse {
                    original,
                    card,
                    amount: amount.flatten(),
                };
                ("Reverse", item, account)
            }
            "Duplicate" | "Reserve" => {
                return Err(TerminalFailure::new(
                    ErrorCondition::NotAllowed,
                    format!("giftd does not do StoredValueTransactionType {kind}."),
                ));
            }
            other => {
                return Err(TerminalFailure::message_format(format!(
                    "{} must be Activate, Load, Unload or Reverse, not {other:?}.",
                    field("StoredValueTransactionType")
                )));
            }
        };
        view.items.push(ItemView {
            transaction_type,
            account,
            product_code: entry.product_code.clone(),
            ean_upc: entry.ean_upc.clone(),
            amount_sent: entry.item_amount.is_some(),
        });
        items.push(item);
    }
    Ok(AdyenCommand::StoredValue {
        tag: tag(view, merchant_reference),
        items,
    })
}

/// The values `SaleToAcquirerData` gives `key`, in either of its encodings: base64 of a JSON
/// object (what Adyen's Java and .NET libraries send), or URL-encoded `key=value&...` text. A
/// JSON value that is not a string comes back as its JSON text (which no option matches).
fn acquirer_data_values(data: &str, key: &str) -> Vec<String> {
    let json = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .filter(Value::is_object);
    match json {
        Some(json) => json
            .get(key)
            .map(|value| match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .into_iter()
            .collect(),
        None => serde_urlencoded::from_str::<Vec<(String, String)>>(data)
            .unwrap_or_default()
            .into_iter()
            .filter(|(name, _)| name == key)
            .map(|(_, value)| value)
            .collect(),
    }
}

/// Whether `SaleToAcquirerData` asks for partial authorisation: `tenderOption` holding
/// `AllowPartialAuthorisation` (alone or in a comma-separated list).
fn allows_partial_authorisation(data: &str) -> bool {
    acquirer_data_values(data, "tenderOption")
        .iter()
        .flat_map(|value| value.split(','))
        .any(|option| option.trim() == "AllowPartialAuthorisation")
}

/// What a gift card PaymentRequest's `redemptionType` (in `SaleToAcquirerData`) asks: Adyen's
/// values for cashing out and deactivating a gift card, which may be piped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RedemptionType {
    /// `cashback`: pay out the whole remaining balance; the card is closed after it.
    Cashback,
    /// `deactivate`: close the card without paying anything out (only an empty card).
    Deactivate,
    /// `cashback|deactivate`: both, in one transaction.
    CashbackDeactivate,
}

impl RedemptionType {
    /// The values giftd takes, as a failure names them.
    const ACCEPTED: &str = "cashback, deactivate or cashback|deactivate";

    fn parse(value: &str) -> Option<Self> {
        match value {
            "cashback" => Some(Self::Cashback),
            "deactivate" => Some(Self::Deactivate),
            "cashback|deactivate" => Some(Self::CashbackDeactivate),
            _ => None,
        }
    }
}

/// Longest unknown `redemptionType` value a failure quotes back.
const MAX_QUOTED_OPTION_LENGTH: usize = 40;

/// The `redemptionType` `SaleToAcquirerData` carries, if any. An unknown value, or two
/// different ones, is `MessageFormat` naming the values giftd takes.
fn redemption_type(data: &str) -> Parsed<Option<RedemptionType>> {
    let mut found = None;
    for value in acquirer_data_values(data, "redemptionType") {
        let Some(parsed) = RedemptionType::parse(&value) else {
            // Quoted back only when it is short, printable text (a base64 value is not checked
            // by the message-wide text rule).
            let quoted = if value.len() <= MAX_QUOTED_OPTION_LENGTH
                && value.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
            {
                format!(" {value:?}")
            } else {
                String::new()
            };
            return Err(TerminalFailure::message_format(format!(
                "SaleData.SaleToAcquirerData: giftd does not know the redemptionType{quoted}; it takes {}.",
                RedemptionType::ACCEPTED
            )));
        };
        if found.is_some_and(|earlier| earlier != parsed) {
            return Err(TerminalFailure::message_format(
                "SaleData.SaleToAcquirerData gives two different redemptionTypes; give one.",
            ));
        }
        found = Some(parsed);
    }
    Ok(found)
}

fn payment(body: &RawValue, view: &mut View) -> Parsed<AdyenCommand> {
    let request: TerminalPaymentRequest = part(body, "PaymentRequest")?;
    let merchant_reference = sale(request.sale_data.as_ref(), view)?;
    let acquirer_data = request
        .sale_data
        .as_ref()
        .and_then(|s| s.sale_to_acquirer_data.as_deref());
    let redemption = acquirer_data.map(redemption_type).transpose()?.flatten();
    view.redemption = redemption;
    let amounts = request
        .payment_transaction
        .and_then(|t| t.amounts_req)
        .ok_or_else(|| TerminalFailure::message_format("PaymentTransaction.AmountsReq is required."))?;
    let currency = currency(
        amounts.currency.as_deref(),
        "PaymentTransaction.AmountsReq.Currency",
    )?;
    const REQUESTED_AMOUNT: &str = "PaymentTransaction.AmountsReq.RequestedAmount";
    // A deactivation pays nothing out: its RequestedAmount is 0, or left out.
    let amount = if redemption == Some(RedemptionType::Deactivate) {
        let requested = amounts
            .requested_amount
            .map(|value| minor_amount(value, currency, REQUESTED_AMOUNT))
            .transpose()?
            .flatten();
        if requested.is_some() {
            return Err(TerminalFailure::message_format(
                "RequestedAmount must be 0 with redemptionType deactivate, which pays nothing out; cashback|deactivate pays out the balance and closes the card.",
            ));
        }
        None
    } else {
        Some(positive_amount(
            amounts.requested_amount,
            currency,
            REQUESTED_AMOUNT,
        )?)
    };
    for (value, name) in [
        (amounts.tip_amount, "TipAmount"),
        (amounts.cash_back_amount, "CashBackAmount"),
    ] {
        if value.is_some_and(|v| !v.0.is_zero()) {
            return Err(TerminalFailure::new(
                ErrorCondition::NotAllowed,
                format!("giftd does not pay out a {name} from a gift card."),
            ));
        }
    }
    let data = request.payment_data;
    let payment_type = data
        .as_ref()
        .and_then(|d| d.payment_type.clone())
        .unwrap_or_else(|| "Normal".to_owned());
    let instrument = data.and_then(|d| d.payment_instrument_data);
    if let Some(instrument) = &instrument {
        check_instrument_type(instrument)?;
    }
    let (card, account) = presented_card(instrument.and_then(|i| i.stored_value_account_id).as_ref(), view)?;
    view.account = Some(account);
    let tag = tag(view, merchant_reference);
    let required = |amount: Option<Amount>| {
        amount.ok_or_else(|| TerminalFailure::message_format(format!("{REQUESTED_AMOUNT} is required.")))
    };
    match (payment_type.as_str(), redemption) {
        ("Normal", None) => {
            view.payment_type = "Normal";
            Ok(AdyenCommand::Payment {
                tag,
                card,
                amount: required(amount)?,
                currency,
                allow_partial: acquirer_data.is_some_and(allows_partial_authorisation),
            })
        }
        // A full cash-out ends the card's life (Adyen: "the card is no longer active and
        // cannot be used again"), so cashback alone closes the card as the chain does.
        ("Normal", Some(RedemptionType::Cashback | RedemptionType::CashbackDeactivate)) => {
            view.payment_type = "Normal";
            Ok(AdyenCommand::CashBack {
                tag,
                card,
                amount: required(amount)?,
                currency,
            })
        }
        ("Normal", Some(RedemptionType::Deactivate)) => {
            view.payment_type = "Normal";
            Ok(AdyenCommand::Deactivate { tag, card })
        }
        (_, Some(_)) => Err(TerminalFailure::new(
            ErrorCondition::NotAllowed,
            "redemptionType applies to PaymentType Normal only.",
        )),
        ("Refund", None) => {
            view.payment_type = "Refund";
            Ok(AdyenCommand::MerchandiseReturn {
                api: AdyenApi::Terminal,
                tag,
                card,
                amount: required(amount)?,
                currency,
            })
        }
        (other, None) => Err(TerminalFailure::new(
            ErrorCondition::NotAllowed,
            format!("giftd takes PaymentType Normal or Refund with a gift card, not {other}."),
        )),
    }
}

fn reversal(body: &RawValue, view: &mut View) -> Parsed<AdyenCommand> {
    let request: TerminalReversalRequest = part(body, "ReversalRequest")?;
    let merchant_reference = sale(request.sale_data.as_ref(), view)?;
    let original = original_reference(
        request.original_poi_transaction.as_ref(),
        "OriginalPOITransaction",
    )?;
    let amount = match request.reversed_amount {
        Some(value) if value.0.is_zero() => {
            return Err(TerminalFailure::message_format(
                "ReversedAmount must be more than zero; leave it out to reverse the whole payment.",
            ));
        }
        other => other.map(|v| v.0),
    };
    Ok(AdyenCommand::ReversePayment {
        tag: tag(view, merchant_reference),
        original,
        amount,
    })
}

// ---- answers ----

fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("Terminal API answers always serialize")
}

fn envelope(body: TerminalResponseBody) -> Rendered {
    Rendered {
        status: 200,
        body: to_json(&TerminalResponseEnvelope { response: body }),
    }
}

fn empty_body(view: &View) -> TerminalResponseBody {
    empty_header_body(view.header.clone())
}

fn empty_header_body(message_header: TerminalResponseHeader) -> TerminalResponseBody {
    TerminalResponseBody {
        balance_inquiry: None,
        stored_value: None,
        payment: None,
        reversal: None,
        transaction_status: None,
        message_header,
    }
}

fn poi_data(reference: &AdyenReference, at: Timestamp) -> TerminalPoiData {
    TerminalPoiData {
        poi_transaction_id: TerminalTransactionIdOut {
            transaction_id: reference.as_str().to_owned(),
            time_stamp: time_stamp(at),
        },
    }
}

/// The category's answer with `Result: Failure`.
fn failure_body(view: &View, failure: &TerminalFailure) -> Rendered {
    let response = failure.result();
    let mut body = empty_body(view);
    match view.category {
        Category::BalanceInquiry => {
            body.balance_inquiry = Some(TerminalBalanceInquiryResponse {
                response,
                payment_account_status: None,
            });
        }
        Category::StoredValue => {
            body.stored_value = Some(TerminalStoredValueResponse {
                response,
                sale_data: view.sale_data.clone(),
                poi_data: poi_data(&view.reference, view.now),
                stored_value_result: None,
            });
        }
        Category::Payment => {
            body.payment = Some(TerminalPaymentResponse {
                response,
                sale_data: view.sale_data.clone(),
                poi_data: poi_data(&view.reference, view.now),
                payment_result: None,
            });
        }
        Category::Reversal => {
            body.reversal = Some(TerminalReversalResponse {
                response,
                poi_data: None,
                reversed_amount: None,
            });
        }
    }
    envelope(body)
}

/// Six digits derived from a transaction id: the same transaction always shows the same code.
fn approval_code(transaction_id: &str) -> String {
    let digest = Sha256::digest(format!("adyen approval code\n{transaction_id}").as_bytes());
    let number = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 1_000_000;
    format!("{number:06}")
}

fn host_transaction_id(movement: &AdyenMovement) -> Option<TerminalTransactionIdOut> {
    movement.transaction.as_ref().map(|t| TerminalTransactionIdOut {
        transaction_id: t.id.to_string(),
        time_stamp: time_stamp(t.created_at),
    })
}

/// The account of a result when the request named none (a Reverse by POITransactionID alone):
/// the card, shown by its last four digits.
fn masked_account(movement: &AdyenMovement) -> Value {
    serde_json::json!({
        "StoredValueAccountType": "GiftCard",
        "IdentificationType": "PAN",
        "StoredValueID": format!("************{}", movement.card.last4),
    })
}

fn unexpected(view: &View) -> Rendered {
    tracing::error!(
        category = view.category.as_str(),
        "a Terminal API command produced an outcome the facade does not render"
    );
    error::internal_rendered()
}

fn render(result: &Result<AdyenOutcome, Refusal>, view: &View) -> Rendered {
    let outcome = match result {
        Err(refusal) => return failure_body(view, &error::failure(refusal, view.pin_presented)),
        Ok(outcome) => outcome,
    };
    let mut body = empty_body(view);
    match (view.category, outcome) {
        (Category::BalanceInquiry, AdyenOutcome::Balance { card }) => {
            let s = &card.snapshot;
            body.balance_inquiry = Some(TerminalBalanceInquiryResponse {
                response: TerminalResult::SUCCESS,
                payment_account_status: Some(TerminalPaymentAccountStatus {
                    current_balance: decimal(s.available(), s.currency),
                    payment_acquirer_data: TerminalPaymentAcquirerData {
                        merchant_id: None,
                        acquirer_poi_id: view.header.poi_id.clone(),
                        acquirer_transaction_id: None,
                        approval_code: None,
                    },
                    currency: s.currency.code(),
                }),
            });
        }
        (Category::StoredValue, AdyenOutcome::Done { movements, .. }) => {
            let results = movements
                .iter()
                .zip(&view.items)
                .map(|(movement, item)| {
                    let card = &movement.card.snapshot;
                    let amount = movement.transaction.as_ref().map_or(0, |t| t.amount);
                    TerminalStoredValueResult {
                        stored_value_transaction_type: item.transaction_type,
                        product_code: item.product_code.clone(),
                        ean_upc: item.ean_upc.clone(),
                        item_amount: (amount > 0 || item.amount_sent).then(|| decimal(amount, card.currency)),
                        stored_value_account_status: TerminalStoredValueAccountStatus {
                            stored_value_account_id: item
                                .account
                                .clone()
                                .unwrap_or_else(|| masked_account(movement)),
                            current_balance: decimal(card.available(), card.currency),
                        },
                        currency: card.currency.code(),
                        host_transaction_id: host_transaction_id(movement),
                    }
                })
                .collect();
            let at = movements
                .iter()
                .find_map(|m| m.transaction.as_ref())
                .map_or(view.now, |t| t.created_at);
            body.stored_value = Some(TerminalStoredValueResponse {
                response: TerminalResult::SUCCESS,
                sale_data: view.sale_data.clone(),
                poi_data: poi_data(&view.reference, at),
                stored_value_result: Some(results),
            });
        }
        (Category::Payment, AdyenOutcome::Done { movements, .. }) => {
            let Some(movement) = movements.first() else {
                return unexpected(view);
            };
            // Only a deactivation (of an empty card) moves no value: it authorises 0 and has
            // no transaction to name.
            let transaction = movement.transaction.as_ref();
            if transaction.is_none() && view.redemption != Some(RedemptionType::Deactivate) {
                return unexpected(view);
            }
            let currency = movement.card.snapshot.currency;
            let host = host_transaction_id(movement);
            body.payment = Some(TerminalPaymentResponse {
                response: TerminalResult::SUCCESS,
                sale_data: view.sale_data.clone(),
                poi_data: poi_data(&view.reference, transaction.map_or(view.now, |t| t.created_at)),
                payment_result: Some(TerminalPaymentResult {
                    payment_type: view.payment_type,
                    payment_instrument_data: TerminalPaymentInstrumentDataOut {
                        payment_instrument_type: STORED_VALUE,
                        stored_value_account_id: view
                            .account
                            .clone()
                            .unwrap_or_else(|| masked_account(movement)),
                    },
                    amounts_resp: TerminalAmountsResp {
                        authorized_amount: decimal(transaction.map_or(0, |t| t.amount), currency),
                        currency: currency.code(),
                    },
                    online_flag: true,
                    payment_acquirer_data: TerminalPaymentAcquirerData {
                        merchant_id: Some(view.merchant_id.clone()),
                        acquirer_poi_id: view.header.poi_id.clone(),
                        acquirer_transaction_id: host,
                        approval_code: transaction.map(|t| approval_code(t.id.as_str())),
                    },
                }),
            });
        }
        (Category::Reversal, AdyenOutcome::Done { movements, .. }) => {
            let Some((movement, transaction)) = movements
                .first()
                .and_then(|m| m.transaction.as_ref().map(|t| (m, t)))
            else {
                return unexpected(view);
            };
            body.reversal = Some(TerminalReversalResponse {
                response: TerminalResult::SUCCESS,
                poi_data: Some(poi_data(&view.reference, transaction.created_at)),
                reversed_amount: Some(decimal(transaction.amount, movement.card.snapshot.currency)),
            });
        }
        (
            Category::BalanceInquiry | Category::StoredValue | Category::Payment | Category::Reversal,
            AdyenOutcome::Balance { .. } | AdyenOutcome::Done { .. },
        ) => return unexpected(view),
    }
    envelope(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_authorisation_is_read_from_either_encoding() {
        assert!(allows_partial_authorisation(
            "tenderOption=AllowPartialAuthorisation"
        ));
        assert!(allows_partial_authorisation(
            "tenderOption=ReceiptHandler%2CAllowPartialAuthorisation&store=S1"
        ));
        let json = r#"{"tenderOption":"ReceiptHandler,AllowPartialAuthorisation,AskGratuity"}"#;
        let encoded = base64::engine::general_purpose::STANDARD.encode(json);
        assert!(allows_partial_authorisation(&encoded));
        assert!(!allows_partial_authorisation("tenderOption=AskGratuity"));
        assert!(!allows_partial_authorisation(""));
        let other = base64::engine::general_purpose::STANDARD.encode(r#"{"tenderOption":"AskGratuity"}"#);
        assert!(!allows_partial_authorisation(&other));
    }

    #[test]
    fn redemption_type_is_read_from_either_encoding_and_unknown_values_are_refused() {
        let encode = |json: &str| base64::engine::general_purpose::STANDARD.encode(json);
        assert_eq!(
            redemption_type("redemptionType=cashback").unwrap(),
            Some(RedemptionType::Cashback)
        );
        assert_eq!(
            redemption_type("tenderOption=ReceiptHandler&redemptionType=cashback%7Cdeactivate").unwrap(),
            Some(RedemptionType::CashbackDeactivate)
        );
        assert_eq!(
            redemption_type("redemptionType=cashback|deactivate").unwrap(),
            Some(RedemptionType::CashbackDeactivate)
        );
        assert_eq!(
            redemption_type(&encode(
                r#"{"redemptionType":"deactivate","tenderOption":"ReceiptHandler"}"#
            ))
            .unwrap(),
            Some(RedemptionType::Deactivate)
        );
        assert_eq!(
            redemption_type("tenderOption=AllowPartialAuthorisation").unwrap(),
            None
        );
        assert_eq!(redemption_type("").unwrap(), None);
        for unknown in [
            "redemptionType=refund".to_owned(),
            "redemptionType=".to_owned(),
            "redemptionType=deactivate|cashback".to_owned(),
            "redemptionType=cashback&redemptionType=deactivate".to_owned(),
            encode(r#"{"redemptionType":true}"#),
        ] {
            let failure = redemption_type(&unknown).unwrap_err();
            assert_eq!(failure.condition, ErrorCondition::MessageFormat, "{unknown}");
        }
        let failure = redemption_type("redemptionType=refund").unwrap_err();
        assert!(failure.message.contains("\"refund\""), "{}", failure.message);
        assert!(
            failure.message.contains(RedemptionType::ACCEPTED),
            "{}",
            failure.message
        );
    }

    #[test]
    fn approval_codes_are_six_stable_digits() {
        let code = approval_code("txn_0190abc");
        assert_eq!(code.len(), 6);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(code, approval_code("txn_0190abc"));
    }
}
