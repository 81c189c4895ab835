//! Property tests for the wire parsers of two vendor facades in `giftd-api`: the Clover facade's
//! lenient amounts and booleans (`"amount": "100"`, `"capture": "false"`) and its request
//! bodies, and the Adyen Terminal API's `SaleToPOIRequest` messages, read here in the order
//! `POST /sync` reads them (the JSON, the envelope, its parts, the header, then the request of
//! the header's category), with their decimal amounts in major units.
//!
//! Arbitrary input (any bytes, any JSON, a valid message with any field replaced) must be read
//! or refused, never panic; well-formed input must read as the documented value, exactly. The
//! HTTP side of the same parsers (status codes, the server staying up) is
//! `crates/cli/tests/it/fuzz_wire.rs`. Nothing here does IO.

use giftd_api::adyen_terminal::wire::{
    TerminalBalanceInquiryRequest, TerminalEnvelope, TerminalMessageHeader, TerminalParts,
    TerminalPaymentRequest, TerminalReversalRequest, TerminalStoredValueRequest, WireDecimal, WireText,
    decimal, text_of,
};
use giftd_api::clover::extract::{MAX_AMOUNT_MINOR, positive_amount};
use giftd_api::clover::wire::{CloverChargeRequest, WireAmount, WireBool};
use giftd_domain::Currency;
use giftd_domain::major_units::MajorUnits;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Cases per property: the parsers are pure, so this many stay within a few seconds in a debug
/// build.
const CASES: u32 = 2_000;
/// Longest digit string a Clover amount may be (`WireAmount`): 18 digits always fit in `i64`.
const CLOVER_MAX_AMOUNT_DIGITS: usize = 18;
/// Currencies of the exponents a Terminal amount is read with: 0, 2 and 3.
const TERMINAL_CURRENCIES: [&str; 3] = ["JPY", "EUR", "BHD"];
/// Most bytes of the arbitrary byte strings.
const MAX_BYTES: usize = 512;

// ---------------------------------------------------------------------------------------------
// Arbitrary JSON.
// ---------------------------------------------------------------------------------------------

/// JSON number texts of every shape: signs, fractions, exponents, more digits than 64 bits.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?[0-9]{1,30}(\\.[0-9]{1,30})?([eE][+-]?[0-9]{1,4})?",
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
    ]
}

/// Any JSON value, a few levels deep, its leaves weighted towards what amounts and card numbers
/// look like (digit strings, numbers of every size).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        number_text().prop_filter_map("a JSON number", |text| serde_json::from_str::<Value>(&text).ok()),
        any::<String>().prop_map(Value::String),
        "[0-9]{0,22}".prop_map(Value::String),
        "(true|false|TRUE|False|yes|1|0| true)".prop_map(Value::String),
        number_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[A-Za-z]{0,8}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// The paths (object keys and array indices) of every node of `value` but the root.
fn paths(value: &Value, prefix: &mut Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                prefix.push(PathStep::Key(key.clone()));
                out.push(prefix.clone());
                paths(item, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                prefix.push(PathStep::Index(i));
                out.push(prefix.clone());
                paths(item, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn node_mut<'a>(value: &'a mut Value, path: &[PathStep]) -> &'a mut Value {
    path.iter().fold(value, |node, step| match step {
        PathStep::Key(key) => &mut node[key.as_str()],
        PathStep::Index(i) => &mut node[*i],
    })
}

/// What to do to one node of a valid body.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(Value),
    Remove,
    /// An unknown key next to it.
    AddSibling(String, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        6 => json_value().prop_map(Mutation::Replace),
        1 => Just(Mutation::Remove),
        1 => ("[A-Za-z]{1,12}", json_value()).prop_map(|(key, value)| Mutation::AddSibling(key, value)),
    ]
}

