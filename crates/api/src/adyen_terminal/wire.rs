//! The Terminal API's wire format (nexo Sale-to-POI messages in Adyen's JSON): requests as a
//! point-of-sale system sends them to the cloud `/sync` endpoint, answers as Adyen's cloud
//! gives them, field for field (PascalCase, Adyen's enums).
//!
//! Requests are read leniently, as Adyen's own clients write them: unknown fields are ignored,
//! ids may be strings or integers, `EntryMode` a list or one string, `ExpiryDate` a string or a
//! number (and only informational: giftd's own expiry governs). Amounts are decimal numbers of
//! major units (`"ItemAmount": 10.00`): their text is read exactly ([`WireDecimal`]) and
//! written exactly ([`decimal`]), never through a float. Nothing here is seen below the API.

use std::fmt;

use giftd_domain::major_units::MajorUnits;
use giftd_domain::{Currency, Timestamp};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::macros::format_description;

/// A decimal amount of major units as a client writes it: a JSON number (`10.00`, `98.75`,
/// `61`) or a string holding one (`"10.00"`). Negative amounts and anything else are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireDecimal(pub MajorUnits);

impl<'de> Deserialize<'de> for WireDecimal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let text = raw.get();
        let text = match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            Some(inner) => inner,
            None => text,
        };
        MajorUnits::parse(text).map(WireDecimal).ok_or_else(|| {
            de::Error::custom(
                "expected a non-negative decimal amount of major units, e.g. 10.50, as a JSON number",
            )
        })
    }
}

/// An identifier (`ServiceID`, `SaleID`, `TransactionID`, a card number ...) as a client writes
/// it: a string, or an integer (some clients send numeric ids unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireText(pub String);

impl<'de> Deserialize<'de> for WireText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;

        impl de::Visitor<'_> for TextVisitor {
            type Value = WireText;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string (or an integer)")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<WireText, E> {
                Ok(WireText(value.to_owned()))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<WireText, E> {
                Ok(WireText(value.to_string()))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<WireText, E> {
                Ok(WireText(value.to_string()))
            }
        }

        deserializer.deserialize_any(TextVisitor)
    }
}

/// The text of a JSON value that should be a string or an integer, for fields read out of a
/// kept JSON object (a card number inside `StoredValueAccountID`).
pub fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) if number.is_u64() => Some(number.to_string()),
        _ => None,
    }
}

// ---- requests ----

/// `{"SaleToPOIRequest": {...}}`, its parts kept raw: the header decides how the rest is read.
#[derive(Debug, Deserialize)]
pub struct TerminalEnvelope<'a> {
    #[serde(rename = "SaleToPOIRequest", borrow)]
    pub request: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
pub struct TerminalParts<'a> {
    #[serde(rename = "MessageHeader", borrow)]
    pub message_header: Option<&'a RawValue>,
    #[serde(rename = "BalanceInquiryRequest", borrow)]
    pub balance_inquiry_request: Option<&'a RawValue>,
    #[serde(rename = "StoredValueRequest", borrow)]
    pub stored_value_request: Option<&'a RawValue>,
    #[serde(rename = "PaymentRequest", borrow)]
    pub payment_request: Option<&'a RawValue>,
    #[serde(rename = "ReversalRequest", borrow)]
    pub reversal_request: Option<&'a RawValue>,
    #[serde(rename = "TransactionStatusRequest", borrow)]
    pub transaction_status_request: Option<&'a RawValue>,
    #[serde(rename = "AbortRequest", borrow)]
    pub abort_request: Option<&'a RawValue>,
}

/// `MessageReference`: names an earlier message of the sale system; SaleID and POIID default to
/// the header's.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TerminalMessageReference {
    #[serde(rename = "MessageCategory")]
    pub message_category: Option<String>,
    #[serde(rename = "ServiceID")]
    pub service_id: Option<WireText>,
    #[serde(rename = "DeviceID")]
    pub device_id: Option<WireText>,
    #[serde(rename = "SaleID")]
    pub sale_id: Option<WireText>,
    #[serde(rename = "POIID")]
    pub poi_id: Option<WireText>,
}

