//! The customer-wallet facade's wire types (seed 003): camelCase, lenient about fields they do not
//! know (as vendor APIs are). Amounts are integers in minor units of the card's currency.

use giftd_domain::wallet::WalletCard;
use giftd_domain::{CardNumber, CardState, CloseReason, SecurityCode};
use giftd_service::views::{Card, TransactionRecord};
use serde::{Deserialize, Serialize};

use crate::edge::rfc3339;

/// How requests name a card: `cardNumber` + `passcode`, or `giftCardId` (optionally with
/// `userId`, the user whose wallet holds it).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CardRef {
    pub card_number: Option<String>,
    pub passcode: Option<String>,
    pub gift_card_id: Option<String>,
    pub user_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssueRequest {
    pub program_id: Option<String>,
    pub amount: Option<i64>,
    pub reference_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CardOperationRequest {
    #[serde(flatten)]
    pub card: CardRef,
    pub amount: Option<i64>,
    pub allow_partial: Option<bool>,
    pub reference_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BalanceTransferRequest {
    pub card_number: Option<String>,
    pub passcode: Option<String>,
    /// Default: the whole available balance.
    pub amount: Option<i64>,
    pub is_delete_source_card: Option<bool>,
    pub reference_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundRequest {
    pub transaction_id: Option<String>,
    pub amount: Option<i64>,
    pub reference_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SaveRequest {
    pub user_id: Option<String>,
    pub card_number: Option<String>,
    pub passcode: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    pub user_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRequest {
    pub user_id: Option<String>,
    pub gift_card_id: Option<String>,
    pub is_preferred: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShareRequest {
    pub user_id: Option<String>,
    pub gift_card_id: Option<String>,
    pub recipient_user_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GiftRequest {
    pub sender_user_id: Option<String>,
    pub recipient_user_id: Option<String>,
    pub gift_card_id: Option<String>,
    pub program_id: Option<String>,
    pub amount: Option<i64>,
    pub source_transaction_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CombineRequest {
    pub target_gift_card_id: Option<String>,
    pub source_gift_card_ids: Option<Vec<String>>,
    pub reference_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WalletErrorBody {
    pub status: &'static str,
    pub error_code: &'static str,
    pub error_message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}

/// A gift card as this facade shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GiftCard {
    pub gift_card_id: String,
    /// `ACTIVE`, `INACTIVE`, `FROZEN`, `CLOSED`, or `COMBINED` for a card closed by a combine.
    pub status: &'static str,
    pub currency: &'static str,
    pub balance: i64,
    pub available_balance: i64,
    pub last4: String,
    pub expires_at: Option<String>,
    /// Only in the answer that created the card.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passcode: Option<String>,
    /// For a card in a user's wallet: `OWNER` or `SHARED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_preferred: Option<bool>,
}

impl GiftCard {
    pub fn new(card: &Card) -> Self {
        let s = &card.snapshot;
        let status = match (s.state, card.closed_reason) {
            (CardState::Closed, Some(CloseReason::Combined)) => "COMBINED",
            (CardState::Closed, _) => "CLOSED",
            (CardState::Active, _) => "ACTIVE",
            (CardState::Inactive, _) => "INACTIVE",
            (CardState::Frozen, _) => "FROZEN",
        };
        Self {
            gift_card_id: s.id.to_string(),
            status,
            currency: s.currency.code(),
            balance: s.balance,
            available_balance: s.available(),
            last4: card.last4.clone(),
            expires_at: s.expires_at.map(rfc3339),
            card_number: None,
            passcode: None,
            access: None,
            is_preferred: None,
        }
    }

    pub fn issued(card: &Card, number: &CardNumber, code: &SecurityCode) -> Self {
        Self {
            card_number: Some(number.expose().to_owned()),
            passcode: Some(code.expose().to_owned()),
            ..Self::new(card)
        }
    }

    pub fn in_wallet(self, entry: &WalletCard) -> Self {
        Self {
            access: Some(match entry.access {
                giftd_domain::wallet::Access::Owner => "OWNER",
                giftd_domain::wallet::Access::Shared => "SHARED",
            }),
            is_preferred: Some(entry.preferred),
            ..self
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IssueResponse {
    pub status: &'static str,
    pub gift_card: GiftCard,
    pub transaction_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CardAnswer {
    pub status: &'static str,
    pub gift_card: GiftCard,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GiftCardTransaction {
    pub status: &'static str,
    pub transaction_id: String,
    pub gift_card_id: String,
    /// `LOAD`, `REDEMPTION`, `REFUND`, ... (the native type, upper case).
    pub transaction_type: String,
    pub amount: i64,
    pub currency: String,
    pub balance: i64,
}

impl GiftCardTransaction {
    pub fn new(t: &TransactionRecord) -> Self {
        Self {
            status: "SUCCESS",
            transaction_id: t.id.to_string(),
            gift_card_id: t.card_id.to_string(),
            transaction_type: t.transaction_type.as_str().to_uppercase(),
            amount: t.amount,
            currency: t.currency.clone(),
            balance: t.balance_after,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BalanceTransferResponse {
    pub status: &'static str,
    pub amount: i64,
    pub currency: String,
    pub source_gift_card: GiftCard,
    pub new_gift_card: GiftCard,
    pub transfer_out_transaction_id: String,
    pub transfer_in_transaction_id: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CombineResponse {
    pub status: &'static str,
    pub target_gift_card: GiftCard,
    pub source_gift_cards: Vec<GiftCard>,
    pub transaction_ids: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GiftCardList {
    pub status: &'static str,
    pub user_id: String,
    pub gift_cards: Vec<GiftCard>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GiftResponse {
    pub status: &'static str,
    pub recipient_user_id: String,
    pub gift_card: GiftCard,
    pub transaction_id: Option<String>,
}