/// `template` with `mutations` applied, each to the node `Index` picks among those there are then.
fn mutate(template: &Value, mutations: &[(prop::sample::Index, Mutation)]) -> Value {
    let mut body = template.clone();
    for (which, mutation) in mutations {
        let mut all = Vec::new();
        paths(&body, &mut Vec::new(), &mut all);
        let Some(path) = (!all.is_empty()).then(|| which.get(&all).clone()) else {
            continue;
        };
        let (last, parent_path) = path.split_last().expect("no path is the root");
        let parent = node_mut(&mut body, parent_path);
        match (mutation, last, parent) {
            (Mutation::Replace(value), _, _) => *node_mut(&mut body, &path) = value.clone(),
            (Mutation::Remove, PathStep::Key(key), Value::Object(map)) => {
                map.remove(key);
            }
            (Mutation::Remove, PathStep::Index(i), Value::Array(items)) => {
                items.remove(*i);
            }
            (Mutation::AddSibling(key, value), _, Value::Object(map)) => {
                map.insert(key.clone(), value.clone());
            }
            (Mutation::AddSibling(_, value), _, Value::Array(items)) => items.push(value.clone()),
            _ => {}
        }
    }
    body
}

// ---------------------------------------------------------------------------------------------
// Clover.
// ---------------------------------------------------------------------------------------------

/// What `WireAmount` documents: a JSON integer from 0 to `i64::MAX`, or a string of 1 to 18
/// ASCII digits; nothing else.
fn documented_clover_amount(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number
            .as_u64()
            .and_then(|n| i64::try_from(n).ok())
            .or_else(|| number.as_i64().filter(|n| *n >= 0)),
        Value::String(text)
            if (1..=CLOVER_MAX_AMOUNT_DIGITS).contains(&text.len())
                && text.bytes().all(|b| b.is_ascii_digit()) =>
        {
            text.parse().ok()
        }
        _ => None,
    }
}

/// What `WireBool` documents: a JSON boolean, or `"true"`/`"false"` in any case.
fn documented_clover_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(text) if text.eq_ignore_ascii_case("true") => Some(true),
        Value::String(text) if text.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// The charge example of Clover's documentation (`fixtures/clover/charge_sufficient.request.json`).
fn clover_charge() -> Value {
    json!({
        "source": "clv_1TSxxxxxx2S71ECrva7",
        "amount": 100,
        "currency": "usd",
        "capture": "true",
        "partial_redemption": "true",
        "return_gateway_response": "true"
    })
}

// ---------------------------------------------------------------------------------------------
// The Terminal API.
// ---------------------------------------------------------------------------------------------

/// The request a message's category names, read as `POST /sync` reads it.
#[derive(Debug)]
enum TerminalRequest {
    /// Read, and carrying no amount.
    BalanceInquiry,
    StoredValue(TerminalStoredValueRequest),
    Payment(TerminalPaymentRequest),
    Reversal(TerminalReversalRequest),
    /// A category giftd does not handle, or none: the header alone was read.
    Other,
}

/// Reads a message as `adyen_terminal::handle` does, up to the command: the whole JSON, the
/// envelope, its parts, the header, and the request of the header's category.
fn read_terminal(bytes: &[u8]) -> Result<(TerminalMessageHeader, TerminalRequest), String> {
    serde_json::from_slice::<Value>(bytes).map_err(|e| format!("JSON: {e}"))?;
    let envelope: TerminalEnvelope<'_> =
        serde_json::from_slice(bytes).map_err(|e| format!("envelope: {e}"))?;
    let request = envelope.request.ok_or("no SaleToPOIRequest")?;
    let parts: TerminalParts<'_> = serde_json::from_str(request.get()).map_err(|e| format!("parts: {e}"))?;
    let header = parts.message_header.ok_or("no MessageHeader")?;
    let header: TerminalMessageHeader =
        serde_json::from_str(header.get()).map_err(|e| format!("MessageHeader: {e}"))?;
    fn part<'a, T: serde::Deserialize<'a>>(
        raw: Option<&'a serde_json::value::RawValue>,
    ) -> Result<T, String> {
        let raw = raw.ok_or("no request for the category")?;
        serde_json::from_str(raw.get()).map_err(|e| format!("request: {e}"))
    }
    let request = match header.message_category.as_deref() {
        Some("BalanceInquiry") => {
            part::<TerminalBalanceInquiryRequest>(parts.balance_inquiry_request)?;
            TerminalRequest::BalanceInquiry
        }
        Some("StoredValue") => TerminalRequest::StoredValue(part(parts.stored_value_request)?),
        Some("Payment") => TerminalRequest::Payment(part(parts.payment_request)?),
        Some("Reversal") => TerminalRequest::Reversal(part(parts.reversal_request)?),
        _ => TerminalRequest::Other,
    };
    Ok((header, request))
}

