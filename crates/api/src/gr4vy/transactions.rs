//! Gr4vy's transactions with gift cards, over giftd's split-tender checkouts: a transaction is a
//! checkout (its `id` is the checkout's `chk_...` id), a gift card redemption is a gift card
//! tender (`gcr_...`), the payment method the payment tender (`pay_...`), a refund one tender's
//! part of a checkout refund. Each request is parsed here into the service's checkout request
//! (never a native API type); the steps, their order and the reversals are the service's and the
//! domain's. See docs/GR4VY.md, "Transactions", for the mapping of statuses and fields.

use std::collections::HashSet;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use giftd_domain::checkout::{
    Checkout, GiftCardStatus, GiftCardTender, Intent, IntentOutcome, PaymentStatus, Review, Status,
};
use giftd_domain::wallet::UserId;
use giftd_domain::{Amount, CardId, CardNumber, CheckoutId, MerchantId, SecurityCode, Timestamp};
use giftd_service::checkout::{CheckoutRequest, GiftCardLeg, GiftCardRef, NewCheckout, new_refund_id};
use giftd_service::payments::PaymentCard;
use giftd_service::{Refusal, Rendered, ServiceError};

use super::error::Gr4vyError;
use super::wire::*;
use super::{Answer, Body, Merchant, answer, ok_json, required, unexpected};
use crate::AppState;
use crate::edge::rfc3339;
use crate::native::error::ApiError;
use crate::native::extract;

/// Most gift cards one transaction uses (Gr4vy's limit of 10 (seed 002), the checkout's).
pub const MAX_GIFT_CARDS: usize = giftd_domain::checkout::MAX_GIFT_CARDS;
/// Gr4vy's largest transaction, gift card and refund amount, in minor units.
pub const MAX_AMOUNT: i64 = 99_999_999;

/// What an answer needs beside the checkout: the first 9 digits of each gift card's number,
/// in the order of the checkout's gift card tenders (the request's order).
#[derive(Debug, Clone)]
struct View {
    merchant: MerchantId,
    merchant_account_id: String,
    prefixes: Vec<Option<String>>,
}

/// A request's amount: a positive integer of minor units, at most Gr4vy's maximum.
fn amount(value: i64, field: &str) -> Result<Amount, Gr4vyError> {
    if value > MAX_AMOUNT {
        return Err(Gr4vyError::invalid(
            "body",
            field,
            format!("`{field}` is at most {MAX_AMOUNT}."),
        ));
    }
    extract::amount(value, field).map_err(|e| Gr4vyError::from_native(e, "body"))
}

fn external_identifier(value: Option<String>) -> Result<Option<String>, Gr4vyError> {
    extract::reference(value).map_err(|_| {
        Gr4vyError::invalid(
            "body",
            "external_identifier",
            "`external_identifier` must be at most 255 characters, without control characters.",
        )
    })
}

/// The transaction in a path: a checkout id. One that cannot exist is not found.
fn transaction_id(path: Result<Path<String>, PathRejection>) -> Result<CheckoutId, Gr4vyError> {
    path.ok()
        .and_then(|Path(id)| super::ids::checkout(&id))
        .ok_or_else(|| Gr4vyError::not_found("transaction"))
}

/// The first 9 digits of each gift card of a checkout (a card that cannot be read shows none).
async fn view(app: &AppState, merchant: &MerchantId, checkout: &Checkout) -> Result<View, Gr4vyError> {
    let mut prefixes = Vec::with_capacity(checkout.gift_cards.len());
    for gift in &checkout.gift_cards {
        prefixes.push(stored_prefix(app, merchant, &gift.card_id).await?);
    }
    Ok(View {
        merchant: merchant.clone(),
        merchant_account_id: merchant.to_string(),
        prefixes,
    })
}

async fn stored_prefix(
    app: &AppState,
    merchant: &MerchantId,
    card_id: &CardId,
) -> Result<Option<String>, Gr4vyError> {
    match app.service.card(merchant, card_id).await {
        Ok(card) => Ok(app.service.card_number_prefix(&card)),
        Err(ServiceError::NotFound(_)) => Ok(None),
        Err(other) => Err(other.into()),
    }
}

async fn read(app: &AppState, merchant: &MerchantId, id: &CheckoutId) -> Result<Checkout, Gr4vyError> {
    Ok(app.service.checkout(merchant, id).await?)
}

// ---- mapping ----

/// Gr4vy's `TransactionStatus` of a checkout. Gr4vy's status describes the payment method, so
/// a failed checkout shows what became of its payment (declined, voided, captured and refunded);
/// one with no payment method, or whose payment giftd never saw approved, `authorization_failed`.
fn transaction_status(checkout: &Checkout) -> &'static str {
    match checkout.status {
        Status::Processing => "processing",
        Status::InReview | Status::Authorized => "authorization_succeeded",
        Status::Capturing => "capture_pending",
        Status::Captured => "capture_succeeded",
        Status::Voiding => "authorization_void_pending",
        Status::Voided => "authorization_voided",
        Status::Failed => match &checkout.payment {
            None => "authorization_failed",
            Some(payment) if payment.status == PaymentStatus::Declined => "authorization_declined",
            Some(payment) if payment.processor_reference.is_none() => "authorization_failed",
            Some(payment) => match payment.status {
                PaymentStatus::Pending | PaymentStatus::Declined => "authorization_failed",
                PaymentStatus::Authorized => "authorization_succeeded",
                PaymentStatus::VoidPending => "authorization_void_pending",
                PaymentStatus::Voided => "authorization_voided",
                PaymentStatus::Captured | PaymentStatus::Refunded => "capture_succeeded",
            },
        },
    }
}

