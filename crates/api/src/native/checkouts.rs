//! The native API's split-tender checkouts (`/v1/checkouts...`): wire types, handlers and
//! their renderer, and `/v1/simulator/payments/{reference}` to look at what the built-in
//! simulated processor recorded. No SQL and no business rules here: the steps and their order
//! are the service's and the domain's.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use giftd_domain::checkout::{
    Checkout, GiftCardStatus, GiftCardTender, Intent, IntentOutcome, PaymentStatus, PaymentTender, Review,
};
use giftd_domain::{CardId, CardNumber, CheckoutId, SecurityCode};
use giftd_service::checkout::{CheckoutRequest, GiftCardLeg, GiftCardRef, NewCheckout};
use giftd_service::payments::{PaymentCard, SimulatedPayment};
use giftd_service::{IdempotencyKey, Refusal, Rendered};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{
    Body, Merchant, PageQuery, PathId, amount, currency, optional_amount, path_id, query, reference,
};
use super::wire::{List, rfc3339};
use super::{Answer, answer, ok};
use crate::AppState;

// ---- wire types ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCheckoutRequest {
    /// The whole amount, in minor units: the gift cards' amounts plus what the payment method
    /// is charged.
    pub amount: i64,
    pub currency: String,
    /// `authorize` (gift cards are held, the payment authorized; capture later) or `capture`.
    pub intent: String,
    /// At most 10. Each names a card by `card_id`, or by `number` + `security_code`.
    #[serde(default)]
    pub gift_cards: Vec<CheckoutGiftCard>,
    /// The regular payment method, charged `amount` minus the gift cards.
    pub payment_method: Option<CheckoutPaymentMethod>,
    /// The merchant's reference (an order number).
    pub reference: Option<String>,
    /// `true` holds the checkout in fraud review once its tenders are in place; a review
    /// decision (`POST /v1/checkouts/{id}/review`) moves it on.
    pub review: Option<bool>,
    /// Lifetime of the gift card holds of an `authorize` checkout: 1 to 604800 s (default).
    pub hold_seconds: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutGiftCard {
    pub card_id: Option<String>,
    pub number: Option<String>,
    pub security_code: Option<String>,
    /// Minor units taken from this card.
    pub amount: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutPaymentMethod {
    /// `card`.
    #[serde(rename = "type")]
    pub kind: String,
    /// 12 to 19 digits. Never stored: only its last four digits and brand are kept.
    pub number: String,
    /// `MM/YY`.
    pub expiry: Option<String>,
    pub security_code: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundCheckoutRequest {
    /// Default: all that is still refundable (of the tender, when `tender_id` is given).
    pub amount: Option<i64>,
    /// Refund this tender only (a `gcr_...` or `pay_...` id).
    pub tender_id: Option<String>,
    pub reference: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewCheckoutRequest {
    /// `approve` or `reject`.
    pub decision: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmptyCheckoutRequest {}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckoutResponse {
    pub id: String,
    /// `checkout`.
    pub object: &'static str,
    pub amount: i64,
    pub currency: &'static str,
    pub intent: &'static str,
    /// `processing`, `in_review`, `authorized`, `capturing`, `captured`, `voiding`, `voided`,
    /// `failed`.
    pub status: &'static str,
    /// `pending`, `succeeded` or `failed`: final once reached, whatever happens later.
    pub intent_outcome: &'static str,
    pub multi_tender: bool,
    /// `none`, `pending`, `approved` or `rejected`.
    pub review: &'static str,
    pub reference: Option<String>,
    /// What is still refundable.
    pub refundable_amount: i64,
    /// One per instrument: gift cards first, in the request's order, then the payment method.
    pub tenders: Vec<TenderResponse>,
    pub refunds: Vec<CheckoutRefundResponse>,
    /// Why the checkout failed, or why its last capture was refused.
    pub failure: Option<FailureResponse>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenderResponse {
    /// `gcr_...` for a gift card, `pay_...` for the payment method (also the reference the
    /// processor knows it by).
    pub id: String,
    /// `gift_card` or `card`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub amount: i64,
    /// Gift card: `pending`, `held`, `redeemed`, `released`, `failed`, `skipped`. Card:
    /// `pending`, `authorized`, `captured`, `declined`, `void_pending`, `voided`, `refunded`.
    pub status: &'static str,
    pub refunded_amount: i64,
    pub last4: Option<String>,
    pub card_id: Option<String>,
    pub hold_id: Option<String>,
    /// The gift card's redemption or capture transaction.
    pub transaction_id: Option<String>,
    pub connector: Option<String>,
    pub brand: Option<String>,
    pub processor_reference: Option<String>,
    /// Refunds asked of the processor, not yet confirmed (retried until they are).
    pub refund_pending: Option<i64>,
    /// When a failed processor call is tried again.
    pub next_retry_at: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckoutRefundResponse {
    pub id: String,
    pub amount: i64,
    pub reference: Option<String>,
    pub allocations: Vec<AllocationResponse>,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AllocationResponse {
    pub tender_id: String,
    pub amount: i64,
    /// The refund transaction on the gift card; none for the payment method.
    pub transaction_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FailureResponse {
    pub code: String,
    pub message: String,
}

/// What the simulated processor recorded for one payment reference.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimulatedPaymentResponse {
    pub reference: String,
    pub processor_reference: String,
    /// `approve`, `decline`, `timeout`, `fail_capture`, `fail_reversal`.
    pub behaviour: String,
    /// `authorized`, `captured`, `declined`, `voided`.
    pub status: String,
    pub amount: i64,
    pub captured_amount: i64,
    pub refunded_amount: i64,
    pub failed_reversals: u32,
}

fn gift_card_tender(gift: &GiftCardTender) -> TenderResponse {
    TenderResponse {
        id: gift.id.clone(),
        kind: "gift_card",
        amount: gift.amount,
        status: gift_card_status(gift.status),
        refunded_amount: gift.refunded_amount,
        last4: Some(gift.last4.clone()),
        card_id: Some(gift.card_id.to_string()),
        hold_id: gift.hold_id.as_ref().map(ToString::to_string),
        transaction_id: gift.transaction_id.as_ref().map(ToString::to_string),
        connector: None,
        brand: None,
        processor_reference: None,
        refund_pending: None,
        next_retry_at: None,
        error_code: gift.error_code.clone(),
        error_message: gift.error_message.clone(),
    }
}

fn gift_card_status(status: GiftCardStatus) -> &'static str {
    match status {
        GiftCardStatus::Pending => "pending",
        GiftCardStatus::Held => "held",
        GiftCardStatus::Redeemed => "redeemed",
        GiftCardStatus::Released => "released",
        GiftCardStatus::Failed => "failed",
        GiftCardStatus::Skipped => "skipped",
    }
}

fn payment_status(status: PaymentStatus) -> &'static str {
    match status {
        PaymentStatus::Pending => "pending",
        PaymentStatus::Authorized => "authorized",
        PaymentStatus::Captured => "captured",
        PaymentStatus::Declined => "declined",
        PaymentStatus::VoidPending => "void_pending",
        PaymentStatus::Voided => "voided",
        PaymentStatus::Refunded => "refunded",
    }
}

fn payment_tender(payment: &PaymentTender) -> TenderResponse {
    TenderResponse {
        id: payment.id.clone(),
        kind: "card",
        amount: payment.amount,
        status: payment_status(payment.status),
        refunded_amount: payment.refunded_amount,
        last4: payment.last4.clone(),
        card_id: None,
        hold_id: None,
        transaction_id: None,
        connector: Some(payment.connector.clone()),
        brand: payment.brand.clone(),
        processor_reference: payment.processor_reference.clone(),
        refund_pending: Some(payment.refund_pending),
        next_retry_at: payment.retry_at.map(rfc3339),
        error_code: payment.error_code.clone(),
        error_message: payment.error_message.clone(),
    }
}

impl From<&Checkout> for CheckoutResponse {
    fn from(c: &Checkout) -> Self {
        let mut tenders: Vec<TenderResponse> = c.gift_cards.iter().map(gift_card_tender).collect();
        tenders.extend(c.payment.iter().map(payment_tender));
        Self {
            id: c.id.to_string(),
            object: "checkout",
            amount: c.amount,
            currency: c.currency.code(),
            intent: match c.intent {
                Intent::Authorize => "authorize",
                Intent::Capture => "capture",
            },
            status: c.status.as_str(),
            intent_outcome: match c.intent_outcome {
                IntentOutcome::Pending => "pending",
                IntentOutcome::Succeeded => "succeeded",
                IntentOutcome::Failed => "failed",
            },
            multi_tender: c.multi_tender(),
            review: match c.review {
                Review::None => "none",
                Review::Pending => "pending",
                Review::Approved => "approved",
                Review::Rejected => "rejected",
            },
            reference: c.reference.clone(),
            refundable_amount: c.refundable(),
            tenders,
            refunds: c
                .refunds
                .iter()
                .map(|r| CheckoutRefundResponse {
                    id: r.id.clone(),
                    amount: r.amount,
                    reference: r.reference.clone(),
                    allocations: r
                        .allocations
                        .iter()
                        .map(|a| AllocationResponse {
                            tender_id: a.tender_id.clone(),
                            amount: a.amount,
                            transaction_id: a.transaction_id.as_ref().map(ToString::to_string),
                        })
                        .collect(),
                    created_at: rfc3339(r.created_at),
                })
                .collect(),
            failure: c.problem.as_ref().map(|p| FailureResponse {
                code: p.code.clone(),
                message: p.message.clone(),
            }),
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

impl From<&SimulatedPayment> for SimulatedPaymentResponse {
    fn from(p: &SimulatedPayment) -> Self {
        Self {
            reference: p.reference.clone(),
            processor_reference: p.processor_reference.clone(),
            behaviour: snake_name(&p.behaviour),
            status: snake_name(&p.status),
            amount: p.amount,
            captured_amount: p.captured,
            refunded_amount: p.refunded(),
            failed_reversals: p.reversal_failures,
        }
    }
}

fn snake_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

// ---- rendering ----

fn render(result: &Result<Checkout, Refusal>, success: StatusCode) -> Rendered {
    match result {
        Ok(checkout) => Rendered {
            status: success.as_u16(),
            body: serde_json::to_vec(&CheckoutResponse::from(checkout))
                .expect("response types always serialize"),
        },
        Err(refusal) => ApiError::from(refusal).rendered(),
    }
}

// ---- parsing ----

fn gift_card_leg(index: usize, leg: CheckoutGiftCard) -> Result<GiftCardLeg, ApiError> {
    let param = "gift_cards";
    let card = match (leg.card_id, leg.number, leg.security_code) {
        (Some(id), None, None) => GiftCardRef::Id(CardId::parse(&id).ok_or_else(|| {
            ApiError::invalid(param, format!("`gift_cards[{index}].card_id` is not a card id."))
        })?),
        (None, Some(number), Some(code)) => GiftCardRef::Secret {
            number: CardNumber::parse(&number).ok_or_else(|| {
                ApiError::invalid(
                    param,
                    format!("`gift_cards[{index}].number` must be 6 to 21 digits."),
                )
            })?,
            // Checked like a wrong one when malformed: it counts toward the lockout.
            security_code: SecurityCode::presented(&code),
        },
        _ => {
            return Err(ApiError::invalid(
                param,
                format!(
                    "`gift_cards[{index}]` names its card by `card_id`, or by `number` and `security_code`."
                ),
            ));
        }
    };
    Ok(GiftCardLeg {
        card,
        amount: amount(leg.amount, "amount")?,
    })
}

fn new_checkout(r: CreateCheckoutRequest) -> Result<NewCheckout, ApiError> {
    let intent = match r.intent.as_str() {
        "authorize" => Intent::Authorize,
        "capture" => Intent::Capture,
        _ => {
            return Err(ApiError::invalid(
                "intent",
                "`intent` must be `authorize` or `capture`.",
            ));
        }
    };
    if r.gift_cards.len() > giftd_domain::checkout::MAX_GIFT_CARDS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "limit_exceeded",
            "A checkout takes at most 10 gift cards.",
        )
        .with_param("gift_cards"));
    }
    let gift_cards = r
        .gift_cards
        .into_iter()
        .enumerate()
        .map(|(i, leg)| gift_card_leg(i, leg))
        .collect::<Result<Vec<_>, _>>()?;
    let payment = r
        .payment_method
        .map(|method| {
            if method.kind != "card" {
                return Err(ApiError::invalid(
                    "payment_method",
                    "`payment_method.type` must be `card`.",
                ));
            }
            PaymentCard::parse(
                &method.number,
                method.expiry.as_deref(),
                method.security_code.as_deref(),
            )
            .map_err(|message| ApiError::invalid("payment_method", format!("{message}.")))
        })
        .transpose()?;
    Ok(NewCheckout {
        buyer: None,
        amount: amount(r.amount, "amount")?,
        currency: currency(&r.currency)?,
        intent,
        gift_cards,
        payment,
        reference: reference(r.reference)?,
        review: r.review.unwrap_or(false),
        hold_seconds: r.hold_seconds,
    })
}

async fn request(
    app: &AppState,
    merchant: giftd_domain::MerchantId,
    id: &str,
    request: CheckoutRequest,
    idempotency: Option<IdempotencyKey>,
) -> Answer {
    let id = path_id(id, CheckoutId::parse, "checkout")?;
    answer(
        app.service
            .checkout_request(
                merchant,
                id,
                request,
                idempotency,
                Box::new(|result| render(result, StatusCode::OK)),
            )
            .await?,
    )
}

// ---- handlers ----

/// Creates a checkout: the payment method is authorized (or captured) first, then the gift
/// cards are held (or redeemed) together; if one fails, everything is given back. A checkout
/// that failed is still created (201): read `intent_outcome`.
#[utoipa::path(post, path = "/v1/checkouts", tag = "checkouts", request_body = CreateCheckoutRequest,
    responses((status = 201, description = "Created: the checkout.", body = CheckoutResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub async fn create_checkout(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    body: Body<CreateCheckoutRequest>,
) -> Answer {
    let new = new_checkout(body.value)?;
    answer(
        app.service
            .create_checkout(
                merchant,
                new,
                body.idempotency,
                Box::new(|result| render(result, StatusCode::CREATED)),
            )
            .await?,
    )
}

/// The merchant's checkouts, newest first.
#[utoipa::path(get, path = "/v1/checkouts", tag = "checkouts", params(PageQuery),
    responses((status = 200, description = "A page of checkouts.", body = List<CheckoutResponse>), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub async fn list_checkouts(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    RawQuery(raw): RawQuery,
) -> Answer {
    let page = query::<PageQuery>(raw.as_deref())?.page()?;
    let before = match page.cursor.as_deref() {
        None => None,
        Some(cursor) => Some(
            CheckoutId::parse(cursor)
                .ok_or_else(|| ApiError::invalid("cursor", "`cursor` is not a cursor this API gave."))?,
        ),
    };
    let checkouts = app
        .service
        .checkouts(&merchant, before.as_ref(), page.limit)
        .await?;
    ok(&super::list(
        checkouts,
        &page,
        |c| c.id.to_string(),
        |c| CheckoutResponse::from(c),
    ))
}

#[utoipa::path(get, path = "/v1/checkouts/{id}", tag = "checkouts", params(("id" = String, Path)),
    responses((status = 200, description = "The checkout.", body = CheckoutResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub async fn get_checkout(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
) -> Answer {
    let id = path_id(&id, CheckoutId::parse, "checkout")?;
    ok(&CheckoutResponse::from(
        &app.service.checkout(&merchant, &id).await?,
    ))
}

/// Captures an authorized checkout: the payment first, then every gift card hold together.
/// A capture the processor refuses leaves the checkout authorized (422 `payment_declined`);
/// a gift card that cannot be captured fails the capture as a whole (holds released, the
/// captured payment refunded).
#[utoipa::path(post, path = "/v1/checkouts/{id}/capture", tag = "checkouts", params(("id" = String, Path)),
    request_body = EmptyCheckoutRequest,
    responses((status = 200, description = "The checkout.", body = CheckoutResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub async fn capture_checkout(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    body: Body<EmptyCheckoutRequest>,
) -> Answer {
    request(
        &app,
        merchant,
        &id,
        CheckoutRequest::Capture { payment_amount: None },
        body.idempotency,
    )
    .await
}

/// Voids an authorized checkout: gift card holds released, the authorization voided (a
/// failing processor void is retried until it succeeds; the checkout shows `voiding`).
#[utoipa::path(post, path = "/v1/checkouts/{id}/void", tag = "checkouts", params(("id" = String, Path)),
    request_body = EmptyCheckoutRequest,
    responses((status = 200, description = "The checkout.", body = CheckoutResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub async fn void_checkout(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    body: Body<EmptyCheckoutRequest>,
) -> Answer {
    request(&app, merchant, &id, CheckoutRequest::Void, body.idempotency).await
}

/// Refunds a captured checkout, in part or in full: to one tender (`tender_id`), or else the
/// payment method first, then the gift cards from the last to the first.
#[utoipa::path(post, path = "/v1/checkouts/{id}/refund", tag = "checkouts", params(("id" = String, Path)),
    request_body = RefundCheckoutRequest,
    responses((status = 200, description = "The checkout.", body = CheckoutResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub async fn refund_checkout(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    body: Body<RefundCheckoutRequest>,
) -> Answer {
    let r = body.value;
    let refund = CheckoutRequest::Refund {
        id: giftd_service::checkout::new_refund_id(),
        amount: optional_amount(r.amount, "amount")?,
        tender_id: r.tender_id,
        reference: reference(r.reference)?,
    };
    request(&app, merchant, &id, refund, body.idempotency).await
}

/// Decides a checkout held in review: `approve` meets its intent; `reject` gives back the
/// payment method's money but not the gift cards' (the buyer may no longer have them).
#[utoipa::path(post, path = "/v1/checkouts/{id}/review", tag = "checkouts", params(("id" = String, Path)),
    request_body = ReviewCheckoutRequest,
    responses((status = 200, description = "The checkout.", body = CheckoutResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub async fn review_checkout(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(id): PathId,
    body: Body<ReviewCheckoutRequest>,
) -> Answer {
    let approve = match body.value.decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => {
            return Err(ApiError::invalid(
                "decision",
                "`decision` must be `approve` or `reject`.",
            ));
        }
    };
    request(
        &app,
        merchant,
        &id,
        CheckoutRequest::Review { approve },
        body.idempotency,
    )
    .await
}

/// What the built-in simulated processor recorded for a payment tender's reference.
#[utoipa::path(get, path = "/v1/simulator/payments/{reference}", tag = "checkouts",
    params(("reference" = String, Path)),
    responses((status = 200, description = "What the simulated processor recorded.", body = SimulatedPaymentResponse), (status = "4XX", description = "Refused: `error.code` says why, and `error.param` names the field at fault.", body = ErrorBody)))]
pub async fn get_simulated_payment(
    State(app): State<AppState>,
    Merchant(merchant): Merchant,
    PathId(reference): PathId,
) -> Answer {
    let payment = app
        .service
        .simulator()
        .payment(&reference)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string()))?
        .filter(|p| p.merchant_id.as_ref() == Some(&merchant))
        .ok_or_else(|| ApiError::not_found("simulated payment"))?;
    ok(&SimulatedPaymentResponse::from(&payment))
}