fn terminal_header(category: &str) -> Value {
    json!({
        "ProtocolVersion": "3.0", "MessageClass": "Service", "MessageCategory": category,
        "MessageType": "Request", "ServiceID": "9301", "SaleID": "POSSystemID12345", "POIID": "V400m-324688179"
    })
}

fn terminal_account() -> Value {
    json!({
        "StoredValueAccountType": "GiftCard", "StoredValueProvider": "givex", "IdentificationType": "PAN",
        "EntryMode": ["Scanned"], "StoredValueID": "6036280000000000000", "SecurityCode": "1234"
    })
}

/// Valid messages of the four categories, after the vendor's examples in
/// `crates/cli/tests/fixtures/adyen/terminal/`.
fn terminal_templates() -> Vec<Value> {
    vec![
        json!({"SaleToPOIRequest": {
            "MessageHeader": terminal_header("BalanceInquiry"),
            "BalanceInquiryRequest": {"PaymentAccountReq": {"PaymentInstrumentData": {
                "PaymentInstrumentType": "StoredValue", "StoredValueAccountID": terminal_account()}}}
        }}),
        json!({"SaleToPOIRequest": {
            "MessageHeader": terminal_header("Payment"),
            "PaymentRequest": {
                "SaleData": {
                    "SaleTransactionID": {"TransactionID": "27908", "TimeStamp": "2019-03-22T09:44:56+00:00"},
                    "SaleReferenceID": "ORDER-1001",
                    "SaleToAcquirerData": "tenderOption=AllowPartialAuthorisation"
                },
                "PaymentTransaction": {"AmountsReq": {"Currency": "EUR", "RequestedAmount": 25.99}},
                "PaymentData": {"PaymentType": "Normal", "PaymentInstrumentData": {
                    "PaymentInstrumentType": "StoredValue", "StoredValueAccountID": terminal_account()}}
            }
        }}),
        json!({"SaleToPOIRequest": {
            "MessageHeader": terminal_header("StoredValue"),
            "StoredValueRequest": {
                "SaleData": {"SaleTransactionID": {"TransactionID": "001", "TimeStamp": "2019-04-29T00:00:00.000Z"}},
                "StoredValueData": [{
                    "StoredValueTransactionType": "Load", "StoredValueAccountID": terminal_account(),
                    "ItemAmount": 10, "Currency": "EUR"
                }]
            }
        }}),
        json!({"SaleToPOIRequest": {
            "MessageHeader": terminal_header("Reversal"),
            "ReversalRequest": {
                "OriginalPOITransaction": {"POITransactionID": {
                    "TimeStamp": "2017-07-03T07:45:44.000Z", "TransactionID": "0123456789ABCDEF"}},
                "ReversedAmount": 1.5,
                "ReversalReason": "MerchantCancel"
            }
        }}),
    ]
}

/// Where each template keeps its amount and the currency it is read with.
fn amount_slot(message: &mut Value) -> (&mut Value, Option<&mut Value>) {
    let request = &mut message["SaleToPOIRequest"];
    if request.get("PaymentRequest").is_some() {
        let amounts = &mut request["PaymentRequest"]["PaymentTransaction"]["AmountsReq"];
        let (amount, currency) = split_pair(amounts, "RequestedAmount", "Currency");
        (amount, Some(currency))
    } else if request.get("StoredValueRequest").is_some() {
        let item = &mut request["StoredValueRequest"]["StoredValueData"][0];
        let (amount, currency) = split_pair(item, "ItemAmount", "Currency");
        (amount, Some(currency))
    } else {
        (&mut request["ReversalRequest"]["ReversedAmount"], None)
    }
}