/// `GiftCardRedemptionStatus` of a gift card tender.
fn redemption_status(gift: &GiftCardTender) -> &'static str {
    match gift.status {
        GiftCardStatus::Pending => "created",
        GiftCardStatus::Held | GiftCardStatus::Redeemed => "succeeded",
        GiftCardStatus::Failed => "failed",
        // A hold released because this card could not be captured failed; the others of a
        // voided or failed capture were simply not used.
        GiftCardStatus::Released if gift.error_code.is_some() => "failed",
        GiftCardStatus::Released | GiftCardStatus::Skipped => "skipped",
    }
}

/// Gr4vy's `GiftCardErrorCode` for the code giftd recorded on a gift card tender.
fn gift_card_error_code(code: &str) -> Gr4vyGiftCardErrorCode {
    match code {
        "insufficient_funds" => Gr4vyGiftCardErrorCode::InsufficientFunds,
        "card_not_active" => Gr4vyGiftCardErrorCode::InactiveCard,
        "card_expired" => Gr4vyGiftCardErrorCode::ExpiredCard,
        "currency_mismatch" => Gr4vyGiftCardErrorCode::IncorrectCurrency,
        "card_locked" => Gr4vyGiftCardErrorCode::SuspectedFraud,
        "invalid_card" => Gr4vyGiftCardErrorCode::InvalidGiftCard,
        "invalid_amount" => Gr4vyGiftCardErrorCode::InvalidAmount,
        "hold_not_pending" => Gr4vyGiftCardErrorCode::UnexpectedState,
        _ => Gr4vyGiftCardErrorCode::UnknownError,
    }
}

fn redemption(gift: &GiftCardTender, prefix: Option<&str>) -> Gr4vyGiftCardRedemption {
    let (bin, sub_bin) = bin_and_sub_bin(prefix);
    let error_code = match (&gift.error_code, gift.status) {
        (Some(code), _) => Some(gift_card_error_code(code)),
        // Failed with the others: the gift cards of a transaction are used all or none.
        (None, GiftCardStatus::Failed) => Some(Gr4vyGiftCardErrorCode::OperationCanceled),
        (None, _) => None,
    };
    Gr4vyGiftCardRedemption {
        kind: "gift-card-redemption",
        id: super::ids::public(&gift.id),
        status: redemption_status(gift),
        amount: gift.amount,
        refunded_amount: gift.refunded_amount,
        gift_card_service_redemption_id: gift.transaction_id.as_ref().map(ToString::to_string),
        error_code,
        raw_error_code: gift.error_code.clone(),
        raw_error_message: gift.error_message.clone(),
        gift_card: Gr4vyRedeemedGiftCard {
            kind: "gift-card",
            id: super::ids::public(gift.card_id.as_str()),
            bin,
            sub_bin,
            last4: gift.last4.clone(),
        },
    }
}

fn transaction(checkout: &Checkout, view: &View) -> Gr4vyTransaction {
    let payment = checkout.payment.as_ref();
    // The amounts are the payment method's, as in Gr4vy (`authorized_amount` "can be less than
    // the `amount` if gift cards were used"); each redemption carries its own.
    let approved = payment.is_some_and(|p| p.processor_reference.is_some());
    let authorized_amount = payment
        .filter(|_| approved)
        .map_or(0, |p| p.amount + p.uncaptured);
    let captured_amount = payment
        .filter(|p| matches!(p.status, PaymentStatus::Captured | PaymentStatus::Refunded))
        .map_or(0, |p| p.amount);
    let refunded_amount = payment.map_or(0, |p| p.refunded_amount);
    let gift_card_redemptions = checkout
        .gift_cards
        .iter()
        .enumerate()
        .map(|(i, gift)| redemption(gift, view.prefixes.get(i).and_then(Option::as_deref)))
        .collect();
    Gr4vyTransaction {
        kind: "transaction",
        id: super::ids::public(checkout.id.as_str()),
        reconciliation_id: checkout.id.to_string(),
        merchant_account_id: view.merchant_account_id.clone(),
        currency: checkout.currency.code(),
        amount: checkout.amount,
        status: transaction_status(checkout),
        authorized_amount,
        captured_amount,
        refunded_amount,
        settled_currency: None,
        settled_amount: 0,
        settled: false,
        country: None,
        external_identifier: checkout.reference.clone(),
        intent: match checkout.intent {
            Intent::Authorize => "authorize",
            Intent::Capture => "capture",
        },
        payment_method: payment.map(|p| Gr4vyTransactionPaymentMethod {
            kind: "payment-method",
            id: super::ids::public(&p.id),
            method: "card",
            mode: "card",
            // giftd's brand `card` is a scheme it did not recognise.
            scheme: p.brand.clone().filter(|b| b != "card"),
            label: p.last4.clone(),
            expiration_date: None,
            fingerprint: None,
            approval_url: None,
            country: None,
            currency: None,
            details: None,
            external_identifier: None,
        }),
        method: payment.map(|_| "card"),
        instrument_type: None,
        error_code: checkout.problem.as_ref().map(|p| p.code.clone()),
        payment_service: None,
        pending_review: checkout.review == Review::Pending,
        buyer: checkout
            .buyer
            .as_deref()
            .and_then(UserId::parse)
            .map(|user| Gr4vyTransactionBuyer::of(&user, &view.merchant)),
        raw_response_code: payment.and_then(|p| p.error_code.clone()),
        raw_response_description: payment.and_then(|p| p.error_message.clone()),
        shipping_details: None,
        checkout_session_id: None,
        gift_card_redemptions,
        gift_card_service: (!checkout.gift_cards.is_empty()).then(Gr4vyGiftCardService::giftd),
        created_at: rfc3339(checkout.created_at),
        updated_at: rfc3339(checkout.updated_at),
        disputed: false,
        reauthorized_from_transaction_id: None,
        airline: None,
        auth_response_code: None,
        avs_response_code: None,
        cvv_response_code: None,
        anti_fraud_decision: None,
        payment_source: "ecommerce",
        merchant_initiated: false,
        is_subsequent_payment: false,
        cart_items: None,
        statement_descriptor: None,
        scheme_transaction_id: None,
        transaction_link_id: None,
        three_d_secure: None,
        payment_service_transaction_id: payment.and_then(|p| p.processor_reference.clone()),
        additional_identifiers: Default::default(),
        metadata: None,
        authorized_at: None,
        captured_at: None,
        voided_at: None,
        canceled_at: None,
        approval_expires_at: None,
        buyer_approval_timedout_at: None,
        intent_outcome: match checkout.intent_outcome {
            IntentOutcome::Pending => "pending",
            IntentOutcome::Succeeded => "succeeded",
            IntentOutcome::Failed => "failed",
        },
        multi_tender: checkout.multi_tender(),
        account_funding_transaction: false,
        recipient: None,
        merchant_advice_code: None,
        installment_count: None,
        session_token: None,
        tax_amount: None,
        merchant_tax_id: None,
        purchase_order_number: None,
        customer_reference_number: None,
        amount_includes_tax: None,
        supplier_order_number: None,
        duty_amount: None,
        shipping_amount: None,
        iso_response_code: None,
    }
}

