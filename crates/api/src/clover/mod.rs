//! The Clover Gift Card API facade, mounted under `/clover`: an integration written against
//! Clover's gift card endpoints (`/v1/tokens`, `/v1/activate`, `/v1/reload`,
//! `/v1/balance_inquiry`, `/v1/charges`, `/v1/charges/{id}/capture`, `/v1/refunds`,
//! `/v1/refunds/{id}/cancel`, `/v1/cashout`) and its reads of charges and refunds
//! (`GET /v1/charges[/{id}]`, `GET /v1/refunds[/{id}]`, in `reads.rs`) works against giftd
//! with Clover's field names.
//!
//! Handlers parse Clover's wire requests straight into service commands
//! (`giftd_service::clover::CloverCommand`, never the native API's types) and render the
//! outcomes in Clover's shape with this module's own renderer and `error.rs`. No SQL and no
//! business rules here. docs/CLOVER.md records the mapping and every choice the vendor's
//! documentation leaves open.

pub mod error;
pub mod extract;
mod reads;
pub mod wire;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use giftd_domain::Timestamp;
use giftd_domain::operations::MAX_HOLD_SECONDS;
use giftd_domain::program::MAX_PROMOTION_CODE_LENGTH;
use giftd_domain::{CardNumber, DomainError, MerchantId, SecurityCode, TransactionId};
use giftd_service::clover::{
    ChargeState, CloverCommand, CloverMovement, CloverOutcome, CloverRecord, CloverState, CloverToken,
    MovementKind, RefundType,
};
use giftd_service::views::TransactionRecord;
use giftd_service::{IdempotencyKey, Refusal, Rendered};

use crate::{AppState, json_response};
use error::CloverError;
use extract::{
    CloverBody, CloverMerchant, CloverPathId, MAX_AMOUNT_MINOR, optional_currency, optional_positive_amount,
    positive_amount, required,
};
use wire::*;

/// How the edge guards the Clover facade (`guard.rs`): a write presenting a `security_code` or
/// `foreign_access_code` counts toward the rate limits; refusals in Clover's shape.
pub const EDGE: crate::guard::FrontEndEdge = crate::guard::FrontEndEdge {
    owns: |path| path.starts_with("/clover/"),
    code_fields: &["security_code", "foreign_access_code"],
    counts: crate::guard::none,
    inspects_body: crate::guard::every_write,
    refusal: |status, _, message| {
        axum::response::IntoResponse::into_response(error::CloverError::edge(status, message))
    },
    query_refusal: None,
    channel: giftd_domain::Channel::Clover,
};

/// How long a lock (`capture: false`) reserves value when giftd is not told otherwise
/// (`giftd serve --clover-lock-seconds`): 15 minutes, long enough for a checkout to finish,
/// short enough that an abandoned one gives the value back soon. Clover's documentation leaves
/// the "preset multi-lock time" to the merchant's configuration.
pub const DEFAULT_LOCK_SECONDS: i64 = 900;
/// The longest configurable lock lifetime: giftd's longest hold (7 days).
pub const MAX_LOCK_SECONDS: i64 = MAX_HOLD_SECONDS;
/// Clover answers carry the brand of the card on capture.
const BRAND: &str = "GIFT_CARD";
/// Clover's warning when a charge is made without `partial_redemption`.
const PARTIAL_REDEMPTION_WARNING: &str = "partial_redemption should be true for gift card";

/// The facade's configuration.
#[derive(Debug, Clone)]
pub struct CloverConfig {
    /// Lifetime of a lock, 1 to [`MAX_LOCK_SECONDS`].
    pub lock_seconds: i64,
}

impl Default for CloverConfig {
    fn default() -> Self {
        Self {
            lock_seconds: DEFAULT_LOCK_SECONDS,
        }
    }
}

type Answer = Result<Response, CloverError>;

/// The facade's routes, to be nested under `/clover`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tokens", post(create_token))
        .route("/v1/tokens/revoke", post(revoke_token))
        .route("/v1/activate", post(activate))
        .route("/v1/reload", post(reload))
        .route("/v1/balance_inquiry", post(balance_inquiry))
        .route("/v1/charges", post(create_charge).get(reads::list_charges))
        .route("/v1/charges/{id}", get(reads::get_charge))
        .route("/v1/charges/{id}/capture", post(capture_charge))
        .route("/v1/refunds", post(create_refund).get(reads::list_refunds))
        .route("/v1/refunds/{id}", get(reads::get_refund))
        .route("/v1/refunds/{id}/cancel", post(cancel_refund))
        .route("/v1/cashout", post(cashout))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found() -> CloverError {
    CloverError::not_found()
}

