//! Gr4vy's wire format for gift cards: requests as Gr4vy integrations send them and answers as
//! Gr4vy gives them, field for field (snake_case, `type` discriminators, enums spelled as in
//! Gr4vy's schemas). Requests are lenient: unknown fields are ignored and every field is read
//! as optional, so that a missing one is refused by the handler with a message naming it.
//! Amounts are integers of minor units. Nothing here is seen below the API.

use giftd_domain::wallet::{UserId, WalletCard};
use giftd_domain::{CardNumber, CardState, MerchantId, Timestamp};
use giftd_service::gr4vy::{MIN_DIGITS_FOR_PREFIX, NUMBER_PREFIX_DIGITS};
use giftd_service::views::Card;
use serde::{Deserialize, Serialize};

use crate::edge::rfc3339;

/// Gr4vy's `GiftCardServiceProvider` of every card giftd answers for. `mock-gift-card` is the
/// one value that every official Gr4vy client accepts (some parse the enum closed) and that
/// names no third-party processor; `display_name` says giftd.
pub const GIFT_CARD_SERVICE_DEFINITION_ID: &str = "mock-gift-card";
pub const GIFT_CARD_SERVICE_DISPLAY_NAME: &str = "giftd";
/// A fixed id for giftd as a gift card service (Gr4vy's schema wants a UUID here).
pub const GIFT_CARD_SERVICE_ID: &str = "6a1f2d0e-8c4b-4f6e-9d2a-67696674640a";

// ---- requests ----

/// `GiftCardBalanceRequest`: `{items: [GiftCardRequest | GiftCardStoredRequest]}`.
#[derive(Debug, Deserialize)]
pub struct Gr4vyGiftCardBalanceRequest {
    pub items: Option<Vec<Gr4vyGiftCardBalanceItem>>,
}

/// One item: `{number, pin}` (`GiftCardRequest`) or `{id}` (`GiftCardStoredRequest`).
#[derive(Debug, Deserialize)]
pub struct Gr4vyGiftCardBalanceItem {
    pub id: Option<String>,
    pub number: Option<String>,
    pub pin: Option<String>,
}

/// `GiftCardCreate`: store a gift card, for a buyer or not.
#[derive(Debug, Deserialize)]
pub struct Gr4vyGiftCardCreate {
    pub number: Option<String>,
    pub pin: Option<String>,
    pub buyer_id: Option<String>,
    pub buyer_external_identifier: Option<String>,
}