/// `TransactionStatusRequest`: which message's answer the sale system lost. The receipt
/// options are read and ignored (giftd keeps no receipts).
#[derive(Debug, Clone, Deserialize)]
pub struct TerminalTransactionStatusRequest {
    #[serde(rename = "MessageReference")]
    pub message_reference: Option<TerminalMessageReference>,
    #[serde(rename = "ReceiptReprintFlag")]
    pub receipt_reprint_flag: Option<bool>,
    #[serde(rename = "DocumentQualifier")]
    pub document_qualifier: Option<Vec<String>>,
}

/// `AbortRequest`: cancel a message still in progress.
#[derive(Debug, Clone, Deserialize)]
pub struct TerminalAbortRequest {
    #[serde(rename = "MessageReference")]
    pub message_reference: TerminalMessageReference,
    #[serde(rename = "AbortReason")]
    pub abort_reason: WireText,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TerminalMessageHeader {
    #[serde(rename = "ProtocolVersion")]
    pub protocol_version: Option<WireText>,
    #[serde(rename = "MessageClass")]
    pub message_class: Option<String>,
    #[serde(rename = "MessageCategory")]
    pub message_category: Option<String>,
    #[serde(rename = "MessageType")]
    pub message_type: Option<String>,
    #[serde(rename = "ServiceID")]
    pub service_id: Option<WireText>,
    #[serde(rename = "DeviceID")]
    pub device_id: Option<WireText>,
    #[serde(rename = "SaleID")]
    pub sale_id: Option<WireText>,
    #[serde(rename = "POIID")]
    pub poi_id: Option<WireText>,
}

/// `SaleData`: the sale system's own reference of the sale is echoed, and becomes the
/// reference of giftd's transactions.
#[derive(Debug, Clone, Deserialize)]
pub struct TerminalSaleData {
    /// Kept as sent, to be echoed.
    #[serde(rename = "SaleTransactionID")]
    pub sale_transaction_id: Option<Value>,
    #[serde(rename = "SaleReferenceID")]
    pub sale_reference_id: Option<WireText>,
    /// `tenderOption=AllowPartialAuthorisation`, as key=value text or base64 of JSON.
    #[serde(rename = "SaleToAcquirerData")]
    pub sale_to_acquirer_data: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TerminalPaymentInstrumentData {
    #[serde(rename = "PaymentInstrumentType")]
    pub payment_instrument_type: Option<String>,
    /// Kept as sent: echoed in answers, and read for the card number (`StoredValueID`, or
    /// `Value` as older clients write it) and giftd's `SecurityCode` extension.
    #[serde(rename = "StoredValueAccountID")]
    pub stored_value_account_id: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TerminalBalanceInquiryRequest {
    #[serde(rename = "PaymentAccountReq")]
    pub payment_account_req: Option<TerminalPaymentAccountReq>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TerminalPaymentAccountReq {
    #[serde(rename = "PaymentInstrumentData")]
    pub payment_instrument_data: Option<TerminalPaymentInstrumentData>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TerminalTransactionId {
    #[serde(rename = "TransactionID")]
    pub transaction_id: Option<WireText>,
    #[serde(rename = "TimeStamp")]
    pub time_stamp: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TerminalOriginalPoiTransaction {
    #[serde(rename = "POITransactionID")]
    pub poi_transaction_id: Option<TerminalTransactionId>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TerminalStoredValueRequest {
    #[serde(rename = "SaleData")]
    pub sale_data: Option<TerminalSaleData>,
    #[serde(rename = "StoredValueData")]
    pub stored_value_data: Option<Vec<TerminalStoredValueData>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TerminalStoredValueData {
    #[serde(rename = "StoredValueTransactionType")]
    pub stored_value_transaction_type: Option<String>,
    #[serde(rename = "StoredValueAccountID")]
    pub stored_value_account_id: Option<Value>,
    #[serde(rename = "OriginalPOITransaction")]
    pub original_poi_transaction: Option<TerminalOriginalPoiTransaction>,
    /// Echoed.
    #[serde(rename = "ProductCode")]
    pub product_code: Option<Value>,
    /// Echoed.
    #[serde(rename = "EanUpc")]
    pub ean_upc: Option<Value>,
    #[serde(rename = "ItemAmount")]
    pub item_amount: Option<WireDecimal>,
    #[serde(rename = "Currency")]
    pub currency: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TerminalPaymentRequest {
    #[serde(rename = "SaleData")]
    pub sale_data: Option<TerminalSaleData>,
    #[serde(rename = "PaymentTransaction")]
    pub payment_transaction: Option<TerminalPaymentTransaction>,
    #[serde(rename = "PaymentData")]
    pub payment_data: Option<TerminalPaymentData>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TerminalPaymentTransaction {
    #[serde(rename = "AmountsReq")]
    pub amounts_req: Option<TerminalAmountsReq>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TerminalAmountsReq {
    #[serde(rename = "Currency")]
    pub currency: Option<String>,
    #[serde(rename = "RequestedAmount")]
    pub requested_amount: Option<WireDecimal>,
    #[serde(rename = "CashBackAmount")]
    pub cash_back_amount: Option<WireDecimal>,
    #[serde(rename = "TipAmount")]
    pub tip_amount: Option<WireDecimal>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TerminalPaymentData {
    #[serde(rename = "PaymentType")]
    pub payment_type: Option<String>,
    #[serde(rename = "PaymentInstrumentData")]
    pub payment_instrument_data: Option<TerminalPaymentInstrumentData>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TerminalReversalRequest {
    #[serde(rename = "SaleData")]
    pub sale_data: Option<TerminalSaleData>,
    #[serde(rename = "OriginalPOITransaction")]
    pub original_poi_transaction: Option<TerminalOriginalPoiTransaction>,
    #[serde(rename = "ReversedAmount")]
    pub reversed_amount: Option<WireDecimal>,
    #[serde(rename = "ReversalReason")]
    pub reversal_reason: Option<String>,
}

// ---- answers ----

/// A decimal JSON number written from minor units: 9875 GBP is `98.75`, 6100 EUR is `61`.
pub fn decimal(minor: i64, currency: Currency) -> Box<RawValue> {
    RawValue::from_string(MajorUnits::format_minor(minor, currency))
        .expect("a formatted decimal is a JSON number")
}

/// `2019-04-29T10:19:51.000Z`: UTC with milliseconds, as Adyen writes time stamps.
pub fn time_stamp(at: Timestamp) -> String {
    let nanos = i128::from(at.unix_millis()) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".to_owned())
}

#[derive(Debug, Clone, Serialize)]
pub struct TerminalResponseHeader {
    #[serde(rename = "ProtocolVersion")]
    pub protocol_version: String,
    #[serde(rename = "SaleID")]
    pub sale_id: String,
    #[serde(rename = "MessageClass")]
    pub message_class: &'static str,
    #[serde(rename = "MessageCategory")]
    pub message_category: &'static str,
    #[serde(rename = "ServiceID", skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
    #[serde(rename = "DeviceID", skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(rename = "POIID")]
    pub poi_id: String,
    #[serde(rename = "MessageType")]
    pub message_type: &'static str,
}

#[derive(Debug, Serialize)]
pub struct TerminalResponseEnvelope {
    #[serde(rename = "SaleToPOIResponse")]
    pub response: TerminalResponseBody,
}

/// One of the four answers, then the header, as Adyen orders them.
#[derive(Debug, Serialize)]
pub struct TerminalResponseBody {
    #[serde(rename = "BalanceInquiryResponse", skip_serializing_if = "Option::is_none")]
    pub balance_inquiry: Option<TerminalBalanceInquiryResponse>,
    #[serde(rename = "StoredValueResponse", skip_serializing_if = "Option::is_none")]
    pub stored_value: Option<TerminalStoredValueResponse>,
    #[serde(rename = "PaymentResponse", skip_serializing_if = "Option::is_none")]
    pub payment: Option<TerminalPaymentResponse>,
    #[serde(rename = "ReversalResponse", skip_serializing_if = "Option::is_none")]
    pub reversal: Option<TerminalReversalResponse>,
    #[serde(rename = "TransactionStatusResponse", skip_serializing_if = "Option::is_none")]
    pub transaction_status: Option<TerminalTransactionStatusResponse>,
    #[serde(rename = "MessageHeader")]
    pub message_header: TerminalResponseHeader,
}

/// `TransactionStatusResponse`: on success the message found and its stored answer.
#[derive(Debug, Serialize)]
pub struct TerminalTransactionStatusResponse {
    #[serde(rename = "Response")]
    pub response: TerminalResult,
    #[serde(rename = "MessageReference", skip_serializing_if = "Option::is_none")]
    pub message_reference: Option<TerminalMessageReferenceOut>,
    #[serde(rename = "RepeatedMessageResponse", skip_serializing_if = "Option::is_none")]
    pub repeated_message_response: Option<TerminalRepeatedMessageResponse>,
}

#[derive(Debug, Serialize)]
pub struct TerminalMessageReferenceOut {
    #[serde(rename = "MessageCategory")]
    pub message_category: String,
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    #[serde(rename = "SaleID")]
    pub sale_id: String,
    #[serde(rename = "POIID")]
    pub poi_id: String,
}

/// The earlier message's answer, as it was sent: its header, and its one `…Response` under
/// `RepeatedResponseMessageBody`.
#[derive(Debug, Serialize)]
pub struct TerminalRepeatedMessageResponse {
    #[serde(rename = "MessageHeader")]
    pub message_header: Value,
    #[serde(rename = "RepeatedResponseMessageBody")]
    pub repeated_response_message_body: Map<String, Value>,
}

/// `Response`: `Result` (Success, Failure, Partial), and on failure an `ErrorCondition` and an
/// `AdditionalResponse` of URL-encoded `key=value` pairs.
#[derive(Debug, Clone, Serialize)]
pub struct TerminalResult {
    #[serde(rename = "Result")]
    pub result: &'static str,
    #[serde(rename = "ErrorCondition", skip_serializing_if = "Option::is_none")]
    pub error_condition: Option<&'static str>,
    #[serde(rename = "AdditionalResponse", skip_serializing_if = "Option::is_none")]
    pub additional_response: Option<String>,
}

impl TerminalResult {
    pub const SUCCESS: Self = Self {
        result: "Success",
        error_condition: None,
        additional_response: None,
    };
}

#[derive(Debug, Serialize)]
pub struct TerminalBalanceInquiryResponse {
    #[serde(rename = "Response")]
    pub response: TerminalResult,
    #[serde(rename = "PaymentAccountStatus", skip_serializing_if = "Option::is_none")]
    pub payment_account_status: Option<TerminalPaymentAccountStatus>,
}

#[derive(Debug, Serialize)]
pub struct TerminalPaymentAccountStatus {
    #[serde(rename = "CurrentBalance")]
    pub current_balance: Box<RawValue>,
    #[serde(rename = "PaymentAcquirerData")]
    pub payment_acquirer_data: TerminalPaymentAcquirerData,
    #[serde(rename = "Currency")]
    pub currency: &'static str,
}

#[derive(Debug, Serialize)]
pub struct TerminalPaymentAcquirerData {
    #[serde(rename = "MerchantID", skip_serializing_if = "Option::is_none")]
    pub merchant_id: Option<String>,
    #[serde(rename = "AcquirerPOIID")]
    pub acquirer_poi_id: String,
    #[serde(rename = "AcquirerTransactionID", skip_serializing_if = "Option::is_none")]
    pub acquirer_transaction_id: Option<TerminalTransactionIdOut>,
    #[serde(rename = "ApprovalCode", skip_serializing_if = "Option::is_none")]
    pub approval_code: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TerminalTransactionIdOut {
    #[serde(rename = "TransactionID")]
    pub transaction_id: String,
    #[serde(rename = "TimeStamp")]
    pub time_stamp: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TerminalPoiData {
    #[serde(rename = "POITransactionID")]
    pub poi_transaction_id: TerminalTransactionIdOut,
}

#[derive(Debug, Serialize)]
pub struct TerminalStoredValueResponse {
    #[serde(rename = "Response")]
    pub response: TerminalResult,
    #[serde(rename = "SaleData")]
    pub sale_data: Value,
    #[serde(rename = "POIData")]
    pub poi_data: TerminalPoiData,
    #[serde(rename = "StoredValueResult", skip_serializing_if = "Option::is_none")]
    pub stored_value_result: Option<Vec<TerminalStoredValueResult>>,
}

#[derive(Debug, Serialize)]
pub struct TerminalStoredValueResult {
    #[serde(rename = "StoredValueTransactionType")]
    pub stored_value_transaction_type: &'static str,
    #[serde(rename = "ProductCode", skip_serializing_if = "Option::is_none")]
    pub product_code: Option<Value>,
    #[serde(rename = "EanUpc", skip_serializing_if = "Option::is_none")]
    pub ean_upc: Option<Value>,
    #[serde(rename = "ItemAmount", skip_serializing_if = "Option::is_none")]
    pub item_amount: Option<Box<RawValue>>,
    #[serde(rename = "StoredValueAccountStatus")]
    pub stored_value_account_status: TerminalStoredValueAccountStatus,
    #[serde(rename = "Currency")]
    pub currency: &'static str,
    #[serde(rename = "HostTransactionID", skip_serializing_if = "Option::is_none")]
    pub host_transaction_id: Option<TerminalTransactionIdOut>,
}

#[derive(Debug, Serialize)]
pub struct TerminalStoredValueAccountStatus {
    #[serde(rename = "StoredValueAccountID")]
    pub stored_value_account_id: Value,
    #[serde(rename = "CurrentBalance")]
    pub current_balance: Box<RawValue>,
}

#[derive(Debug, Serialize)]
pub struct TerminalPaymentResponse {
    #[serde(rename = "Response")]
    pub response: TerminalResult,
    #[serde(rename = "SaleData")]
    pub sale_data: Value,
    #[serde(rename = "POIData")]
    pub poi_data: TerminalPoiData,
    #[serde(rename = "PaymentResult", skip_serializing_if = "Option::is_none")]
    pub payment_result: Option<TerminalPaymentResult>,
}

#[derive(Debug, Serialize)]
pub struct TerminalPaymentResult {
    #[serde(rename = "PaymentType")]
    pub payment_type: &'static str,
    #[serde(rename = "PaymentInstrumentData")]
    pub payment_instrument_data: TerminalPaymentInstrumentDataOut,
    #[serde(rename = "AmountsResp")]
    pub amounts_resp: TerminalAmountsResp,
    #[serde(rename = "OnlineFlag")]
    pub online_flag: bool,
    #[serde(rename = "PaymentAcquirerData")]
    pub payment_acquirer_data: TerminalPaymentAcquirerData,
}

#[derive(Debug, Serialize)]
pub struct TerminalPaymentInstrumentDataOut {
    #[serde(rename = "PaymentInstrumentType")]
    pub payment_instrument_type: &'static str,
    #[serde(rename = "StoredValueAccountID")]
    pub stored_value_account_id: Value,
}

#[derive(Debug, Serialize)]
pub struct TerminalAmountsResp {
    #[serde(rename = "AuthorizedAmount")]
    pub authorized_amount: Box<RawValue>,
    #[serde(rename = "Currency")]
    pub currency: &'static str,
}

#[derive(Debug, Serialize)]
pub struct TerminalReversalResponse {
    #[serde(rename = "Response")]
    pub response: TerminalResult,
    #[serde(rename = "POIData", skip_serializing_if = "Option::is_none")]
    pub poi_data: Option<TerminalPoiData>,
    #[serde(rename = "ReversedAmount", skip_serializing_if = "Option::is_none")]
    pub reversed_amount: Option<Box<RawValue>>,
}

/// What the cloud answers instead of a response when it rejects a message: a `SaleToPOIRequest`
/// carrying an `EventNotification` with `EventToNotify: Reject`.
#[derive(Debug, Serialize)]
pub struct TerminalRejectEnvelope {
    #[serde(rename = "SaleToPOIRequest")]
    pub request: TerminalRejectBody,
}

#[derive(Debug, Serialize)]
pub struct TerminalRejectBody {
    #[serde(rename = "EventNotification")]
    pub event_notification: TerminalEventNotification,
    #[serde(rename = "MessageHeader")]
    pub message_header: TerminalEventHeader,
}

#[derive(Debug, Serialize)]
pub struct TerminalEventNotification {
    #[serde(rename = "EventToNotify")]
    pub event_to_notify: &'static str,
    #[serde(rename = "EventDetails")]
    pub event_details: String,
    /// Base64 of the rejected message, as received.
    #[serde(rename = "RejectedMessage", skip_serializing_if = "Option::is_none")]
    pub rejected_message: Option<String>,
    #[serde(rename = "TimeStamp")]
    pub time_stamp: String,
}

#[derive(Debug, Default, Serialize)]
pub struct TerminalEventHeader {
    #[serde(rename = "DeviceID", skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(rename = "MessageCategory")]
    pub message_category: &'static str,
    #[serde(rename = "MessageClass")]
    pub message_class: &'static str,
    #[serde(rename = "MessageType")]
    pub message_type: &'static str,
    #[serde(rename = "POIID", skip_serializing_if = "Option::is_none")]
    pub poi_id: Option<String>,
    #[serde(rename = "ProtocolVersion")]
    pub protocol_version: &'static str,
    #[serde(rename = "SaleID", skip_serializing_if = "Option::is_none")]
    pub sale_id: Option<String>,
    #[serde(rename = "ServiceID", skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_read_from_their_text_and_written_exactly() {
        #[derive(Deserialize)]
        struct Holder {
            amount: WireDecimal,
        }
        let usd = Currency::parse("USD").unwrap();
        for (json, minor) in [
            (r#"{"amount": 98.75}"#, 9875),
            (r#"{"amount": 10.00}"#, 1000),
            (r#"{"amount": 61}"#, 6100),
            (r#"{"amount": "25.99"}"#, 2599),
            (r#"{"amount": 0.1}"#, 10),
        ] {
            let holder: Holder = serde_json::from_str(json).unwrap();
            assert_eq!(holder.amount.0.to_minor(usd), Ok(minor), "{json}");
        }
        for json in [r#"{"amount": -1}"#, r#"{"amount": "ten"}"#, r#"{"amount": true}"#] {
            assert!(serde_json::from_str::<Holder>(json).is_err(), "{json}");
        }
        assert_eq!(decimal(9875, usd).get(), "98.75");
        assert_eq!(decimal(6100, usd).get(), "61");
    }

    #[test]
    fn time_stamps_are_utc_with_milliseconds() {
        assert_eq!(
            time_stamp(Timestamp::from_unix_millis(1_556_495_991_000)),
            "2019-04-28T23:59:51.000Z"
        );
    }
}