async fn method_not_allowed() -> CloverError {
    CloverError::method_not_allowed()
}

/// What of the request the answer echoes. A read echoes no request: both are `None`.
#[derive(Debug, Clone, Default)]
struct View {
    /// The token the request carried: Clover answers show it as `source.id`.
    source: Option<String>,
    /// `partial_redemption` of a charge request (`Some(false)` when it left it out): it decides
    /// between `partial_auth` and the warning. `None` for anything else, reads included.
    partial_redemption: Option<bool>,
}

async fn run(
    app: &AppState,
    merchant: MerchantId,
    command: CloverCommand,
    idempotency: Option<IdempotencyKey>,
    view: View,
) -> Answer {
    let rendered = app
        .service
        .execute(
            merchant,
            command,
            idempotency,
            Box::new(move |result| render(result, &view)),
        )
        .await?;
    let status = StatusCode::from_u16(rendered.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Ok(json_response(status, rendered.body))
}

fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("Clover answers always serialize")
}

fn render(result: &Result<CloverOutcome, Refusal>, view: &View) -> Rendered {
    let body = match result {
        Err(refusal) => return CloverError::from(refusal).rendered(),
        Ok(outcome) => match outcome {
            CloverOutcome::Token { token, card } => to_json(&CloverTokenResponse {
                id: token.expose().to_owned(),
                object: "token",
                gift_card: CloverTokenGiftCardWire {
                    last4: card.last4.clone(),
                },
            }),
            CloverOutcome::TokenRevoked { token } => to_json(&CloverRevokedTokenResponse {
                id: token.expose().to_owned(),
                object: "token",
                revoked: true,
            }),
            CloverOutcome::Balance { card } => {
                let s = &card.snapshot;
                to_json(&CloverBalanceResponse {
                    status: "succeeded",
                    gift_card: CloverGiftCard {
                        security_card_value: None,
                        expiration_date: s.expires_at.map(date),
                        number: None,
                        previous_balance: s.available(),
                        new_balance: s.available(),
                        lock_amount: Some(s.held),
                        lock_id: None,
                    },
                })
            }
            CloverOutcome::Movement(movement) => to_json(&clover_object(&Shown::of_movement(movement), view)),
        },
    };
    Rendered { status: 200, body }
}

/// What an answer shows of one ledger transaction: made from a movement just written, or from
/// a charge or refund read back (`reads.rs`). Both render through [`clover_object`], so a read
/// answers as the creation did, with the state of now.
struct Shown<'a> {
    kind: MovementKind,
    /// The id Clover clients see (a capture answers with its lock's).
    id: &'a TransactionId,
    transaction: &'a TransactionRecord,
    /// A refund's charge.
    charge: Option<&'a TransactionId>,
    last4: &'a str,
    expires_at: Option<Timestamp>,
    /// Available before and after; held after.
    previous_balance: i64,
    new_balance: i64,
    lock_amount: i64,
    lock_id: Option<i64>,
    issued: Option<&'a (CardNumber, SecurityCode)>,
    /// A charge's or lock's state (at its creation for a movement).
    charge_state: ChargeState,
    /// A refund cancelled since.
    cancelled: bool,
}

impl<'a> Shown<'a> {
    fn of_movement(m: &'a CloverMovement) -> Self {
        let card = &m.card.snapshot;
        Self {
            kind: m.kind,
            id: &m.id,
            transaction: &m.transaction,
            charge: m.charge.as_ref(),
            last4: &m.card.last4,
            expires_at: card.expires_at,
            previous_balance: m.previous_balance,
            new_balance: card.available(),
            lock_amount: card.held,
            lock_id: m.lock.as_ref().and_then(|lock| lock.lock_id),
            issued: m.issued.as_ref(),
            charge_state: ChargeState::at_creation(m.kind, m.transaction.amount),
            cancelled: false,
        }
    }

    fn of_record(r: &'a CloverRecord) -> Self {
        let (charge_state, cancelled) = match r.state {
            CloverState::Charge(state) => (state, false),
            CloverState::Refund { cancelled } => {
                (ChargeState::at_creation(r.kind, r.transaction.amount), cancelled)
            }
        };
        Self {
            kind: r.kind,
            id: &r.transaction.id,
            transaction: &r.transaction,
            charge: r.charge.as_ref(),
            last4: &r.last4,
            expires_at: r.expires_at,
            previous_balance: r.previous_balance,
            new_balance: r.new_balance,
            lock_amount: r.lock_amount,
            lock_id: r.lock_id,
            issued: None,
            charge_state,
            cancelled,
        }
    }
}

