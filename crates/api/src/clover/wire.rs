//! Clover's wire format: requests as Clover integrations send them and answers as Clover
//! gives them, field for field (snake_case, with `metadata` in camelCase as Clover has it).
//!
//! Requests are lenient the way Clover is: unknown fields are ignored, and amounts and booleans
//! may come as JSON numbers and booleans or as strings (`"amount": "100"`, `"capture": "false"`),
//! as the vendor's own examples send them. Anything else (a fractional or negative amount, a
//! boolean spelled `"yes"`) is refused with a message naming the field. Amounts are integers of
//! the card currency's minor units (cents), never floats. Nothing here is seen below the API.

use std::fmt;

use giftd_domain::Timestamp;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// An amount of minor units as a Clover client sends it: a non-negative JSON integer, or a
/// string of decimal digits. Whether zero is allowed depends on the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireAmount(pub i64);

impl<'de> Deserialize<'de> for WireAmount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AmountVisitor;

        impl Visitor<'_> for AmountVisitor {
            type Value = WireAmount;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number of cents, as a JSON integer or a string of digits")
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<WireAmount, E> {
                i64::try_from(value)
                    .map(WireAmount)
                    .map_err(|_| E::custom("the amount does not fit in 64 bits"))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<WireAmount, E> {
                if value < 0 {
                    return Err(E::custom("the amount must not be negative"));
                }
                Ok(WireAmount(value))
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<WireAmount, E> {
                Err(E::custom(
                    "the amount must be a whole number of cents (e.g. 1050 for 10.50), not a decimal",
                ))
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<WireAmount, E> {
                if value.is_empty() || value.len() > 18 || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(E::custom(
                        "a string amount must be a whole number of cents written in digits, e.g. \"100\"",
                    ));
                }
                value
                    .parse()
                    .map(WireAmount)
                    .map_err(|_| E::custom("the amount is not a number"))
            }
        }

        deserializer.deserialize_any(AmountVisitor)
    }
}

/// A boolean as a Clover client sends it: `true`/`false`, or the strings `"true"`/`"false"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireBool(pub bool);

impl<'de> Deserialize<'de> for WireBool {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BoolVisitor;

        impl Visitor<'_> for BoolVisitor {
            type Value = WireBool;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true or false, as a JSON boolean or a string")
            }

            fn visit_bool<E: de::Error>(self, value: bool) -> Result<WireBool, E> {
                Ok(WireBool(value))
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<WireBool, E> {
                if value.eq_ignore_ascii_case("true") {
                    Ok(WireBool(true))
                } else if value.eq_ignore_ascii_case("false") {
                    Ok(WireBool(false))
                } else {
                    Err(E::custom("expected \"true\" or \"false\""))
                }
            }
        }

        deserializer.deserialize_any(BoolVisitor)
    }
}

// ---- requests ----

#[derive(Debug, Deserialize)]
pub struct CloverTokenRequest {
    pub gift_card: Option<CloverTokenGiftCard>,
}

#[derive(Debug, Deserialize)]
pub struct CloverTokenGiftCard {
    pub number: Option<String>,
    pub security_code: Option<String>,
    pub foreign_access_code: Option<String>,
}