fn split_pair<'a>(object: &'a mut Value, first: &str, second: &str) -> (&'a mut Value, &'a mut Value) {
    let map = object.as_object_mut().expect("an object");
    let mut first_value = None;
    let mut second_value = None;
    for (key, value) in map.iter_mut() {
        if key == first {
            first_value = Some(value);
        } else if key == second {
            second_value = Some(value);
        }
    }
    (
        first_value.expect("the first field"),
        second_value.expect("the second field"),
    )
}

/// The amount a read request carries, if its category has one.
fn read_amount(request: &TerminalRequest) -> Option<Option<WireDecimal>> {
    match request {
        TerminalRequest::Payment(r) => Some(
            r.payment_transaction
                .as_ref()
                .and_then(|t| t.amounts_req.as_ref())
                .and_then(|a| a.requested_amount),
        ),
        TerminalRequest::StoredValue(r) => Some(
            r.stored_value_data
                .as_ref()
                .and_then(|items| items.first())
                .and_then(|item| item.item_amount),
        ),
        TerminalRequest::Reversal(r) => Some(r.reversed_amount),
        TerminalRequest::BalanceInquiry | TerminalRequest::Other => None,
    }
}

/// A valid message with its amount written as `amount_text` (raw JSON) in `currency`.
fn with_amount(template: &Value, currency: &str, amount_text: &str) -> String {
    const SENTINEL: &str = "\u{1}amount\u{1}";
    let mut message = template.clone();
    let (amount, currency_field) = amount_slot(&mut message);
    *amount = Value::String(SENTINEL.to_owned());
    if let Some(field) = currency_field {
        *field = Value::String(currency.to_owned());
    }
    let quoted = serde_json::to_string(SENTINEL).expect("a string serializes");
    message.to_string().replacen(&quoted, amount_text, 1)
}