/// The Gr4vy refunds of a checkout's refunds that `keep` selects: one per tender a refund
/// reached (a refund that spans several tenders, from `/refunds/all`, gives several). A refund
/// of the payment method the processor has not confirmed yet is `processing`.
fn refunds(checkout: &Checkout, keep: impl Fn(&str) -> bool) -> Vec<Gr4vyRefund> {
    let payment_id = checkout.payment.as_ref().map(|p| p.id.as_str());
    // Payment refunds are confirmed in order: the newest ones make up what is still pending.
    let mut pending = checkout.payment.as_ref().map_or(0, |p| p.refund_pending);
    let mut processing = HashSet::new();
    for refund in checkout.refunds.iter().rev() {
        for allocation in &refund.allocations {
            if Some(allocation.tender_id.as_str()) == payment_id && pending > 0 {
                processing.insert(refund.id.as_str());
                pending -= allocation.amount;
            }
        }
    }
    let mut items = Vec::new();
    for refund in checkout.refunds.iter().filter(|r| keep(&r.id)) {
        let tenders = refund.allocations.len();
        for (index, allocation) in refund.allocations.iter().enumerate() {
            let to_payment = Some(allocation.tender_id.as_str()) == payment_id;
            items.push(Gr4vyRefund {
                kind: "refund",
                id: super::ids::refund_part(&refund.id, index + 1, tenders),
                // giftd's own name for it: the refund's id, and the tender's place when several.
                reconciliation_id: if tenders > 1 {
                    format!("{}_{}", refund.id, index + 1)
                } else {
                    refund.id.clone()
                },
                transaction_id: super::ids::public(checkout.id.as_str()),
                payment_service_refund_id: allocation.transaction_id.as_ref().map(ToString::to_string),
                status: if to_payment && processing.contains(refund.id.as_str()) {
                    "processing"
                } else {
                    "succeeded"
                },
                currency: checkout.currency.code(),
                amount: allocation.amount,
                target_type: if to_payment {
                    "payment-method"
                } else {
                    "gift-card-redemption"
                },
                target_id: super::ids::public(&allocation.tender_id),
                reason: None,
                transaction_reconciliation_id: checkout.id.to_string(),
                external_identifier: refund.reference.clone(),
                transaction_external_identifier: checkout.reference.clone(),
                creator: None,
                error_code: None,
                raw_response_code: None,
                raw_response_description: None,
                settled: false,
                settled_currency: None,
                settled_amount: 0,
                created_at: rfc3339(refund.created_at),
                updated_at: rfc3339(refund.created_at),
            });
        }
    }
    items
}

/// An answer of this facade, rendered inside a command's job.
pub(super) fn json(status: StatusCode, body: &impl serde::Serialize) -> Rendered {
    Rendered {
        status: status.as_u16(),
        body: serde_json::to_vec(body).expect("response types always serialize"),
    }
}

/// A refused transaction request. Creating one, a gift card that cannot be used at all (not
/// found, wrong number or PIN, locked, another currency) is a 400 about `gift_cards`.
fn refused(refusal: &Refusal, creating: bool) -> Gr4vyError {
    match refusal {
        Refusal::NotFound("card") if creating => Gr4vyError::from_native(
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "not_found",
                "A gift card of the transaction could not be found.",
            )
            .with_param("gift_cards"),
            "body",
        ),
        Refusal::Domain(_) if creating => {
            let mut error = Gr4vyError::from_refusal(refusal);
            for detail in &mut error.details {
                detail.pointer = "/gift_cards".into();
            }
            error
        }
        other => Gr4vyError::from_refusal(other),
    }
}