/// The query of `GET /gift-cards`.
#[derive(Debug, Deserialize)]
pub struct Gr4vyGiftCardListQuery {
    pub buyer_id: Option<String>,
    pub buyer_external_identifier: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// The query of `GET /buyers/gift-cards` (`sort_by` and `order_by` are read and ignored: the
/// cards come oldest stored first).
#[derive(Debug, Deserialize)]
pub struct Gr4vyBuyerGiftCardsQuery {
    pub buyer_id: Option<String>,
    pub buyer_external_identifier: Option<String>,
}

// ---- answers ----

/// `GiftCardService`: which service a card belongs to; always giftd.
#[derive(Debug, Serialize)]
pub struct Gr4vyGiftCardService {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: &'static str,
    pub gift_card_service_definition_id: &'static str,
    pub display_name: &'static str,
}

impl Gr4vyGiftCardService {
    pub fn giftd() -> Self {
        Self {
            kind: "gift-card-service",
            id: GIFT_CARD_SERVICE_ID,
            gift_card_service_definition_id: GIFT_CARD_SERVICE_DEFINITION_ID,
            display_name: GIFT_CARD_SERVICE_DISPLAY_NAME,
        }
    }
}

/// `Buyer`: giftd has no buyer records of its own; a buyer is a wallet user, named by the
/// merchant's own id for its customer: that is its `external_identifier` and
/// `reconciliation_id`, and its `id` a UUID derived from it (`ids::buyer`).
#[derive(Debug, Serialize)]
pub struct Gr4vyBuyer {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    pub reconciliation_id: String,
    pub merchant_account_id: String,
    pub display_name: Option<String>,
    pub external_identifier: String,
    pub billing_details: Option<()>,
    pub account_number: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Gr4vyBuyer {
    /// The buyer as seen from one of its stored cards: giftd keeps no buyer timestamps, so
    /// `created_at` and `updated_at` are when that card was stored.
    fn of(entry: &WalletCard, merchant: &MerchantId) -> Self {
        Self {
            kind: "buyer",
            id: super::ids::buyer(merchant, &entry.user_id),
            reconciliation_id: entry.user_id.to_string(),
            merchant_account_id: merchant.to_string(),
            display_name: None,
            external_identifier: entry.user_id.to_string(),
            billing_details: None,
            account_number: None,
            created_at: rfc3339(entry.created_at),
            updated_at: rfc3339(entry.created_at),
        }
    }
}

/// `TransactionBuyer`: the buyer a transaction was made for (every field optional in Gr4vy's
/// schema).
#[derive(Debug, Serialize)]
pub struct Gr4vyTransactionBuyer {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    pub reconciliation_id: String,
    pub display_name: Option<String>,
    pub external_identifier: String,
    pub billing_details: Option<()>,
    pub account_number: Option<String>,
}

impl Gr4vyTransactionBuyer {
    pub fn of(user: &UserId, merchant: &MerchantId) -> Self {
        Self {
            kind: "buyer",
            id: super::ids::buyer(merchant, user),
            reconciliation_id: user.to_string(),
            display_name: None,
            external_identifier: user.to_string(),
            billing_details: None,
            account_number: None,
        }
    }
}

/// The first 9 digits of a number the request carried (Gr4vy's `bin` and `sub_bin`), as the
/// service gives them for a stored card (`Service::card_number_prefix`): none for a number
/// too short to keep them apart from its last 4 digits.
pub fn number_prefix(number: &CardNumber) -> Option<String> {
    let digits = number.expose();
    (digits.len() >= MIN_DIGITS_FOR_PREFIX).then(|| digits[..NUMBER_PREFIX_DIGITS].to_owned())
}

/// `bin` (the first 6 digits) and `sub_bin` (the 3 after them) from a number's first 9 digits.
pub fn bin_and_sub_bin(prefix: Option<&str>) -> (Option<String>, Option<String>) {
    match prefix {
        Some(digits) if digits.len() == NUMBER_PREFIX_DIGITS => {
            (Some(digits[..6].to_owned()), Some(digits[6..].to_owned()))
        }
        _ => (None, None),
    }
}

/// `GiftCard`: a gift card as stored (the vault's view).
#[derive(Debug, Serialize)]
pub struct Gr4vyGiftCard {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    pub merchant_account_id: String,
    pub gift_card_service: Gr4vyGiftCardService,
    pub bin: Option<String>,
    pub sub_bin: Option<String>,
    pub last4: String,
    pub expiration_date: Option<String>,
    pub buyer: Option<Gr4vyBuyer>,
    pub created_at: String,
    pub updated_at: String,
    pub last_used_at: Option<String>,
    pub usage_count: i64,
    pub cit_last_used_at: Option<String>,
    pub cit_usage_count: i64,
}

impl Gr4vyGiftCard {
    /// `entry`: the buyer's wallet entry, when the card is shown as stored for a buyer (its
    /// `created_at` is then when it was stored); `prefix`: the first 9 digits of its number.
    pub fn new(card: &Card, entry: Option<&WalletCard>, prefix: Option<&str>) -> Self {
        let merchant_account_id = card.merchant_id.to_string();
        let (bin, sub_bin) = bin_and_sub_bin(prefix);
        let stored_at = entry.map_or(card.created_at, |e| e.created_at);
        Self {
            kind: "gift-card",
            id: super::ids::public(card.snapshot.id.as_str()),
            gift_card_service: Gr4vyGiftCardService::giftd(),
            bin,
            sub_bin,
            last4: card.last4.clone(),
            expiration_date: card.snapshot.expires_at.map(rfc3339),
            buyer: entry.map(|e| Gr4vyBuyer::of(e, &card.merchant_id)),
            created_at: rfc3339(stored_at),
            updated_at: rfc3339(stored_at),
            // giftd counts no uses per stored card.
            last_used_at: None,
            usage_count: 0,
            cit_last_used_at: None,
            cit_usage_count: 0,
            merchant_account_id,
        }
    }
}

/// `GiftCards`: a page of stored gift cards.
#[derive(Debug, Serialize)]
pub struct Gr4vyGiftCards {
    pub items: Vec<Gr4vyGiftCard>,
    pub limit: u32,
    pub next_cursor: Option<String>,
    pub previous_cursor: Option<String>,
}

/// Gr4vy's `GiftCardErrorCode`, the values giftd gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Gr4vyGiftCardErrorCode {
    InvalidGiftCard,
    ExpiredCard,
    InactiveCard,
    SuspectedFraud,
    InsufficientFunds,
    IncorrectCurrency,
    InvalidAmount,
    UnexpectedState,
    OperationCanceled,
    UnknownError,
}

/// `GiftCardSummary`: a card with its balance, or why the balance could not be given.
#[derive(Debug, Serialize)]
pub struct Gr4vyGiftCardSummary {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: Option<String>,
    pub merchant_account_id: String,
    pub bin: Option<String>,
    pub sub_bin: Option<String>,
    pub last4: Option<String>,
    pub currency: Option<String>,
    pub expiration_date: Option<String>,
    pub balance: Option<i64>,
    pub balance_error_code: Option<Gr4vyGiftCardErrorCode>,
    pub balance_raw_error_code: Option<String>,
    pub balance_raw_error_message: Option<String>,
    pub last_used_at: Option<String>,
    pub usage_count: i64,
    pub cit_last_used_at: Option<String>,
    pub cit_usage_count: i64,
}

impl Gr4vyGiftCardSummary {
    /// A card giftd found. Its balance is what can be spent now (held value excluded); an
    /// expired card, or one that is not active, has none to give.
    /// `prefix`: the first 9 digits of its number.
    pub fn of_card(card: &Card, prefix: Option<&str>, now: Timestamp) -> Self {
        let (bin, sub_bin) = bin_and_sub_bin(prefix);
        let refusal = if card.snapshot.is_expired(now) {
            Some((
                Gr4vyGiftCardErrorCode::ExpiredCard,
                "card_expired",
                "The card has expired.",
            ))
        } else {
            match card.snapshot.state {
                CardState::Active => None,
                CardState::Inactive => Some((
                    Gr4vyGiftCardErrorCode::InactiveCard,
                    "card_not_active",
                    "The card is inactive.",
                )),
                CardState::Frozen => Some((
                    Gr4vyGiftCardErrorCode::InactiveCard,
                    "card_not_active",
                    "The card is frozen.",
                )),
                CardState::Closed => Some((
                    Gr4vyGiftCardErrorCode::InactiveCard,
                    "card_not_active",
                    "The card is closed.",
                )),
            }
        };
        let mut summary = Self {
            kind: "gift-card",
            id: Some(super::ids::public(card.snapshot.id.as_str())),
            merchant_account_id: card.merchant_id.to_string(),
            bin,
            sub_bin,
            last4: Some(card.last4.clone()),
            currency: Some(card.snapshot.currency.code().to_owned()),
            expiration_date: card.snapshot.expires_at.map(rfc3339),
            balance: Some(card.snapshot.available()),
            balance_error_code: None,
            balance_raw_error_code: None,
            balance_raw_error_message: None,
            last_used_at: None,
            usage_count: 0,
            cit_last_used_at: None,
            cit_usage_count: 0,
        };
        if let Some((code, raw_code, message)) = refusal {
            summary.balance = None;
            summary.balance_error_code = Some(code);
            summary.balance_raw_error_code = Some(raw_code.to_owned());
            summary.balance_raw_error_message = Some(message.to_owned());
        }
        summary
    }