fn byte_mutation() -> impl Strategy<Value = (prop::sample::Index, Vec<u8>, usize)> {
    (
        any::<prop::sample::Index>(),
        prop::collection::vec(any::<u8>(), 0..8),
        0usize..8,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn clover_amounts_of_any_json_are_exactly_the_documented_whole_cents(value in json_value()) {
        let read = serde_json::from_value::<WireAmount>(value.clone()).ok().map(|a| a.0);
        prop_assert_eq!(read, documented_clover_amount(&value), "{}", value);
    }

    #[test]
    fn clover_amounts_of_any_json_number_text_are_exactly_the_documented_whole_cents(text in number_text()) {
        let read = serde_json::from_str::<WireAmount>(&text).ok().map(|a| a.0);
        let documented = serde_json::from_str::<Value>(&text).ok().and_then(|v| documented_clover_amount(&v));
        prop_assert_eq!(read, documented, "{}", text);
        let quoted = serde_json::to_string(&text).expect("a string serializes");
        let read = serde_json::from_str::<WireAmount>(&quoted).ok().map(|a| a.0);
        prop_assert_eq!(read, documented_clover_amount(&Value::String(text.clone())), "{}", quoted);
    }

    #[test]
    fn a_clover_string_of_up_to_18_digits_reads_as_that_many_cents(digits in "[0-9]{1,18}") {
        let read = serde_json::from_value::<WireAmount>(Value::String(digits.clone())).map(|a| a.0);
        prop_assert_eq!(read.ok(), Some(digits.parse::<i64>().expect("18 digits fit")));
    }

    #[test]
    fn clover_amounts_are_positive_within_the_limit_or_refused(minor in prop_oneof![0i64..=2 * MAX_AMOUNT_MINOR, 0i64..=i64::MAX]) {
        let amount = positive_amount(WireAmount(minor), "amount");
        prop_assert_eq!(amount.is_ok(), (1..=MAX_AMOUNT_MINOR).contains(&minor), "{}", minor);
        if let Ok(amount) = amount {
            prop_assert_eq!(amount.minor(), minor);
        }
    }

    #[test]
    fn clover_booleans_of_any_json_are_exactly_booleans_or_their_names(value in json_value()) {
        let read = serde_json::from_value::<WireBool>(value.clone()).ok().map(|b| b.0);
        prop_assert_eq!(read, documented_clover_bool(&value), "{}", value);
    }

    #[test]
    fn clover_charges_with_any_fields_replaced_read_their_amount_and_capture_as_documented(
        mutations in prop::collection::vec((any::<prop::sample::Index>(), mutation()), 1..4),
    ) {
        let body = mutate(&clover_charge(), &mutations);
        let Ok(charge) = serde_json::from_value::<CloverChargeRequest>(body.clone()) else {
            return Ok(());
        };
        // Read: each field is what was sent (absent or null: none).
        let field = |name: &str| body.get(name).filter(|v| !v.is_null());
        prop_assert_eq!(charge.amount.map(|a| a.0), field("amount").and_then(documented_clover_amount));
        prop_assert_eq!(charge.capture.map(|c| c.0), field("capture").and_then(documented_clover_bool));
        prop_assert_eq!(charge.source.as_deref(), field("source").and_then(Value::as_str));
    }

    #[test]
    fn terminal_messages_of_any_bytes_are_read_only_when_they_are_a_sale_to_poi_request(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..MAX_BYTES),
            any::<String>().prop_map(String::into_bytes),
            (prop::sample::select(terminal_templates()), prop::collection::vec(byte_mutation(), 1..4))
                .prop_map(|(template, edits)| {
                    // A valid message, truncated or with bytes replaced.
                    let mut bytes = template.to_string().into_bytes();
                    for (at, replacement, cut) in edits {
                        let start = at.index(bytes.len() + 1);
                        let end = (start + cut).min(bytes.len());
                        bytes.splice(start..end, replacement);
                    }
                    bytes
                }),
        ],
    ) {
        if let Ok((header, _)) = read_terminal(&bytes) {
            let json: Value = serde_json::from_slice(&bytes).expect("what was read is JSON");
            let sent = &json["SaleToPOIRequest"]["MessageHeader"];
            prop_assert!(sent.is_object(), "{}", json);
            prop_assert_eq!(header.message_category.as_deref(), sent.get("MessageCategory").and_then(Value::as_str));
        }
    }

    #[test]
    fn terminal_messages_with_any_fields_replaced_read_their_amount_as_sent(
        template in prop::sample::select(terminal_templates()),
        mutations in prop::collection::vec((any::<prop::sample::Index>(), mutation()), 1..4),
    ) {
        let message = mutate(&template, &mutations);
        let Ok((_, request)) = read_terminal(message.to_string().as_bytes()) else {
            return Ok(());
        };
        let Some(read) = read_amount(&request) else {
            return Ok(());
        };
        let amount = sent_amount(&message, &request);
        // An amount is read exactly when one was sent (null counts as none).
        prop_assert_eq!(read.is_some(), amount.is_some_and(|a| !a.is_null()), "{}", message);
        for code in TERMINAL_CURRENCIES {
            let currency = Currency::parse(code).expect("a currency");
            if let Some(Ok(minor)) = read.map(|r| r.0.to_minor(currency)) {
                prop_assert!(minor >= 0, "{} read as {} {}", message, minor, code);
            }
        }
    }

    #[test]
    fn terminal_amounts_written_as_decimals_read_as_exactly_those_minor_units(
        template in prop::sample::select(terminal_templates()[1..].to_vec()),
        code in prop::sample::select(TERMINAL_CURRENCIES.to_vec()),
        minor in prop_oneof![0i64..=100_000, 0i64..=i64::MAX],
        trailing_zeros in 0usize..=3,
        quoted in any::<bool>(),
    ) {
        let currency = Currency::parse(code).expect("a currency");
        // How giftd writes the amount, which a client may pad with zeros or send as a string.
        let written = decimal(minor, currency).get().to_owned();
        prop_assert_eq!(&written, &MajorUnits::format_minor(minor, currency));
        let padded = match (written.contains('.'), trailing_zeros) {
            (_, 0) => written.clone(),
            (true, n) => format!("{written}{}", "0".repeat(n)),
            (false, n) => format!("{written}.{}", "0".repeat(n)),
        };
        let text = if quoted { format!("\"{padded}\"") } else { padded };
        let message = with_amount(&template, code, &text);
        let read = read_terminal(message.as_bytes());
        prop_assert!(read.is_ok(), "{message}: {read:?}");
        let (_, request) = read.expect("read");
        let amount = read_amount(&request).flatten();
        prop_assert_eq!(amount.map(|a| a.0.to_minor(currency)), Some(Ok(minor)), "{}", message);
    }

    #[test]
    fn terminal_amounts_that_are_negative_or_not_decimals_are_refused(
        template in prop::sample::select(terminal_templates()[1..].to_vec()),
        text in prop_oneof![
            "-[0-9]{1,10}(\\.[0-9]{1,2})?".boxed(),
            Just("true".to_owned()).boxed(),
            Just("[]".to_owned()).boxed(),
            Just("{}".to_owned()).boxed(),
            "\"[a-z ]{0,10}\"".boxed(),
            "\"-[0-9]{1,5}\"".boxed(),
            "\"[0-9]{1,3},[0-9]{2}\"".boxed(),
            "\"[1-9][0-9]{30,39}\"".boxed(),
        ],
    ) {
        let message = with_amount(&template, "EUR", &text);
        let read = read_terminal(message.as_bytes());
        prop_assert!(read.is_err(), "{} was read: {:?}", message, read);
    }

    #[test]
    fn terminal_ids_are_strings_or_integers_read_as_their_text(value in json_value()) {
        let read = serde_json::from_value::<WireText>(value.clone()).ok().map(|t| t.0);
        let documented = match &value {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) if number.is_i64() || number.is_u64() => Some(number.to_string()),
            _ => None,
        };
        prop_assert_eq!(read, documented.clone(), "{}", value);
        // Card numbers are read from a kept object: strings and non-negative integers only.
        let card_number = text_of(&value);
        let documented_card = documented.filter(|_| value.as_i64().is_none_or(|n| n >= 0));
        prop_assert_eq!(card_number, documented_card, "{}", value);
    }
}