fn render_transaction(
    result: &Result<Checkout, Refusal>,
    view: &View,
    success: StatusCode,
    creating: bool,
) -> Rendered {
    match result {
        Ok(checkout) => json(success, &transaction(checkout, view)),
        Err(refusal) => refused(refusal, creating).rendered(),
    }
}

// ---- parsing ----

fn gift_card_leg(index: usize, item: Gr4vyTransactionGiftCard) -> Result<GiftCardLeg, Gr4vyError> {
    let field = format!("gift_cards/{index}");
    let value = required(item.amount, "body", &format!("{field}/amount"))?;
    let amount = amount(value, &format!("{field}/amount"))?;
    let card = match (item.id, item.number, item.pin) {
        (Some(id), None, None) => GiftCardRef::Id(super::ids::card(&id).ok_or_else(|| {
            Gr4vyError::invalid(
                "body",
                &format!("{field}/id"),
                format!("`{field}/id` is not a gift card id."),
            )
        })?),
        (None, Some(number), Some(pin)) => {
            let number = CardNumber::parse(&number).ok_or_else(|| {
                Gr4vyError::invalid(
                    "body",
                    &format!("{field}/number"),
                    format!("`{field}/number` must be a gift card number: digits only."),
                )
            })?;
            // A PIN no card can have is checked as a wrong one (it counts toward the lockout).
            let security_code = SecurityCode::presented(&pin);
            GiftCardRef::Secret {
                number,
                security_code,
            }
        }
        _ => {
            return Err(Gr4vyError::invalid(
                "body",
                &field,
                "Each gift card is either `{number, pin, amount}` or `{id, amount}`.",
            ));
        }
    };
    Ok(GiftCardLeg { card, amount })
}

fn payment_card(method: Gr4vyPaymentMethodCreate) -> Result<PaymentCard, Gr4vyError> {
    if method.method.as_deref() != Some("card") {
        return Err(Gr4vyError::invalid(
            "body",
            "payment_method/method",
            "giftd charges one kind of payment method: `method` must be `card`.",
        ));
    }
    let number = required(method.number, "body", "payment_method/number")?;
    PaymentCard::parse(
        &number,
        method.expiration_date.as_deref(),
        method.security_code.as_deref(),
    )
    .map_err(|message| Gr4vyError::invalid("body", "payment_method", format!("{message}.")))
}

// ---- handlers ----

/// `POST /transactions`: a checkout, driven as far as it goes now (the payment method first,
/// then every gift card together; one that fails reverts the others and the payment). A
/// transaction whose intent failed is still created: 201, `intent_outcome` `failed`.
pub async fn create_transaction(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    body: Body<Gr4vyTransactionCreate>,
) -> Answer {
    let r = body.value;
    let total = amount(required(r.amount, "body", "amount")?, "amount")?;
    let currency = extract::currency(&required(r.currency, "body", "currency")?)
        .map_err(|e| Gr4vyError::from_native(e, "body"))?;
    let intent = match r.intent.as_deref() {
        None | Some("authorize") => Intent::Authorize,
        Some("capture") => Intent::Capture,
        Some(_) => {
            return Err(Gr4vyError::invalid(
                "body",
                "intent",
                "`intent` must be `authorize` or `capture`.",
            ));
        }
    };
    let items = r.gift_cards.unwrap_or_default();
    if items.len() > MAX_GIFT_CARDS {
        return Err(Gr4vyError::from_native(
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "limit_exceeded",
                format!(
                    "A transaction takes at most {MAX_GIFT_CARDS} gift cards; {} were given.",
                    items.len()
                ),
            )
            .with_param("gift_cards"),
            "body",
        ));
    }
    let legs = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| gift_card_leg(i, item))
        .collect::<Result<Vec<_>, _>>()?;
    let payment = r.payment_method.map(payment_card).transpose()?;
    let reference = external_identifier(r.external_identifier)?;
    let buyer = super::buyer_of(
        &app,
        &merchant,
        r.buyer_id.as_deref(),
        r.buyer_external_identifier.as_deref(),
        "body",
    )
    .await?;
    // The first digits of each gift card: from the number given, or the stored card's.
    let mut prefixes = Vec::with_capacity(legs.len());
    for leg in &legs {
        prefixes.push(match &leg.card {
            GiftCardRef::Secret { number, .. } => number_prefix(number),
            GiftCardRef::Id(card_id) => stored_prefix(&app, &merchant, card_id).await?,
        });
    }
    let view = View {
        merchant: merchant.clone(),
        merchant_account_id: merchant.to_string(),
        prefixes,
    };
    let new = NewCheckout {
        amount: total,
        currency,
        intent,
        gift_cards: legs,
        payment,
        reference,
        buyer: buyer.map(|user| user.to_string()),
        review: false,
        hold_seconds: None,
    };
    let rendered = app
        .service
        .create_checkout(
            merchant,
            new,
            body.idempotency,
            Box::new(move |result| render_transaction(result, &view, StatusCode::CREATED, true)),
        )
        .await?;
    Ok(answer(rendered))
}

/// `GET /transactions/{transaction_id}`.
pub async fn get_transaction(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    path: Result<Path<String>, PathRejection>,
) -> Answer {
    let id = transaction_id(path)?;
    let checkout = read(&app, &merchant, &id).await?;
    let view = view(&app, &merchant, &checkout).await?;
    Ok(ok_json(StatusCode::OK, &transaction(&checkout, &view)))
}

