//! The native API's wire types: requests as clients send them (strict: unknown fields are
//! refused) and responses as giftd answers. Conversions from records live beside them. These
//! types are the API contract; nothing below the API sees them.

use giftd_domain::{CardNumber, Program, SecurityCode};
use giftd_service::views::{Card, HoldRecord, TransactionRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// RFC 3339 in UTC with exactly three fractional digits, e.g. `2026-11-22T01:30:49.710Z`.
pub use crate::edge::rfc3339;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProgramRequest {
    pub name: String,
    /// ISO 4217, upper case.
    pub currency: String,
    /// When set, issue and activation amounts must be one of these.
    pub denominations: Option<Vec<i64>>,
    pub min_load: Option<i64>,
    pub max_load: Option<i64>,
    pub max_balance: Option<i64>,
    /// Default true.
    pub reloadable: Option<bool>,
    /// Null: cards never expire. At least 60 unless `promotional`.
    pub expiry_months: Option<u32>,
    /// Promotional programs may expire sooner than 60 months. Default false.
    pub promotional: Option<bool>,
    /// Digits every generated number starts with.
    pub number_prefix: Option<String>,
    /// 13 to 19; default 16.
    pub number_length: Option<u32>,
    /// 4 to 8; default 8.
    pub security_code_length: Option<u32>,
    pub promotion_code: Option<String>,
    /// Default true. An inactive program issues no new cards and activates no card stock.
    pub active: Option<bool>,
    /// Default false. True: value left on a card when it expires moves to the program's
    /// breakage account (needs `expiry_months`; many jurisdictions forbid it).
    pub breakage_on_expiry: Option<bool>,
}

/// `PATCH /v1/programs/{id}`: the fields to change, the rest left as they are. For the optional
/// limits, expiry and promotion code, `null` clears the field; leaving a field out keeps it.
/// `currency`, `promotional` and the number format never change (cards were issued under
/// them): sending one is refused, by name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProgramRequest {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<i64>>)]
    pub denominations: Option<Option<Vec<i64>>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub min_load: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub max_load: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub max_balance: Option<Option<i64>>,
    pub reloadable: Option<bool>,
    /// May be lengthened or cleared (never expire), never shortened or introduced.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>)]
    pub expiry_months: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub promotion_code: Option<Option<String>>,
    /// `false` stops new cards (issue, activation of card stock); `true` starts them again.
    /// Cards already issued keep working either way.
    pub active: Option<bool>,
    /// May be turned off; turning it on is refused (the cards were sold without it).
    pub breakage_on_expiry: Option<bool>,
    /// Never changes: refused.
    #[schema(value_type = Option<String>)]
    pub currency: Option<serde_json::Value>,
    /// Never changes: refused.
    #[schema(value_type = Option<bool>)]
    pub promotional: Option<serde_json::Value>,
    /// Never changes: refused.
    #[schema(value_type = Option<String>)]
    pub number_prefix: Option<serde_json::Value>,
    /// Never changes: refused.
    #[schema(value_type = Option<u32>)]
    pub number_length: Option<serde_json::Value>,
    /// Never changes: refused.
    #[schema(value_type = Option<u32>)]
    pub security_code_length: Option<serde_json::Value>,
}

/// A field that was sent, `null` or not: `Some(None)` for `null`, while a field left out stays
/// `None` (`#[serde(default)]`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProgramResponse {
    pub id: String,
    pub object: &'static str,
    pub name: String,
    pub currency: &'static str,
    pub denominations: Option<Vec<i64>>,
    pub min_load: Option<i64>,
    pub max_load: Option<i64>,
    pub max_balance: Option<i64>,
    pub reloadable: bool,
    pub expiry_months: Option<u32>,
    pub promotional: bool,
    pub number_prefix: String,
    pub number_length: u32,
    pub security_code_length: u32,
    pub promotion_code: Option<String>,
    /// False: the program issues no new cards and activates no card stock.
    pub active: bool,
    /// Value left on an expired card moves to the program's breakage account.
    pub breakage_on_expiry: bool,
    pub created_at: String,
}