/// giftd's addition: revoke a token.
#[derive(Debug, Deserialize)]
pub struct CloverRevokeTokenRequest {
    pub token: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CloverActivateRequest {
    pub source: Option<String>,
    pub promotion_code: Option<String>,
    pub amount: Option<WireAmount>,
    pub currency: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CloverReloadRequest {
    pub source: Option<String>,
    pub amount: Option<WireAmount>,
    pub currency: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CloverSourceRequest {
    pub source: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CloverChargeRequest {
    pub source: Option<String>,
    pub amount: Option<WireAmount>,
    pub currency: Option<String>,
    /// Default true; false places a lock.
    pub capture: Option<WireBool>,
    pub partial_redemption: Option<WireBool>,
    /// Accepted and checked, but giftd has no gateway response to return.
    pub return_gateway_response: Option<WireBool>,
}

#[derive(Debug, Deserialize)]
pub struct CloverCaptureRequest {
    /// 0 to the lock's amount; the lock's amount when absent. 0 releases the lock.
    pub amount: Option<WireAmount>,
}

#[derive(Debug, Deserialize)]
pub struct CloverRefundRequest {
    pub charge: Option<String>,
    pub amount: Option<WireAmount>,
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CloverCancelRefundRequest {
    pub reason: Option<String>,
}

// ---- answers ----

/// Every answer that moved value was approved: giftd is its own network.
#[derive(Debug, Serialize)]
pub struct CloverOutcomeWire {
    pub network_status: &'static str,
    #[serde(rename = "type")]
    pub outcome_type: &'static str,
}

impl CloverOutcomeWire {
    pub const APPROVED: Self = Self {
        network_status: "approved_by_network",
        outcome_type: "authorized",
    };
}

#[derive(Debug, Serialize)]
pub struct CloverSource {
    /// The token, when the request carried it (giftd keeps only a hash of it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brand: Option<&'static str>,
    pub last4: String,
}

#[derive(Debug, Serialize)]
pub struct CloverGiftCard {
    /// Only when a virtual card is created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_card_value: Option<String>,
    /// Absent when the card never expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_date: Option<String>,
    /// Only when a virtual card is created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    pub previous_balance: i64,
    pub new_balance: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_amount: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_id: Option<i64>,
}

/// The answer of activations, reloads, charges, captures and cash-outs.
#[derive(Debug, Serialize)]
pub struct CloverChargeResponse {
    pub id: String,
    pub amount: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_method_details: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount_refunded: Option<i64>,
    /// Charges and locks: whether all of the amount went back to the card.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refunded: Option<bool>,
    /// Charges and locks: what the charge took from the card.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount_captured: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub captured: Option<bool>,
    pub ref_num: String,
    pub auth_code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning_message: Option<&'static str>,
    pub outcome: CloverOutcomeWire,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paid: Option<bool>,
    pub status: &'static str,
    pub source: CloverSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial_auth: Option<bool>,
    pub gift_card: CloverGiftCard,
}

/// `metadata` of refunds, in Clover's camelCase.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CloverRefundMetadata {
    pub refund_type: &'static str,
    pub auth_code: String,
    pub ref_num: String,
    pub gateway_response_code: &'static str,
}

#[derive(Debug, Serialize)]
pub struct CloverRefundResponse {
    pub id: String,
    /// `refund`, or `void_on_refund` for a cancelled refund.
    pub object: &'static str,
    pub amount: i64,
    pub charge: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<i64>,
    pub status: &'static str,
    pub metadata: CloverRefundMetadata,
    pub gift_card: CloverGiftCard,
}

#[derive(Debug, Serialize)]
pub struct CloverBalanceResponse {
    pub status: &'static str,
    pub gift_card: CloverGiftCard,
}

#[derive(Debug, Serialize)]
pub struct CloverTokenGiftCardWire {
    pub last4: String,
}

#[derive(Debug, Serialize)]
pub struct CloverTokenResponse {
    pub id: String,
    pub object: &'static str,
    pub gift_card: CloverTokenGiftCardWire,
}

#[derive(Debug, Serialize)]
pub struct CloverRevokedTokenResponse {
    pub id: String,
    pub object: &'static str,
    pub revoked: bool,
}

/// A page of a list (`GET /v1/charges`, `GET /v1/refunds`), in Clover's envelope. `url` is
/// Clover's path of the list, without giftd's `/clover` prefix, as Clover answers it.
#[derive(Debug, Serialize)]
pub struct CloverListResponse<T> {
    pub object: &'static str,
    pub url: &'static str,
    pub has_more: bool,
    pub data: Vec<T>,
}

/// `YYYY-MM-DD` (UTC), Clover's `expiration_date`.
pub fn date(at: Timestamp) -> String {
    const DATE: &[time::format_description::BorrowedFormatItem<'static>] =
        time::macros::format_description!("[year]-[month]-[day]");
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.unix_millis()) * 1_000_000)
        .ok()
        .and_then(|t| t.format(DATE).ok())
        .unwrap_or_default()
}

/// Six digits derived from a transaction id: Clover's `ref_num` and `auth_code` are short
/// numbers. Derived (not stored) so that every rendering of one transaction agrees; they are
/// informational, the transaction id is what identifies it.
pub fn six_digits(purpose: &str, id: &str) -> String {
    let digest = Sha256::new()
        .chain_update(purpose.as_bytes())
        .chain_update(b"\0")
        .chain_update(id.as_bytes())
        .finalize();
    let value = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 1_000_000;
    format!("{value:06}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_come_as_integers_or_digit_strings_only() {
        let parse = |json: &str| serde_json::from_str::<WireAmount>(json).map(|a| a.0);
        assert_eq!(parse("100").ok(), Some(100));
        assert_eq!(parse("\"100\"").ok(), Some(100));
        assert_eq!(parse("0").ok(), Some(0));
        assert!(parse("-1").is_err());
        assert!(parse("1.5").is_err());
        assert!(parse("\"1.50\"").is_err());
        assert!(parse("\"\"").is_err());
        assert!(parse("\" 1\"").is_err());
        assert!(parse("true").is_err());
        assert!(parse("18446744073709551615").is_err());
    }

    #[test]
    fn booleans_come_as_booleans_or_their_names() {
        let parse = |json: &str| serde_json::from_str::<WireBool>(json).map(|b| b.0);
        assert_eq!(parse("true").ok(), Some(true));
        assert_eq!(parse("\"false\"").ok(), Some(false));
        assert_eq!(parse("\"TRUE\"").ok(), Some(true));
        assert!(parse("\"yes\"").is_err());
        assert!(parse("1").is_err());
    }

    #[test]
    fn reference_numbers_are_six_stable_digits() {
        let a = six_digits("ref_num", "txn_1");
        assert_eq!(a.len(), 6);
        assert!(a.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(a, six_digits("ref_num", "txn_1"));
    }
}