/// A charge or a refund in Clover's shape.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
#[allow(clippy::large_enum_variant)]
enum CloverObjectWire {
    Charge(CloverChargeResponse),
    Refund(CloverRefundResponse),
}

fn clover_object(m: &Shown<'_>, view: &View) -> CloverObjectWire {
    let transaction_id = m.transaction.id.as_str();
    let ref_num = six_digits("ref_num", transaction_id);
    let auth_code = six_digits("auth_code", transaction_id);
    let created = Some(m.transaction.created_at.unix_millis());
    let gift_card = CloverGiftCard {
        security_card_value: m.issued.map(|(_, code)| code.expose().to_owned()),
        expiration_date: m.expires_at.map(date),
        number: m.issued.map(|(number, _)| number.expose().to_owned()),
        previous_balance: m.previous_balance,
        new_balance: m.new_balance,
        lock_amount: None,
        lock_id: None,
    };
    let source = CloverSource {
        id: view.source.clone(),
        brand: None,
        last4: m.last4.to_owned(),
    };
    // Activations, reloads and cash-outs: the plain answer of the seed's examples.
    let plain = CloverChargeResponse {
        id: m.id.to_string(),
        amount: m.transaction.amount,
        payment_method_details: None,
        amount_refunded: None,
        refunded: None,
        amount_captured: None,
        currency: None,
        created: None,
        captured: None,
        ref_num: ref_num.clone(),
        auth_code: auth_code.clone(),
        warning_message: None,
        outcome: CloverOutcomeWire::APPROVED,
        paid: Some(true),
        status: "succeeded",
        source,
        partial_auth: None,
        gift_card,
    };
    let currency = Some(m.transaction.currency.to_ascii_lowercase());
    let refund = |object: &'static str, refund_type: RefundType, created: Option<i64>| {
        CloverObjectWire::Refund(CloverRefundResponse {
            id: m.id.to_string(),
            object,
            amount: m.transaction.amount,
            charge: m.charge.map(TransactionId::to_string).unwrap_or_default(),
            created,
            // Clover documents no refund statuses but `succeeded`; a cancelled refund reads as
            // Stripe names it.
            status: if m.cancelled { "canceled" } else { "succeeded" },
            metadata: CloverRefundMetadata {
                refund_type: match refund_type {
                    RefundType::Void => "VOID",
                    RefundType::Refund => "REFUND",
                },
                auth_code: auth_code.clone(),
                ref_num: ref_num.clone(),
                gateway_response_code: "00",
            },
            gift_card: CloverGiftCard {
                lock_amount: Some(m.lock_amount),
                security_card_value: None,
                number: None,
                expiration_date: m.expires_at.map(date),
                previous_balance: m.previous_balance,
                new_balance: m.new_balance,
                lock_id: None,
            },
        })
    };
    let charge = match m.kind {
        MovementKind::Activation | MovementKind::Reload | MovementKind::Cashout => plain,
        MovementKind::Charge | MovementKind::Lock => {
            let state = m.charge_state;
            CloverChargeResponse {
                payment_method_details: Some("giftCard"),
                amount_refunded: Some(state.amount_refunded),
                refunded: Some(state.refunded(m.transaction.amount)),
                amount_captured: Some(state.amount_captured),
                currency,
                created,
                captured: Some(state.captured),
                warning_message: (view.partial_redemption == Some(false))
                    .then_some(PARTIAL_REDEMPTION_WARNING),
                // A lock is an authorization, not a payment, until it is captured.
                paid: state.captured.then_some(true),
                partial_auth: (view.partial_redemption == Some(true)).then_some(true),
                gift_card: CloverGiftCard {
                    lock_id: if m.kind == MovementKind::Lock {
                        m.lock_id
                    } else {
                        None
                    },
                    ..plain.gift_card
                },
                ..plain
            }
        }
        MovementKind::Capture => CloverChargeResponse {
            payment_method_details: Some("giftCard"),
            currency,
            created,
            captured: Some(m.transaction.amount > 0),
            source: CloverSource {
                brand: Some(BRAND),
                ..plain.source
            },
            gift_card: CloverGiftCard {
                lock_amount: Some(m.lock_amount),
                lock_id: m.lock_id,
                ..plain.gift_card
            },
            ..plain
        },
        MovementKind::Refund(refund_type) => return refund("refund", refund_type, created),
        MovementKind::CancelRefund => return refund("void_on_refund", RefundType::Void, None),
    };
    CloverObjectWire::Charge(charge)
}