/// The amount node the read request's category keeps, in the message as sent.
fn sent_amount<'a>(message: &'a Value, request: &TerminalRequest) -> Option<&'a Value> {
    let request_json = &message["SaleToPOIRequest"];
    match request {
        TerminalRequest::Payment(_) => request_json
            .get("PaymentRequest")
            .and_then(|r| r.get("PaymentTransaction"))
            .and_then(|t| t.get("AmountsReq"))
            .and_then(|a| a.get("RequestedAmount")),
        TerminalRequest::StoredValue(_) => request_json
            .get("StoredValueRequest")
            .and_then(|r| r.get("StoredValueData"))
            .and_then(|d| d.get(0))
            .and_then(|i| i.get("ItemAmount")),
        TerminalRequest::Reversal(_) => request_json
            .get("ReversalRequest")
            .and_then(|r| r.get("ReversedAmount")),
        TerminalRequest::BalanceInquiry | TerminalRequest::Other => None,
    }
}

#[test]
fn the_terminal_templates_read_as_their_documented_values() {
    let eur = Currency::parse("EUR").expect("EUR");
    let expected = [None, Some(2599), Some(1000), Some(150)];
    for (template, minor) in terminal_templates().iter().zip(expected) {
        let (header, request) =
            read_terminal(template.to_string().as_bytes()).expect("a valid message reads");
        assert_eq!(header.service_id, Some(WireText("9301".into())));
        let amount = read_amount(&request).flatten().map(|a| a.0.to_minor(eur));
        assert_eq!(amount, minor.map(Ok), "{template}");
    }
    let charge: CloverChargeRequest = serde_json::from_value(clover_charge()).expect("the example reads");
    assert_eq!(charge.amount, Some(WireAmount(100)));
    assert_eq!(charge.capture, Some(WireBool(true)));
}
