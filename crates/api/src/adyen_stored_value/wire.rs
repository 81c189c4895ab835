//! The Stored Value API v46's wire format: requests as Adyen's clients (the official Python
//! and Node libraries among them) send them, answers as Adyen gives them, field for field
//! (camelCase; `resultCode` Success, Refused, Error or NotEnoughBalance).
//!
//! Requests are lenient the way Adyen is: unknown fields are ignored (the Python library's own
//! test sends `giftCardPromoCode`, which v46 does not list; giftd uses it). `paymentMethod` is a
//! map of strings (`type`, `number`, `securityCode`); a number may also come as a JSON integer.
//! Amounts are integers of minor units, as in every Adyen API but the Terminal API. Nothing here
//! is seen below the API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

// ---- requests ----

/// `{"currency": "EUR", "value": 1000}`, kept as sent and read by the handlers, so that each
/// problem gets Adyen's error code.
#[derive(Debug, Clone, Deserialize)]
pub struct AdyenSvAmount {
    pub currency: Option<Value>,
    pub value: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdyenSvIssueRequest {
    pub merchant_account: Option<String>,
    pub reference: Option<String>,
    pub payment_method: Option<Map<String, Value>>,
    pub amount: Option<AdyenSvAmount>,
    /// Not in v46's schema, but sent by Adyen's own examples: the program's promotion code.
    pub gift_card_promo_code: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdyenSvChangeStatusRequest {
    pub merchant_account: Option<String>,
    pub reference: Option<String>,
    pub payment_method: Option<Map<String, Value>>,
    pub amount: Option<AdyenSvAmount>,
    pub status: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdyenSvLoadRequest {
    pub merchant_account: Option<String>,
    pub reference: Option<String>,
    pub payment_method: Option<Map<String, Value>>,
    pub amount: Option<AdyenSvAmount>,
    pub load_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdyenSvCheckBalanceRequest {
    pub merchant_account: Option<String>,
    pub reference: Option<String>,
    pub payment_method: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdyenSvMergeBalanceRequest {
    pub merchant_account: Option<String>,
    pub reference: Option<String>,
    pub payment_method: Option<Map<String, Value>>,
    pub source_payment_method: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdyenSvVoidTransactionRequest {
    pub merchant_account: Option<String>,
    pub original_reference: Option<String>,
    pub reference: Option<String>,
}

// ---- answers ----

#[derive(Debug, Clone, Serialize)]
pub struct AdyenSvAmountOut {
    pub currency: &'static str,
    pub value: i64,
}

/// Every operation's answer: the fields an operation does not have are left out.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdyenSvResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_balance: Option<AdyenSvAmountOut>,
    /// `issue` only: the new card's `number`, `securityCode` and the `type` asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_method: Option<BTreeMap<&'static str, String>>,
    pub psp_reference: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal_reason: Option<String>,
    pub result_code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub third_party_refusal_reason: Option<String>,
}

/// Adyen's error body for 4xx and 5xx answers.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdyenSvServiceError {
    pub status: u16,
    pub error_code: &'static str,
    pub message: String,
    pub error_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psp_reference: Option<String>,
}