// ---- parsing helpers ----

/// A token from a request field. One that cannot be a token cannot exist: the same answer as
/// an unknown one.
fn token(value: &str, param: &str) -> Result<CloverToken, CloverError> {
    CloverToken::parse(value).ok_or_else(|| CloverError::missing(param, format!("No such {param}.")))
}

fn transaction_id(value: &str, param: &str) -> Result<TransactionId, CloverError> {
    TransactionId::parse(value).ok_or_else(|| CloverError::missing(param, format!("No such {param}.")))
}

fn source_view(source: &str) -> View {
    View {
        source: Some(source.to_owned()),
        ..View::default()
    }
}

// ---- handlers ----

/// `POST /clover/v1/tokens`: a token for a card the merchant has, given its number and its
/// security code (or, for a card migrated from another program, its foreign access code).
async fn create_token(
    State(app): State<AppState>,
    CloverMerchant(merchant): CloverMerchant,
    body: CloverBody<CloverTokenRequest>,
) -> Answer {
    let card = required(body.value.gift_card, "gift_card")?;
    let number = required(card.number, "gift_card.number")?;
    let secret = card
        .security_code
        .or(card.foreign_access_code)
        .ok_or_else(|| {
            CloverError::invalid(
                "gift_card.security_code",
                "giftd needs the card's `security_code` (or, for a migrated card, its `foreign_access_code`) to tokenize it.",
            )
        })?;
    // A malformed number cannot match a card: the same answer as a wrong one. A malformed code
    // is checked like a wrong one, and counts toward the number's lockout.
    let declined = || CloverError::from(&Refusal::Domain(DomainError::InvalidCard));
    let number = CardNumber::parse(&number).ok_or_else(declined)?;
    let secret = SecurityCode::presented(&secret);
    let command = CloverCommand::CreateToken { number, secret };
    run(&app, merchant, command, body.idempotency, View::default()).await
}

/// `POST /clover/v1/tokens/revoke` (giftd's addition): the token stops working for good.
async fn revoke_token(
    State(app): State<AppState>,
    CloverMerchant(merchant): CloverMerchant,
    body: CloverBody<CloverRevokeTokenRequest>,
) -> Answer {
    let token = token(&required(body.value.token, "token")?, "token")?;
    let command = CloverCommand::RevokeToken { token };
    run(&app, merchant, command, body.idempotency, View::default()).await
}

/// `POST /clover/v1/activate`: a new virtual card by `promotion_code`, or an inactive card by
/// its `source` token.
async fn activate(
    State(app): State<AppState>,
    CloverMerchant(merchant): CloverMerchant,
    body: CloverBody<CloverActivateRequest>,
) -> Answer {
    let r = body.value;
    let amount = optional_positive_amount(r.amount, "amount")?;
    let currency = optional_currency(r.currency.as_deref())?;
    let (command, view) = match (r.source, r.promotion_code) {
        (Some(_), Some(_)) => {
            return Err(CloverError::invalid(
                "promotion_code",
                "Give either `source` (the token of an inactive card) or `promotion_code` (a new virtual card), not both.",
            ));
        }
        (None, None) => {
            return Err(CloverError::invalid(
                "source",
                "Give `source` (the token of an inactive card) or `promotion_code` (a new virtual card).",
            ));
        }
        (Some(source), None) => (
            CloverCommand::ActivatePhysical {
                source: token(&source, "source")?,
                amount,
                currency,
            },
            source_view(&source),
        ),
        (None, Some(promotion_code)) => {
            let plausible = !promotion_code.is_empty()
                && promotion_code.len() <= MAX_PROMOTION_CODE_LENGTH
                && promotion_code.bytes().all(|b| b.is_ascii_graphic());
            if !plausible {
                return Err(CloverError::missing("promotion_code", "No such promotion code."));
            }
            (
                CloverCommand::ActivateVirtual {
                    promotion_code,
                    amount,
                    currency,
                },
                View::default(),
            )
        }
    };
    run(&app, merchant, command, body.idempotency, view).await
}