/// Runs a capture or void and answers with the transaction.
async fn request(
    app: &AppState,
    merchant: MerchantId,
    id: CheckoutId,
    view: View,
    request: CheckoutRequest,
    idempotency: Option<giftd_service::IdempotencyKey>,
) -> Answer {
    let rendered = app
        .service
        .checkout_request(
            merchant,
            id,
            request,
            idempotency,
            Box::new(move |result| render_transaction(result, &view, StatusCode::OK, false)),
        )
        .await?;
    Ok(answer(rendered))
}

/// `POST /transactions/{transaction_id}/capture`: the payment method first, then every gift
/// card hold. Without `amount`, or with the full amount (the transaction's, or the payment
/// method's `authorized_amount`), all of it; with less than `authorized_amount`, that much of
/// the payment method (the gift cards whole, the rest of the authorization released). With
/// `prefer: resource=transaction-capture` the answer is a `TransactionCapture` around the
/// transaction, else the `Transaction`.
pub async fn capture_transaction(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    headers: axum::http::HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Body<Gr4vyTransactionCapture>,
) -> Answer {
    let id = transaction_id(path)?;
    let checkout = read(&app, &merchant, &id).await?;
    let authorized = checkout.payment.as_ref().map(|p| p.amount + p.uncaptured);
    let payment_amount = match body.value.amount {
        None => None,
        Some(asked) if asked == checkout.amount || Some(asked) == authorized => None,
        Some(asked) => match authorized {
            Some(authorized) if (1..authorized).contains(&asked) => Some(amount(asked, "amount")?),
            _ => {
                return Err(Gr4vyError::invalid(
                    "body",
                    "amount",
                    match authorized {
                        Some(authorized) => format!(
                            "`amount` is the payment method's part to capture, 1 to its authorized amount {authorized}, or the transaction's {}; leave it out to capture everything.",
                            checkout.amount
                        ),
                        None => format!(
                            "A transaction without a payment method is captured whole: `amount` is {} or left out.",
                            checkout.amount
                        ),
                    },
                ));
            }
        },
    };
    let as_capture = prefers_capture_resource(&headers);
    let view = view(&app, &merchant, &checkout).await?;
    let rendered = app
        .service
        .checkout_request(
            merchant,
            id,
            CheckoutRequest::Capture { payment_amount },
            body.idempotency,
            Box::new(move |result| match (result, as_capture) {
                (Ok(checkout), true) => json(
                    StatusCode::OK,
                    &Gr4vyTransactionAction {
                        kind: "transaction-capture",
                        status: "succeeded",
                        code: None,
                        raw_response_code: None,
                        raw_response_description: None,
                        transaction: transaction(checkout, &view),
                    },
                ),
                _ => render_transaction(result, &view, StatusCode::OK, false),
            }),
        )
        .await?;
    Ok(answer(rendered))
}

/// Whether a `prefer` header asks for `resource=transaction-capture` (Gr4vy's header; several
/// preferences may come comma-separated or in several headers).
fn prefers_capture_resource(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|preference| preference.trim() == "resource=transaction-capture")
}

/// `POST /transactions/{transaction_id}/void`: releases the gift card holds and voids the
/// payment method's authorization.
pub async fn void_transaction(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    path: Result<Path<String>, PathRejection>,
    body: Body<Gr4vyEmpty>,
) -> Answer {
    let id = transaction_id(path)?;
    let checkout = read(&app, &merchant, &id).await?;
    let view = view(&app, &merchant, &checkout).await?;
    request(&app, merchant, id, view, CheckoutRequest::Void, body.idempotency).await
}

/// Whether a request's `target_id` (a UUID this facade showed, or giftd's id) names the tender
/// `tender_id`.
fn names_tender(target: &str, tender_id: &str) -> bool {
    target == tender_id || super::ids::public(tender_id).eq_ignore_ascii_case(target)
}

/// Runs a refund of a checkout and renders the refund it made (one item per tender it reached).
async fn refund(
    app: &AppState,
    merchant: MerchantId,
    checkout: &Checkout,
    request: CheckoutRequest,
    idempotency: Option<giftd_service::IdempotencyKey>,
    all: bool,
) -> Answer {
    let CheckoutRequest::Refund { id: refund_id, .. } = &request else {
        return Err(Gr4vyError::from(ServiceError::unexpected_outcome()));
    };
    let refund_id = refund_id.clone();
    let rendered = app
        .service
        .checkout_request(
            merchant,
            checkout.id.clone(),
            request,
            idempotency,
            Box::new(move |result| match result {
                Ok(checkout) => {
                    // The refund this request made, by the id it gave it.
                    let mut items = refunds(checkout, |id| id == refund_id);
                    if items.is_empty() {
                        unexpected()
                    } else if all {
                        json(StatusCode::CREATED, &Gr4vyRefunds::all(items))
                    } else if items.len() == 1 {
                        json(StatusCode::CREATED, &items.remove(0))
                    } else {
                        unexpected()
                    }
                }
                Err(refusal) => refused(refusal, false).rendered(),
            }),
        )
        .await?;
    Ok(answer(rendered))
}