impl From<&Program> for ProgramResponse {
    fn from(p: &Program) -> Self {
        Self {
            id: p.id.to_string(),
            object: "program",
            name: p.name.clone(),
            currency: p.currency.code(),
            denominations: p
                .denominations
                .as_ref()
                .map(|d| d.iter().map(|a| a.minor()).collect()),
            min_load: p.min_load.map(|a| a.minor()),
            max_load: p.max_load.map(|a| a.minor()),
            max_balance: p.max_balance.map(|a| a.minor()),
            reloadable: p.reloadable,
            expiry_months: p.expiry_months,
            promotional: p.promotional,
            number_prefix: p.number_prefix.clone(),
            number_length: p.number_length,
            security_code_length: p.security_code_length,
            promotion_code: p.promotion_code.clone(),
            active: p.active,
            breakage_on_expiry: p.breakage_on_expiry,
            created_at: rfc3339(p.created_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCardRequest {
    pub program_id: String,
    /// `virtual` or `physical`.
    pub kind: String,
    /// Virtual cards only: issued active with this value loaded.
    pub amount: Option<i64>,
    /// Import an existing card: its number (6 to 21 digits) ...
    pub number: Option<String>,
    /// ... and its security code. Both or neither.
    pub security_code: Option<String>,
    pub reference: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CardResponse {
    pub id: String,
    pub object: &'static str,
    pub program_id: String,
    /// `virtual` or `physical`.
    pub kind: &'static str,
    /// `inactive`, `active`, `frozen` or `closed`.
    pub state: &'static str,
    pub currency: &'static str,
    pub balance: i64,
    pub held: i64,
    pub available: i64,
    pub expires_at: Option<String>,
    /// `deactivated`, `combined` or `transferred` once the card is closed; null before.
    pub closed_reason: Option<&'static str>,
    pub last4: String,
    pub created_at: String,
    /// Only in the response that creates the card.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// Only in the response that creates the card.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_code: Option<String>,
}

impl CardResponse {
    pub fn new(card: &Card) -> Self {
        let s = &card.snapshot;
        Self {
            id: s.id.to_string(),
            object: "card",
            program_id: s.program_id.to_string(),
            kind: s.kind.as_str(),
            state: s.state.as_str(),
            currency: s.currency.code(),
            balance: s.balance,
            held: s.held,
            available: s.available(),
            expires_at: s.expires_at.map(rfc3339),
            closed_reason: card.closed_reason.map(|r| r.as_str()),
            last4: card.last4.clone(),
            created_at: rfc3339(card.created_at),
            number: None,
            security_code: None,
        }
    }

    pub fn issued(card: &Card, number: &CardNumber, security_code: &SecurityCode) -> Self {
        Self {
            number: Some(number.expose().to_owned()),
            security_code: Some(security_code.expose().to_owned()),
            ..Self::new(card)
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    pub number: String,
    pub security_code: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivateRequest {
    pub amount: Option<i64>,
    /// When given, must be the card's currency (422 `currency_mismatch`).
    pub currency: Option<String>,
    pub reference: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadRequest {
    pub amount: i64,
    pub currency: Option<String>,
    pub reference: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    pub amount: i64,
    /// Take what is available when it is less than `amount`. Default false.
    pub allow_partial: Option<bool>,
    pub currency: Option<String>,
    pub reference: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CashoutRequest {
    /// When given, must be the card's currency (422 `currency_mismatch`).
    pub currency: Option<String>,
    pub reference: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateChangeRequest {}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeactivateRequest {
    /// Release pending holds and pay out the balance, then close. Default false.
    pub cashout: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateHoldRequest {
    pub amount: i64,
    pub allow_partial: Option<bool>,
    pub currency: Option<String>,
    /// 1 to 604800; default 600.
    pub expires_in_seconds: Option<i64>,
    pub reference: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    /// 0 to the hold's amount; default all of it. 0 releases the hold.
    pub amount: Option<i64>,
    /// When given, must be the card's currency (422 `currency_mismatch`).
    pub currency: Option<String>,
    pub reference: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// Default: what remains refundable.
    pub amount: Option<i64>,
    /// When given, must be the card's currency (422 `currency_mismatch`).
    pub currency: Option<String>,
    pub reference: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoidRequest {
    /// When given, must be the card's currency (422 `currency_mismatch`).
    pub currency: Option<String>,
    pub reference: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HoldResponse {
    pub id: String,
    pub object: &'static str,
    pub card_id: String,
    pub amount: i64,
    pub captured_amount: i64,
    /// `pending`, `captured`, `released` or `expired`.
    pub state: &'static str,
    pub expires_at: String,
    pub created_at: String,
}

impl From<&HoldRecord> for HoldResponse {
    fn from(h: &HoldRecord) -> Self {
        Self {
            id: h.snapshot.id.to_string(),
            object: "hold",
            card_id: h.snapshot.card_id.to_string(),
            amount: h.snapshot.amount,
            captured_amount: h.captured_amount,
            state: h.snapshot.state.as_str(),
            expires_at: rfc3339(h.snapshot.expires_at),
            created_at: rfc3339(h.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionResponse {
    pub id: String,
    pub object: &'static str,
    /// `issue`, `activation`, `load`, `redemption`, `hold`, `capture`, `release`, `refund`,
    /// `void`, `cashout`, `transfer_out`, `transfer_in`, `merge_out`, `merge_in`,
    /// `adjustment` or `expiry`.
    #[serde(rename = "type")]
    pub transaction_type: &'static str,
    pub card_id: String,
    /// Positive magnitude in minor units.
    pub amount: i64,
    pub currency: String,
    pub balance_before: i64,
    pub balance_after: i64,
    pub reference: Option<String>,
    /// The transaction this one refunds or voids.
    pub reverses: Option<String>,
    /// The hold this transaction placed, captured or released.
    pub hold_id: Option<String>,
    pub created_at: String,
}

impl From<&TransactionRecord> for TransactionResponse {
    fn from(t: &TransactionRecord) -> Self {
        Self {
            id: t.id.to_string(),
            object: "transaction",
            transaction_type: t.transaction_type.as_str(),
            card_id: t.card_id.to_string(),
            amount: t.amount,
            currency: t.currency.clone(),
            balance_before: t.balance_before,
            balance_after: t.balance_after,
            reference: t.reference.clone(),
            reverses: t.reverses.as_ref().map(ToString::to_string),
            hold_id: t.hold_id.as_ref().map(ToString::to_string),
            created_at: rfc3339(t.created_at),
        }
    }
}

/// A page of a list, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T> {
    pub object: &'static str,
    pub data: Vec<T>,
    /// Pass as `?cursor=` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// Default: the source's whole available balance.
    pub amount: Option<i64>,
    /// An existing card of the same currency; without it, a new card of the source's program
    /// is issued (its number and security code are in this response only).
    pub to_card_id: Option<String>,
    /// Close the source once the transfer leaves it empty. Default false.
    pub close_source: Option<bool>,
    /// When given, must be the source card's currency.
    pub currency: Option<String>,
    pub reference: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransferResponse {
    pub object: &'static str,
    pub source: CardResponse,
    /// With `number` and `security_code` when the transfer issued it.
    pub target: CardResponse,
    pub transfer_out: TransactionResponse,
    pub transfer_in: TransactionResponse,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// 1 to 10 cards whose whole available balance moves into this one; they end closed.
    pub source_card_ids: Vec<String>,
    pub reference: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MergeResponse {
    pub object: &'static str,
    /// The card that received the value.
    pub card: CardResponse,
    /// The source cards, now closed with reason `combined`.
    pub sources: Vec<CardResponse>,
    /// One `merge_out` per source, then the target's `merge_in`; one journal entry.
    pub transactions: Vec<TransactionResponse>,
}