/// `POST /clover/v1/reload`.
async fn reload(
    State(app): State<AppState>,
    CloverMerchant(merchant): CloverMerchant,
    body: CloverBody<CloverReloadRequest>,
) -> Answer {
    let r = body.value;
    let source = required(r.source, "source")?;
    let command = CloverCommand::Reload {
        source: token(&source, "source")?,
        amount: positive_amount(required(r.amount, "amount")?, "amount")?,
        currency: optional_currency(r.currency.as_deref())?,
    };
    run(&app, merchant, command, body.idempotency, source_view(&source)).await
}

/// `POST /clover/v1/balance_inquiry`.
async fn balance_inquiry(
    State(app): State<AppState>,
    CloverMerchant(merchant): CloverMerchant,
    body: CloverBody<CloverSourceRequest>,
) -> Answer {
    let source = required(body.value.source, "source")?;
    let command = CloverCommand::BalanceInquiry {
        source: token(&source, "source")?,
    };
    run(&app, merchant, command, body.idempotency, source_view(&source)).await
}

/// `POST /clover/v1/charges`: a redemption (`capture` true, the default) or a lock
/// (`capture` false). A charge above what is available takes (or locks) what is available.
async fn create_charge(
    State(app): State<AppState>,
    CloverMerchant(merchant): CloverMerchant,
    body: CloverBody<CloverChargeRequest>,
) -> Answer {
    let r = body.value;
    let source = required(r.source, "source")?;
    let command = CloverCommand::Charge {
        source: token(&source, "source")?,
        amount: positive_amount(required(r.amount, "amount")?, "amount")?,
        currency: optional_currency(r.currency.as_deref())?,
        capture: r.capture.is_none_or(|c| c.0),
        lock_seconds: app.clover.lock_seconds,
    };
    let view = View {
        source: Some(source),
        partial_redemption: Some(r.partial_redemption.is_some_and(|p| p.0)),
    };
    run(&app, merchant, command, body.idempotency, view).await
}

/// `POST /clover/v1/charges/{id}/capture`: captures `amount` of a lock (all of it when
/// absent) and releases the rest; 0 releases the whole lock.
async fn capture_charge(
    State(app): State<AppState>,
    CloverMerchant(merchant): CloverMerchant,
    CloverPathId(id): CloverPathId,
    body: CloverBody<CloverCaptureRequest>,
) -> Answer {
    let charge = transaction_id(&id, "charge")?;
    let amount = match body.value.amount {
        Some(amount) if amount.0 > MAX_AMOUNT_MINOR => {
            return Err(CloverError::amount_too_large(
                "amount",
                format!("`amount` exceeds the {MAX_AMOUNT_MINOR} cents allowed."),
            ));
        }
        other => other.map(|a| a.0),
    };
    let command = CloverCommand::Capture { charge, amount };
    run(&app, merchant, command, body.idempotency, View::default()).await
}

/// `POST /clover/v1/refunds`: reverses the `charge` (a redemption, a lock, a reload, an
/// activation or a cash-out), answering with `metadata.refundType` VOID or REFUND.
async fn create_refund(
    State(app): State<AppState>,
    CloverMerchant(merchant): CloverMerchant,
    body: CloverBody<CloverRefundRequest>,
) -> Answer {
    let r = body.value;
    let charge = transaction_id(&required(r.charge, "charge")?, "charge")?;
    let command = CloverCommand::Refund {
        charge,
        amount: optional_positive_amount(r.amount, "amount")?,
    };
    run(&app, merchant, command, body.idempotency, View::default()).await
}

/// `POST /clover/v1/refunds/{id}/cancel`: voids a refund (`object: "void_on_refund"`).
async fn cancel_refund(
    State(app): State<AppState>,
    CloverMerchant(merchant): CloverMerchant,
    CloverPathId(id): CloverPathId,
    body: CloverBody<CloverCancelRefundRequest>,
) -> Answer {
    let refund = transaction_id(&id, "refund")?;
    let command = CloverCommand::CancelRefund { refund };
    run(&app, merchant, command, body.idempotency, View::default()).await
}

/// `POST /clover/v1/cashout`: pays out what is available on the card.
async fn cashout(
    State(app): State<AppState>,
    CloverMerchant(merchant): CloverMerchant,
    body: CloverBody<CloverSourceRequest>,
) -> Answer {
    let source = required(body.value.source, "source")?;
    let command = CloverCommand::Cashout {
        source: token(&source, "source")?,
    };
    run(&app, merchant, command, body.idempotency, source_view(&source)).await
}