/// `POST /transactions/{transaction_id}/refunds`: refunds one tender of a captured transaction
/// (in part or in full). `target_type` `gift-card-redemption` names a redemption by its id
/// (`target_id`, required); `payment-method`, the default, the payment method.
pub async fn create_transaction_refund(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    path: Result<Path<String>, PathRejection>,
    body: Body<Gr4vyTransactionRefundCreate>,
) -> Answer {
    let id = transaction_id(path)?;
    let r = body.value;
    let amount = r.amount.map(|value| amount(value, "amount")).transpose()?;
    let reference = external_identifier(r.external_identifier)?;
    let checkout = read(&app, &merchant, &id).await?;
    let tender_id = match r.target_type.as_deref() {
        None | Some("payment-method") => {
            let Some(payment) = &checkout.payment else {
                return Err(Gr4vyError::invalid(
                    "body",
                    "target_type",
                    "This transaction has no payment method: refund a `gift-card-redemption` (with its `target_id`), or all of it with `/refunds/all`.",
                ));
            };
            if r.target_id
                .as_ref()
                .is_some_and(|t| !names_tender(t, &payment.id))
            {
                return Err(Gr4vyError::invalid(
                    "body",
                    "target_id",
                    format!(
                        "The payment method of this transaction is `{}`.",
                        super::ids::public(&payment.id)
                    ),
                ));
            }
            payment.id.clone()
        }
        Some("gift-card-redemption") => {
            let target = required(r.target_id, "body", "target_id")?;
            let Some(gift) = checkout.gift_cards.iter().find(|g| names_tender(&target, &g.id)) else {
                return Err(Gr4vyError::invalid(
                    "body",
                    "target_id",
                    "`target_id` is not a gift card redemption of this transaction.",
                ));
            };
            gift.id.clone()
        }
        Some(_) => {
            return Err(Gr4vyError::invalid(
                "body",
                "target_type",
                "`target_type` must be `payment-method` or `gift-card-redemption`.",
            ));
        }
    };
    let request = CheckoutRequest::Refund {
        id: new_refund_id(),
        amount,
        tender_id: Some(tender_id),
        reference,
    };
    refund(&app, merchant, &checkout, request, body.idempotency, false).await
}

/// `POST /transactions/{transaction_id}/refunds/all`: refunds all that is left, of every
/// tender, in one refund (the gift cards at once, the payment method through the processor).
pub async fn create_full_transaction_refund(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    path: Result<Path<String>, PathRejection>,
    body: Body<Gr4vyEmpty>,
) -> Answer {
    let id = transaction_id(path)?;
    let checkout = read(&app, &merchant, &id).await?;
    let request = CheckoutRequest::Refund {
        id: new_refund_id(),
        amount: None,
        tender_id: None,
        reference: None,
    };
    refund(&app, merchant, &checkout, request, body.idempotency, true).await
}

/// `GET /transactions/{transaction_id}/refunds`: every refund of the transaction, oldest first.
pub async fn list_transaction_refunds(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    path: Result<Path<String>, PathRejection>,
) -> Answer {
    let id = transaction_id(path)?;
    let checkout = read(&app, &merchant, &id).await?;
    let items = refunds(&checkout, |_| true);
    Ok(ok_json(StatusCode::OK, &Gr4vyRefunds::all(items)))
}

/// Most transactions one page of `GET /transactions` gives (Gr4vy's maximum), and its default.
pub const MAX_LIST_LIMIT: usize = 100;
pub const DEFAULT_LIST_LIMIT: usize = 20;
/// Most checkouts one `GET /transactions` reads to fill a page under its filters: a page may
/// then hold fewer than `limit` items, and its `next_cursor` goes on from where it stopped.
pub const MAX_LIST_SCAN: usize = 1_000;
/// Checkouts read from the store at a time while filling a page.
const LIST_BATCH: u32 = 100;
/// The fields of a `Transaction` that Gr4vy's `TransactionSummary` (a list's item) has.
const SUMMARY_FIELDS: [&str; 33] = [
    "type",
    "id",
    "reconciliation_id",
    "merchant_account_id",
    "currency",
    "amount",
    "status",
    "authorized_amount",
    "captured_amount",
    "refunded_amount",
    "settled_amount",
    "settled",
    "intent",
    "gift_card_redemptions",
    "created_at",
    "updated_at",
    "disputed",
    "settled_currency",
    "country",
    "external_identifier",
    "payment_method",
    "method",
    "instrument_type",
    "error_code",
    "payment_service",
    "pending_review",
    "buyer",
    "raw_response_code",
    "raw_response_description",
    "shipping_details",
    "checkout_session_id",
    "gift_card_service",
    "reauthorized_from_transaction_id",
];

/// The filters of `GET /transactions` giftd applies; the others Gr4vy has are accepted and
/// ignored (docs/GR4VY.md lists them).
#[derive(Debug, Default)]
struct ListFilter {
    created_at_gte: Option<Timestamp>,
    created_at_lte: Option<Timestamp>,
    updated_at_gte: Option<Timestamp>,
    updated_at_lte: Option<Timestamp>,
    id: Option<CheckoutId>,
    external_identifier: Option<String>,
    status: Vec<String>,
    intent: Vec<String>,
    currency: Vec<String>,
    amount_eq: Option<i64>,
    amount_gte: Option<i64>,
    amount_lte: Option<i64>,
    /// The buyer as the query named it (`buyer_id`, `buyer_external_identifier`), then as
    /// resolved (`buyer`).
    buyer_named: (Option<String>, Option<String>),
    buyer: Option<String>,
    has_refunds: Option<bool>,
    has_gift_card_redemptions: Option<bool>,
    gift_card_id: Option<CardId>,
    gift_card_last4: Option<String>,
}