    /// A card whose balance could not be given at all (unknown, wrong PIN, locked, ...):
    /// what the request said of it, and why. `raw_code` and `raw_message` are giftd's own.
    pub fn refused(
        merchant_account_id: &str,
        id: Option<String>,
        number: Option<&CardNumber>,
        code: Gr4vyGiftCardErrorCode,
        raw_code: &str,
        raw_message: String,
    ) -> Self {
        let (bin, sub_bin) = bin_and_sub_bin(number.and_then(number_prefix).as_deref());
        Self {
            kind: "gift-card",
            id,
            merchant_account_id: merchant_account_id.to_owned(),
            bin,
            sub_bin,
            last4: number.map(CardNumber::last4),
            currency: None,
            expiration_date: None,
            balance: None,
            balance_error_code: Some(code),
            balance_raw_error_code: Some(raw_code.to_owned()),
            balance_raw_error_message: Some(raw_message),
            last_used_at: None,
            usage_count: 0,
            cit_last_used_at: None,
            cit_usage_count: 0,
        }
    }
}

/// `GiftCardSummaries`.
#[derive(Debug, Serialize)]
pub struct Gr4vyGiftCardSummaries {
    pub items: Vec<Gr4vyGiftCardSummary>,
}

/// Gr4vy's error envelope (`Error400`, `Error401`, ...): `details` elaborate on the error.
#[derive(Debug, Serialize)]
pub struct Gr4vyErrorBody<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub code: &'static str,
    pub status: u16,
    pub message: &'a str,
    pub details: &'a [Gr4vyErrorDetail],
}