impl ListFilter {
    fn keeps(&self, checkout: &Checkout) -> bool {
        let within = |at: Timestamp, gte: Option<Timestamp>, lte: Option<Timestamp>| {
            gte.is_none_or(|t| at >= t) && lte.is_none_or(|t| at <= t)
        };
        let intent = match checkout.intent {
            Intent::Authorize => "authorize",
            Intent::Capture => "capture",
        };
        within(checkout.created_at, self.created_at_gte, self.created_at_lte)
            && within(checkout.updated_at, self.updated_at_gte, self.updated_at_lte)
            && self.id.as_ref().is_none_or(|id| *id == checkout.id)
            && self
                .external_identifier
                .as_ref()
                .is_none_or(|e| checkout.reference.as_ref() == Some(e))
            && (self.status.is_empty() || self.status.iter().any(|s| s == transaction_status(checkout)))
            && (self.intent.is_empty() || self.intent.iter().any(|i| i == intent))
            && (self.currency.is_empty() || self.currency.iter().any(|c| c == checkout.currency.code()))
            && self.amount_eq.is_none_or(|a| checkout.amount == a)
            && self.amount_gte.is_none_or(|a| checkout.amount >= a)
            && self.amount_lte.is_none_or(|a| checkout.amount <= a)
            && self
                .buyer
                .as_ref()
                .is_none_or(|b| checkout.buyer.as_ref() == Some(b))
            && self
                .has_refunds
                .is_none_or(|wanted| wanted != checkout.refunds.is_empty())
            && self
                .has_gift_card_redemptions
                .is_none_or(|wanted| wanted != checkout.gift_cards.is_empty())
            && self
                .gift_card_id
                .as_ref()
                .is_none_or(|card| checkout.gift_cards.iter().any(|g| g.card_id == *card))
            && self
                .gift_card_last4
                .as_ref()
                .is_none_or(|last4| checkout.gift_cards.iter().any(|g| g.last4 == *last4))
    }
}

/// Reads `GET /transactions`'s query: `(limit, cursor, filter)`. Lists repeat their key
/// (`status=a&status=b`), as Gr4vy's clients send them.
fn list_query(raw: Option<&str>) -> Result<(usize, Option<CheckoutId>, ListFilter), Gr4vyError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or_default())
        .map_err(|_| Gr4vyError::invalid("query", "", "The query string cannot be read."))?;
    let invalid = |field: &str, message: String| Gr4vyError::invalid("query", field, message);
    let time = |field: &str, value: &str| {
        crate::edge::parse_rfc3339(value)
            .ok_or_else(|| invalid(field, format!("`{field}` must be an RFC 3339 date-time.")))
    };
    let integer = |field: &str, value: &str| {
        value
            .parse::<i64>()
            .ok()
            .filter(|n| (0..=i64::from(i32::MAX)).contains(n))
            .ok_or_else(|| {
                invalid(
                    field,
                    format!("`{field}` must be an integer from 0 to {}.", i32::MAX),
                )
            })
    };
    let boolean = |field: &str, value: &str| match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(field, format!("`{field}` must be `true` or `false`."))),
    };
    let mut limit = DEFAULT_LIST_LIMIT;
    let mut cursor = None;
    let mut filter = ListFilter::default();
    for (key, value) in pairs {
        match key.as_str() {
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIST_LIMIT).contains(n))
                    .ok_or_else(|| {
                        invalid("limit", format!("`limit` must be from 1 to {MAX_LIST_LIMIT}."))
                    })?;
            }
            "cursor" => {
                cursor =
                    Some(CheckoutId::parse(&value).ok_or_else(|| {
                        invalid("cursor", "`cursor` is not a cursor this API gave.".into())
                    })?);
            }
            "created_at_gte" => filter.created_at_gte = Some(time(&key, &value)?),
            "created_at_lte" => filter.created_at_lte = Some(time(&key, &value)?),
            "updated_at_gte" => filter.updated_at_gte = Some(time(&key, &value)?),
            "updated_at_lte" => filter.updated_at_lte = Some(time(&key, &value)?),
            "id" => {
                // An id that cannot be a transaction matches none.
                filter.id = Some(
                    super::ids::checkout(&value)
                        .unwrap_or_else(|| CheckoutId::new(format!("{}none", CheckoutId::PREFIX))),
                );
            }
            "external_identifier" => filter.external_identifier = Some(value),
            "status" => filter.status.push(value),
            "intent" => filter.intent.push(value),
            "currency" => filter.currency.push(value),
            "amount_eq" => filter.amount_eq = Some(integer(&key, &value)?),
            "amount_gte" => filter.amount_gte = Some(integer(&key, &value)?),
            "amount_lte" => filter.amount_lte = Some(integer(&key, &value)?),
            "buyer_id" => filter.buyer_named.0 = Some(value),
            "buyer_external_identifier" => filter.buyer_named.1 = Some(value),
            "has_refunds" => filter.has_refunds = Some(boolean(&key, &value)?),
            "has_gift_card_redemptions" => filter.has_gift_card_redemptions = Some(boolean(&key, &value)?),
            "gift_card_id" => {
                filter.gift_card_id = Some(
                    super::ids::card(&value)
                        .unwrap_or_else(|| CardId::new(format!("{}none", CardId::PREFIX))),
                );
            }
            "gift_card_last4" => {
                if value.len() != 4 || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid(
                        "gift_card_last4",
                        "`gift_card_last4` must be 4 digits.".into(),
                    ));
                }
                filter.gift_card_last4 = Some(value);
            }
            // Gr4vy's other filters (payment method, 3-D Secure, settlement, ...) describe
            // what giftd does not keep: accepted, and ignored.
            _ => {}
        }
    }
    Ok((limit, cursor, filter))
}

/// `GET /transactions`: the merchant's transactions, newest first, under Gr4vy's filters.
pub async fn list_transactions(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Answer {
    let (limit, mut cursor, mut filter) = list_query(raw.as_deref())?;
    let (buyer_id, buyer_external_identifier) = &filter.buyer_named;
    filter.buyer = super::buyer_of(
        &app,
        &merchant,
        buyer_id.as_deref(),
        buyer_external_identifier.as_deref(),
        "query",
    )
    .await?
    .map(|user| user.to_string());
    let mut items = Vec::new();
    let mut scanned = 0;
    let mut exhausted = false;
    while items.len() < limit && scanned < MAX_LIST_SCAN {
        let batch = app
            .service
            .checkouts(&merchant, cursor.as_ref(), LIST_BATCH)
            .await?;
        exhausted = batch.len() < LIST_BATCH as usize;
        for checkout in batch {
            scanned += 1;
            cursor = Some(checkout.id.clone());
            if filter.keeps(&checkout) {
                let view = view(&app, &merchant, &checkout).await?;
                items.push(summary(&transaction(&checkout, &view)));
                if items.len() == limit {
                    // Whether more follow is for the next page to find out.
                    exhausted = false;
                    break;
                }
            }
        }
        if exhausted {
            break;
        }
    }
    #[derive(serde::Serialize)]
    struct Summaries {
        items: Vec<serde_json::Map<String, serde_json::Value>>,
        limit: usize,
        next_cursor: Option<String>,
        previous_cursor: Option<String>,
    }
    Ok(ok_json(
        StatusCode::OK,
        &Summaries {
            items,
            limit,
            next_cursor: if exhausted {
                None
            } else {
                cursor.map(|c| c.to_string())
            },
            previous_cursor: None,
        },
    ))
}

/// A transaction as a list shows it: Gr4vy's `TransactionSummary` fields only.
fn summary(transaction: &Gr4vyTransaction) -> serde_json::Map<String, serde_json::Value> {
    let serde_json::Value::Object(mut fields) =
        serde_json::to_value(transaction).expect("transactions always serialize")
    else {
        unreachable!("a transaction serializes to an object");
    };
    fields.retain(|key, _| SUMMARY_FIELDS.contains(&key.as_str()));
    fields
}

/// The Gr4vy refund `wanted` (its UUID, or its `reconciliation_id`) among a checkout's.
fn find_refund(checkout: &Checkout, wanted: &str) -> Option<Gr4vyRefund> {
    refunds(checkout, |_| true)
        .into_iter()
        .find(|r| r.id.eq_ignore_ascii_case(wanted) || r.reconciliation_id == wanted)
}

/// `GET /transactions/{transaction_id}/refunds/{refund_id}`.
pub async fn get_transaction_refund(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Answer {
    let Ok(Path((transaction, refund_id))) = path else {
        return Err(Gr4vyError::not_found("refund"));
    };
    let id = super::ids::checkout(&transaction).ok_or_else(|| Gr4vyError::not_found("transaction"))?;
    let checkout = read(&app, &merchant, &id).await?;
    let refund = find_refund(&checkout, &refund_id).ok_or_else(|| Gr4vyError::not_found("refund"))?;
    Ok(ok_json(StatusCode::OK, &refund))
}

/// `GET /refunds/{refund_id}`: a refund by its id alone (see `Service::checkout_with_refund`).
pub async fn get_refund(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    path: Result<Path<String>, PathRejection>,
) -> Answer {
    let not_found = || Gr4vyError::not_found("refund");
    let Ok(Path(refund_id)) = path else {
        return Err(not_found());
    };
    let prefix = super::ids::refund_search_prefix(&refund_id).ok_or_else(not_found)?;
    let checkout = app
        .service
        .checkout_with_refund(&merchant, &prefix)
        .await?
        .ok_or_else(not_found)?;
    let refund = find_refund(&checkout, &refund_id).ok_or_else(not_found)?;
    Ok(ok_json(StatusCode::OK, &refund))
}

/// `POST /transactions/{transaction_id}/cancel`: Gr4vy cancels a transaction still pending
/// (waiting on the buyer or the processor). giftd answers every transaction before the request
/// that made it returns, so there is never one to cancel: the answer is a `TransactionCancel`
/// with `status` `failed` around the transaction as it is, and nothing changes. Use void or
/// refunds to undo an authorized or captured one.
pub async fn cancel_transaction(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    path: Result<Path<String>, PathRejection>,
) -> Answer {
    let id = transaction_id(path)?;
    let checkout = read(&app, &merchant, &id).await?;
    let view = view(&app, &merchant, &checkout).await?;
    Ok(ok_json(
        StatusCode::OK,
        &Gr4vyTransactionAction {
            kind: "transaction-cancel",
            status: "failed",
            code: Some("transaction_not_pending".into()),
            raw_response_code: None,
            raw_response_description: Some(
                "The transaction is not pending: void or refund it instead.".into(),
            ),
            transaction: transaction(&checkout, &view),
        },
    ))
}