/// `ErrorDetail`: where in the request (`location`: body, query, path or header; `pointer`:
/// a JSON pointer or parameter name), what is wrong, and giftd's own error code as `type`.
#[derive(Debug, Clone, Serialize)]
pub struct Gr4vyErrorDetail {
    pub location: &'static str,
    pub pointer: String,
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
}

// ---- activations and issuances ----

/// `GiftCardActivationCreate`.
#[derive(Debug, Deserialize)]
pub struct Gr4vyGiftCardActivationCreate {
    pub number: Option<String>,
    pub pin: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub external_identifier: Option<String>,
    pub store: Option<bool>,
    pub buyer_id: Option<String>,
    pub buyer_external_identifier: Option<String>,
}

/// `GiftCardIssuanceCreate`.
#[derive(Debug, Deserialize)]
pub struct Gr4vyGiftCardIssuanceCreate {
    pub theme: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub external_identifier: Option<String>,
}

/// `GiftCardIssuance`: a new virtual card, without its number or PIN (Gr4vy's answer carries a
/// `url` where the recipient sees the card instead).
#[derive(Debug, Serialize)]
pub struct Gr4vyGiftCardIssuance {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    pub merchant_account_id: String,
    pub gift_card_service: Gr4vyGiftCardService,
    pub gift_card_service_payment_issuance_id: String,
    pub url: String,
    pub amount: i64,
    pub currency: &'static str,
    pub external_identifier: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

// ---- transactions ----

/// `TransactionCreate`, the fields giftd reads (the others are accepted and ignored).
#[derive(Debug, Deserialize)]
pub struct Gr4vyTransactionCreate {
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub intent: Option<String>,
    pub payment_method: Option<Gr4vyPaymentMethodCreate>,
    pub gift_cards: Option<Vec<Gr4vyTransactionGiftCard>>,
    pub external_identifier: Option<String>,
    pub buyer_id: Option<String>,
    pub buyer_external_identifier: Option<String>,
}

/// `CardWithUrlPaymentMethodCreate`: the one payment method giftd charges.
#[derive(Debug, Deserialize)]
pub struct Gr4vyPaymentMethodCreate {
    pub method: Option<String>,
    pub number: Option<String>,
    pub expiration_date: Option<String>,
    pub security_code: Option<String>,
}

/// `GiftCardTransactionCreate` (`number`, `pin`) or `GiftCardTokenTransactionCreate` (`id`),
/// each with its `amount`.
#[derive(Debug, Deserialize)]
pub struct Gr4vyTransactionGiftCard {
    pub id: Option<String>,
    pub number: Option<String>,
    pub pin: Option<String>,
    pub amount: Option<i64>,
}

/// `TransactionCaptureCreate`: `amount` is the full amount, or the payment method's part to
/// capture. `final` and the rest are accepted and ignored (giftd captures once).
#[derive(Debug, Deserialize)]
pub struct Gr4vyTransactionCapture {
    pub amount: Option<i64>,
}

/// `TransactionCapture` and `TransactionCancel`: what became of a capture or a cancel, around
/// the transaction (a capture answers one under `prefer: resource=transaction-capture`).
#[derive(Debug, Serialize)]
pub struct Gr4vyTransactionAction {
    /// `transaction-capture` or `transaction-cancel`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `succeeded`, `pending` or `failed`.
    pub status: &'static str,
    /// The processor's code for it: giftd has none to give, but a cancel says why it failed.
    pub code: Option<String>,
    pub raw_response_code: Option<String>,
    pub raw_response_description: Option<String>,
    pub transaction: Gr4vyTransaction,
}

/// The body of `POST /transactions/{id}/void` and `/refunds/all`: nothing is read from it.
#[derive(Debug, Deserialize)]
pub struct Gr4vyEmpty {}

/// `TransactionRefundCreate`.
#[derive(Debug, Deserialize)]
pub struct Gr4vyTransactionRefundCreate {
    pub amount: Option<i64>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub reason: Option<String>,
    pub external_identifier: Option<String>,
}

/// `TransactionGiftCard`: the card of one redemption.
#[derive(Debug, Serialize)]
pub struct Gr4vyRedeemedGiftCard {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    pub bin: Option<String>,
    pub sub_bin: Option<String>,
    pub last4: String,
}

/// `GiftCardRedemption`: one gift card's part of a transaction.
#[derive(Debug, Serialize)]
pub struct Gr4vyGiftCardRedemption {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    /// `created`, `succeeded`, `failed`, `skipped`.
    pub status: &'static str,
    pub amount: i64,
    pub refunded_amount: i64,
    pub gift_card_service_redemption_id: Option<String>,
    pub error_code: Option<Gr4vyGiftCardErrorCode>,
    pub raw_error_code: Option<String>,
    pub raw_error_message: Option<String>,
    pub gift_card: Gr4vyRedeemedGiftCard,
}

/// `TransactionPaymentMethod`: what giftd keeps of the card it charged.
#[derive(Debug, Serialize)]
pub struct Gr4vyTransactionPaymentMethod {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    pub method: &'static str,
    pub mode: &'static str,
    pub scheme: Option<String>,
    pub label: Option<String>,
    pub expiration_date: Option<String>,
    pub fingerprint: Option<String>,
    pub approval_url: Option<String>,
    pub country: Option<String>,
    pub currency: Option<String>,
    pub details: Option<()>,
    pub external_identifier: Option<String>,
}

/// `Transaction`: a giftd checkout in Gr4vy's words. Fields giftd has nothing for are null
/// (or false, 0, `{}` where Gr4vy's schema wants a value).
#[derive(Debug, Serialize)]
pub struct Gr4vyTransaction {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    pub reconciliation_id: String,
    pub merchant_account_id: String,
    pub currency: &'static str,
    pub amount: i64,
    pub status: &'static str,
    pub authorized_amount: i64,
    pub captured_amount: i64,
    pub refunded_amount: i64,
    pub settled_currency: Option<()>,
    pub settled_amount: i64,
    pub settled: bool,
    pub country: Option<()>,
    pub external_identifier: Option<String>,
    pub intent: &'static str,
    pub payment_method: Option<Gr4vyTransactionPaymentMethod>,
    pub method: Option<&'static str>,
    pub instrument_type: Option<()>,
    pub error_code: Option<String>,
    pub payment_service: Option<()>,
    pub pending_review: bool,
    pub buyer: Option<Gr4vyTransactionBuyer>,
    pub raw_response_code: Option<String>,
    pub raw_response_description: Option<String>,
    pub shipping_details: Option<()>,
    pub checkout_session_id: Option<()>,
    pub gift_card_redemptions: Vec<Gr4vyGiftCardRedemption>,
    pub gift_card_service: Option<Gr4vyGiftCardService>,
    pub created_at: String,
    pub updated_at: String,
    pub disputed: bool,
    pub reauthorized_from_transaction_id: Option<()>,
    pub airline: Option<()>,
    pub auth_response_code: Option<()>,
    pub avs_response_code: Option<()>,
    pub cvv_response_code: Option<()>,
    pub anti_fraud_decision: Option<()>,
    pub payment_source: &'static str,
    pub merchant_initiated: bool,
    pub is_subsequent_payment: bool,
    pub cart_items: Option<()>,
    pub statement_descriptor: Option<()>,
    pub scheme_transaction_id: Option<()>,
    pub transaction_link_id: Option<()>,
    pub three_d_secure: Option<()>,
    pub payment_service_transaction_id: Option<String>,
    pub additional_identifiers: std::collections::BTreeMap<String, String>,
    pub metadata: Option<()>,
    pub authorized_at: Option<()>,
    pub captured_at: Option<()>,
    pub voided_at: Option<()>,
    pub canceled_at: Option<()>,
    pub approval_expires_at: Option<()>,
    pub buyer_approval_timedout_at: Option<()>,
    /// `pending`, `succeeded`, `failed`: final once reached.
    pub intent_outcome: &'static str,
    pub multi_tender: bool,
    pub account_funding_transaction: bool,
    pub recipient: Option<()>,
    pub merchant_advice_code: Option<()>,
    pub installment_count: Option<()>,
    pub session_token: Option<()>,
    pub tax_amount: Option<()>,
    pub merchant_tax_id: Option<()>,
    pub purchase_order_number: Option<()>,
    pub customer_reference_number: Option<()>,
    pub amount_includes_tax: Option<()>,
    pub supplier_order_number: Option<()>,
    pub duty_amount: Option<()>,
    pub shipping_amount: Option<()>,
    pub iso_response_code: Option<()>,
}

/// `Refund`: one tender's part of a giftd checkout refund.
#[derive(Debug, Serialize)]
pub struct Gr4vyRefund {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    pub transaction_id: String,
    pub payment_service_refund_id: Option<String>,
    /// `processing` (the processor has not confirmed it yet) or `succeeded`.
    pub status: &'static str,
    pub currency: &'static str,
    pub amount: i64,
    /// `payment-method` or `gift-card-redemption`.
    pub target_type: &'static str,
    pub target_id: String,
    pub reason: Option<()>,
    pub reconciliation_id: String,
    pub transaction_reconciliation_id: String,
    pub external_identifier: Option<String>,
    pub transaction_external_identifier: Option<String>,
    pub creator: Option<()>,
    pub error_code: Option<()>,
    pub raw_response_code: Option<()>,
    pub raw_response_description: Option<()>,
    pub settled: bool,
    pub settled_currency: Option<()>,
    pub settled_amount: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// `{"items": [Refund]}`.
#[derive(Debug, Serialize)]
pub struct Gr4vyRefunds {
    pub items: Vec<Gr4vyRefund>,
    /// A transaction's refunds come on one page: `limit` is how many there are.
    pub limit: usize,
    pub next_cursor: Option<String>,
    pub previous_cursor: Option<String>,
}

impl Gr4vyRefunds {
    pub fn all(items: Vec<Gr4vyRefund>) -> Self {
        Self {
            limit: items.len(),
            items,
            next_cursor: None,
            previous_cursor: None,
        }
    }
}
