//! Split-tender checkouts: the commands that write a checkout's steps (each a job: the
//! checkout row, locked and version-checked, and the ledger writes of the step in one
//! transaction), and the driver that runs the steps in order, calling the payment connector
//! between them. The rules of what comes next are the domain's (`giftd_domain::checkout`).
//!
//! A step's effect and the checkout's new state commit together, so the persisted state always
//! says what is done. A processor call is made between two jobs; if giftd stops after the call
//! and before recording its answer, the resumed driver repeats the call (connectors are
//! idempotent on giftd's reference) or, for an authorization whose card details are gone,
//! voids it and fails the checkout.

use std::sync::Arc;

use giftd_domain::checkout::{
    self as rules, Allocation, Checkout, GiftCardStatus, GiftCardTender, Intent, IntentOutcome,
    PaymentResult, PaymentStatus, PaymentTender, Refund, Review, Status, Step,
};
use giftd_domain::operations::{self, HoldSnapshot, HoldState};
use giftd_domain::{Amount, CardId, CardNumber, CheckoutId, Currency, DomainError, SecurityCode, Timestamp};
use giftd_store::{CheckoutRow, StoreResult, WriteTx};

use async_trait::async_trait;

use crate::error::{Failure, Refusal};
use crate::job::{IdempotencyKey, Rendered, Renderer};
use crate::operation::{Context, Operation};
use crate::payments::{AuthorizeRequest, PaymentCard, ProcessorError};
use crate::steps::{Reverser, card_by_secret, load_original_of, meta};
use crate::transfers::load_in_order;
use crate::webhooks::{self, Before};
use crate::{Service, ServiceError, ids};

/// How long a gift card hold of a checkout with intent `authorize` lives by default (the
/// longest a hold may live).
pub const DEFAULT_HOLD_SECONDS: i64 = 7 * 24 * 3600;
/// How long the recovery loop leaves a checkout to the request that is driving it.
pub const DEFAULT_LEASE_SECONDS: i64 = 30;
/// The status of an idempotency record while its checkout request is still being driven.
const PLACEHOLDER: u16 = 102;

/// A gift card named in a checkout request.
#[derive(Debug, Clone)]
pub enum GiftCardRef {
    Id(CardId),
    Secret {
        number: CardNumber,
        security_code: SecurityCode,
    },
}

#[derive(Debug, Clone)]
pub struct GiftCardLeg {
    pub card: GiftCardRef,
    pub amount: Amount,
}

/// A checkout request as a front-end parsed it.
#[derive(Debug, Clone)]
pub struct NewCheckout {
    pub amount: Amount,
    pub currency: Currency,
    pub intent: Intent,
    pub gift_cards: Vec<GiftCardLeg>,
    pub payment: Option<PaymentCard>,
    pub reference: Option<String>,
    /// The merchant's customer (a wallet user's id) the checkout is for.
    pub buyer: Option<String>,
    /// Hold the checkout in fraud review before its intent is met.
    pub review: bool,
    pub hold_seconds: Option<i64>,
}

/// What is asked of an existing checkout.
#[derive(Debug, Clone)]
pub enum CheckoutRequest {
    /// Everything, or with `payment_amount` that much of the payment method only.
    Capture {
        payment_amount: Option<Amount>,
    },
    Void,
    Review {
        approve: bool,
    },
    Refund {
        /// The refund's id, chosen by the caller ([`new_refund_id`]) so that its answer names
        /// its own refund even when others of the same checkout run at the same time.
        id: String,
        amount: Option<Amount>,
        /// A tender's id: refund that tender only.
        tender_id: Option<String>,
        reference: Option<String>,
    },
}

/// What a driver learnt from the processor (or must do itself) for the step it runs.
#[derive(Debug, Clone)]
pub enum StepResult {
    PaymentSent(PaymentResult),
    PaymentLost,
    UseGiftCards,
    PaymentCaptured,
    PaymentCaptureRefused {
        code: String,
        message: String,
    },
    CaptureGiftCards,
    ReleaseGiftCards,
    PaymentVoided,
    PaymentRefunded,
    /// The processor could not be reached: the same step is tried again later.
    PaymentCallFailed {
        message: String,
    },
}

#[derive(Debug, Clone)]
pub enum CheckoutCommand {
    /// `new` comes without its payment card: only `payment` (what may be stored of it) is
    /// in the command.
    Begin {
        id: CheckoutId,
        new: Box<NewCheckout>,
        payment: Option<PaymentSummary>,
        lease_seconds: i64,
    },
    Request {
        id: CheckoutId,
        request: CheckoutRequest,
        lease_seconds: i64,
    },
    Advance {
        id: CheckoutId,
        version: i64,
        result: StepResult,
        lease_seconds: i64,
    },
}

/// Replaces a request's placeholder answer with its final one; answers whether it did (another
/// request with the same key may have sealed it first).
#[derive(Debug)]
pub(crate) struct Seal {
    key: IdempotencyKey,
    rendered: Rendered,
}

/// Runs only for its idempotency key's stored answer (`T` is what the front-end renders); refused
/// if there is none.
pub(crate) struct Replay<T>(std::marker::PhantomData<fn() -> T>);

impl<T> std::fmt::Debug for Replay<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Replay")
    }
}

#[async_trait]
impl Operation for CheckoutCommand {
    type Outcome = Checkout;

    async fn before(&self, tx: &mut dyn WriteTx, cx: &Context<'_>) -> StoreResult<Before> {
        // Only a step of an existing checkout can move it from one status to another.
        match self {
            CheckoutCommand::Request { id, .. } | CheckoutCommand::Advance { id, .. } => {
                webhooks::checkout_before(tx, cx, id).await
            }
            CheckoutCommand::Begin { .. } => Ok(Before::default()),
        }
    }

    async fn execute(&self, tx: &mut dyn WriteTx, cx: &Context<'_>) -> Result<Checkout> {
        execute(tx, cx, self).await
    }

    async fn events(
        &self,
        tx: &mut dyn WriteTx,
        cx: &Context<'_>,
        checkout: &Checkout,
        before: Before,
    ) -> StoreResult<()> {
        webhooks::checkout_changed(tx, cx, checkout, before).await
    }

    async fn after_refusal(
        &self,
        tx: &mut dyn WriteTx,
        cx: &Context<'_>,
        refusal: &Refusal,
    ) -> StoreResult<()> {
        after_refusal(tx, cx, self, refusal).await
    }
}

#[async_trait]
impl Operation for Seal {
    type Outcome = bool;

    async fn execute(&self, tx: &mut dyn WriteTx, cx: &Context<'_>) -> Result<bool> {
        let body = cx.keys.encrypt(
            &self.rendered.body,
            &crate::job::body_context(cx.merchant, &self.key),
        );
        Ok(tx
            .seal_idempotency_record(
                cx.merchant,
                self.key.scope,
                &self.key.key,
                PLACEHOLDER,
                self.rendered.status,
                &body,
            )
            .await?)
    }

    async fn events(&self, _: &mut dyn WriteTx, _: &Context<'_>, _: &bool, _: Before) -> StoreResult<()> {
        Ok(())
    }
}

#[async_trait]
impl<T: Send + Sync + 'static> Operation for Replay<T> {
    type Outcome = T;

    async fn execute(&self, _: &mut dyn WriteTx, _: &Context<'_>) -> Result<T> {
        Err(Refusal::NotFound("idempotency record").into())
    }

    async fn events(&self, _: &mut dyn WriteTx, _: &Context<'_>, _: &T, _: Before) -> StoreResult<()> {
        Ok(())
    }
}

/// What a checkout keeps of its payment card.
#[derive(Debug, Clone)]
pub struct PaymentSummary {
    pub connector: &'static str,
    pub brand: &'static str,
    pub last4: String,
}

/// Refusals only checkouts give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckoutRefusal {
    /// The payment processor refused (a capture).
    #[error("the payment was refused: {message}")]
    PaymentRefused { code: String, message: String },
    /// A gift card could not be captured: the capture failed as a whole (holds released, the
    /// captured payment refunded).
    #[error("the capture failed: {message}")]
    CaptureFailed { code: String, message: String },
    /// The checkout moved on since the driver read it; the driver reads it again.
    #[error("the checkout changed concurrently")]
    Stale,
    /// A refund, void, capture or release asked outside the checkout of one of its own gift
    /// card legs: only the checkout changes those (its own refund does it).
    #[error("{what} belongs to checkout {checkout_id}; capture, void or refund the checkout instead")]
    Owned { checkout_id: String, what: String },
}

/// Refuses a command outside checkouts that would change a checkout's own leg: `transaction`
/// (to be refunded or voided, or the hold transaction of `hold`, to be captured or released).
/// A checkout's transactions carry its id as their reference; since a client may give any
/// reference, the checkout itself must name the transaction or the hold.
pub(crate) async fn refuse_outside(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    transaction: &giftd_store::TransactionRecord,
    hold: Option<&giftd_domain::HoldId>,
) -> Result<()> {
    let Some(reference) = transaction
        .reference
        .as_deref()
        .filter(|reference| reference.starts_with(CheckoutId::PREFIX))
    else {
        return Ok(());
    };
    let Some(row) = tx.checkout(cx.merchant, &CheckoutId::new(reference)).await? else {
        return Ok(());
    };
    let checkout = parse(&row)?;
    if !checkout.owns(&transaction.id, hold) {
        return Ok(());
    }
    let what = match hold {
        Some(hold) => format!("hold {hold}"),
        None => format!("transaction {}", transaction.id),
    };
    Err(Failure::Refused(Refusal::Checkout(CheckoutRefusal::Owned {
        checkout_id: checkout.id.to_string(),
        what,
    })))
}

type Result<T> = std::result::Result<T, Failure>;

fn corrupt(error: impl std::fmt::Display) -> Failure {
    Failure::Store(giftd_store::StoreError::Corrupt(format!(
        "checkout state: {error}"
    )))
}

pub(crate) fn parse(row: &CheckoutRow) -> std::result::Result<Checkout, giftd_store::StoreError> {
    serde_json::from_str(&row.state)
        .map_err(|e| giftd_store::StoreError::Corrupt(format!("checkout {}: {e}", row.id)))
}

fn lease(checkout: &Checkout, now: Timestamp, lease_seconds: i64) -> Timestamp {
    match checkout.payment.as_ref().and_then(|p| p.retry_at) {
        Some(at) if !checkout.due(now) => at,
        _ => now.plus_seconds(lease_seconds),
    }
}

fn row(cx: &Context<'_>, checkout: &Checkout, version: i64, lease_until: Timestamp) -> Result<CheckoutRow> {
    Ok(CheckoutRow {
        id: checkout.id.clone(),
        merchant_id: cx.merchant.clone(),
        state: serde_json::to_string(checkout).map_err(corrupt)?,
        version,
        open: checkout.is_open(),
        lease_until,
        created_at: checkout.created_at,
        updated_at: checkout.updated_at,
    })
}

async fn execute(tx: &mut dyn WriteTx, cx: &Context<'_>, command: &CheckoutCommand) -> Result<Checkout> {
    match command {
        CheckoutCommand::Begin {
            id,
            new,
            payment,
            lease_seconds,
        } => begin(tx, cx, id, new, payment.as_ref(), *lease_seconds).await,
        CheckoutCommand::Request {
            id,
            request,
            lease_seconds,
        } => {
            let (mut checkout, version) = locked(tx, cx, id).await?;
            match request {
                CheckoutRequest::Capture { payment_amount } => {
                    checkout.request_capture(payment_amount.map(Amount::minor), cx.now)?;
                }
                CheckoutRequest::Void => checkout.request_void(cx.now)?,
                CheckoutRequest::Review { approve } => checkout.review(*approve, cx.now)?,
                CheckoutRequest::Refund {
                    id,
                    amount,
                    tender_id,
                    reference,
                } => {
                    let asked = RefundAsked {
                        id,
                        amount: *amount,
                        tender_id: tender_id.as_deref(),
                        reference,
                    };
                    refund(tx, cx, &mut checkout, asked).await?
                }
            }
            save(tx, cx, &checkout, version, *lease_seconds).await
        }
        CheckoutCommand::Advance {
            id,
            version,
            result,
            lease_seconds,
        } => {
            let (mut checkout, stored_version) = locked(tx, cx, id).await?;
            if stored_version != *version {
                return Err(Refusal::Checkout(CheckoutRefusal::Stale).into());
            }
            advance(tx, cx, &mut checkout, result).await?;
            save(tx, cx, &checkout, stored_version, *lease_seconds).await
        }
    }
}

async fn locked(tx: &mut dyn WriteTx, cx: &Context<'_>, id: &CheckoutId) -> Result<(Checkout, i64)> {
    let row = tx
        .checkout(cx.merchant, id)
        .await?
        .ok_or(Refusal::NotFound("checkout"))?;
    Ok((parse(&row)?, row.version))
}

async fn save(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    checkout: &Checkout,
    version: i64,
    lease_seconds: i64,
) -> Result<Checkout> {
    let row = row(cx, checkout, version + 1, lease(checkout, cx.now, lease_seconds))?;
    tx.update_checkout(&row).await?;
    Ok(checkout.clone())
}

fn invalid(param: &'static str, message: &str) -> Failure {
    Refusal::Invalid {
        param,
        message: message.to_owned(),
    }
    .into()
}

async fn begin(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    id: &CheckoutId,
    new: &NewCheckout,
    summary: Option<&PaymentSummary>,
    lease_seconds: i64,
) -> Result<Checkout> {
    if new.gift_cards.len() > rules::MAX_GIFT_CARDS {
        return Err(Refusal::Domain(DomainError::LimitExceeded {
            reason: format!("a checkout takes at most {} gift cards", rules::MAX_GIFT_CARDS),
        })
        .into());
    }
    if new.gift_cards.is_empty() && summary.is_none() {
        return Err(invalid(
            "gift_cards",
            "a checkout needs gift cards, a payment_method, or both",
        ));
    }
    let gift_total = new
        .gift_cards
        .iter()
        .try_fold(0i64, |sum, leg| sum.checked_add(leg.amount.minor()))
        .ok_or_else(|| invalid("gift_cards", "the gift card amounts do not fit in 64 bits"))?;
    let payment_amount = new.amount.minor() - gift_total;
    match (summary, payment_amount) {
        (_, rest) if rest < 0 => {
            return Err(invalid(
                "gift_cards",
                "the gift card amounts exceed the checkout amount",
            ));
        }
        (None, rest) if rest > 0 => {
            return Err(invalid(
                "gift_cards",
                "without a payment_method the gift card amounts must add up to the checkout amount",
            ));
        }
        (Some(_), 0) => {
            return Err(invalid(
                "payment_method",
                "the gift cards cover the whole amount; leave out the payment_method",
            ));
        }
        _ => {}
    }
    let hold_seconds = new.hold_seconds.unwrap_or(DEFAULT_HOLD_SECONDS);
    if !(1..=DEFAULT_HOLD_SECONDS).contains(&hold_seconds) {
        return Err(invalid("hold_seconds", "hold_seconds is 1 to 604800"));
    }
    let mut gift_cards = Vec::with_capacity(new.gift_cards.len());
    for leg in &new.gift_cards {
        let card = match &leg.card {
            GiftCardRef::Id(card_id) => tx
                .card(cx.merchant, card_id)
                .await?
                .ok_or(Refusal::NotFound("card"))?,
            GiftCardRef::Secret {
                number,
                security_code,
            } => card_by_secret(tx, cx, number, security_code).await?,
        };
        if gift_cards
            .iter()
            .any(|g: &GiftCardTender| g.card_id == card.snapshot.id)
        {
            return Err(invalid("gift_cards", "a gift card is named twice"));
        }
        operations::check_currency(&card.snapshot, Some(new.currency))?;
        gift_cards.push(GiftCardTender {
            id: ids::prefixed("gcr_"),
            card_id: card.snapshot.id.clone(),
            last4: card.last4.clone(),
            amount: leg.amount.minor(),
            status: GiftCardStatus::Pending,
            hold_id: None,
            transaction_id: None,
            refunded_amount: 0,
            error_code: None,
            error_message: None,
        });
    }
    let payment = summary.map(|summary| PaymentTender {
        id: ids::prefixed("pay_"),
        connector: summary.connector.to_owned(),
        amount: payment_amount,
        brand: Some(summary.brand.to_owned()),
        last4: Some(summary.last4.clone()),
        status: PaymentStatus::Pending,
        processor_reference: None,
        refunded_amount: 0,
        refund_pending: 0,
        uncaptured: 0,
        error_code: None,
        error_message: None,
        retries: 0,
        retry_at: None,
    });
    let checkout = Checkout {
        id: id.clone(),
        amount: new.amount.minor(),
        currency: new.currency,
        intent: new.intent,
        reference: new.reference.clone(),
        buyer: new.buyer.clone(),
        status: Status::Processing,
        intent_outcome: IntentOutcome::Pending,
        review: if new.review { Review::Pending } else { Review::None },
        gift_cards,
        payment,
        refunds: Vec::new(),
        problem: None,
        hold_seconds,
        created_at: cx.now,
        updated_at: cx.now,
    };
    let row = row(cx, &checkout, 1, cx.now.plus_seconds(lease_seconds))?;
    tx.insert_checkout(&row).await?;
    Ok(checkout)
}

/// What a refused `Begin` leaves behind: every presented number whose code was wrong counts
/// against the lockout, as a lookup would.
async fn after_refusal(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    command: &CheckoutCommand,
    refusal: &Refusal,
) -> std::result::Result<(), giftd_store::StoreError> {
    let (CheckoutCommand::Begin { new, .. }, Refusal::Domain(DomainError::InvalidCard)) = (command, refusal)
    else {
        return Ok(());
    };
    for leg in &new.gift_cards {
        if let GiftCardRef::Secret {
            number,
            security_code,
        } = &leg.card
        {
            let fingerprint = cx.keys.card_fingerprint(cx.merchant.as_str(), number.expose());
            let card = tx.card_by_fingerprint(cx.merchant, &fingerprint).await?;
            let right = card.as_ref().is_some_and(|card| {
                let presented = cx
                    .keys
                    .security_code_hash(card.snapshot.id.as_str(), security_code.expose());
                crate::crypto::same_hash(&presented, &card.security_code_hash)
            });
            if !right {
                let attempts = tx.attempts(cx.merchant, &fingerprint).await?;
                tx.put_attempts(cx.merchant, &fingerprint, &attempts.after_failure(cx.now))
                    .await?;
            }
        }
    }
    Ok(())
}

async fn advance(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    checkout: &mut Checkout,
    result: &StepResult,
) -> Result<()> {
    let now = cx.now;
    match result {
        StepResult::PaymentSent(result) => checkout.payment_sent(result.clone(), now),
        StepResult::PaymentLost => checkout.payment_lost(now),
        StepResult::UseGiftCards => use_gift_cards(tx, cx, checkout).await?,
        StepResult::PaymentCaptured => checkout.payment_captured(now),
        StepResult::PaymentCaptureRefused { code, message } => {
            checkout.payment_capture_refused(code.clone(), message.clone(), now)
        }
        StepResult::CaptureGiftCards => capture_gift_cards(tx, cx, checkout).await?,
        StepResult::ReleaseGiftCards => {
            release_holds(tx, cx, checkout).await?;
            checkout.gift_cards_released(now);
        }
        StepResult::PaymentVoided => checkout.payment_voided(now),
        StepResult::PaymentRefunded => checkout.payment_refunded(now),
        StepResult::PaymentCallFailed { message } => checkout.payment_call_failed(message.clone(), now),
    }
    Ok(())
}

fn reference(checkout: &Checkout) -> Option<String> {
    Some(checkout.id.as_str().to_owned())
}

/// Holds (intent authorize) or redeems every gift card, all or none: a refusal rolls back
/// every leg written so far and is recorded on the checkout instead.
async fn use_gift_cards(tx: &mut dyn WriteTx, cx: &Context<'_>, checkout: &mut Checkout) -> Result<()> {
    let ids: Vec<&CardId> = checkout.gift_cards.iter().map(|g| &g.card_id).collect();
    let cards = load_in_order(tx, cx, &ids).await?;
    tx.savepoint("gift_cards").await?;
    let mut legs = Vec::with_capacity(cards.len());
    for (index, (gift, card)) in checkout.gift_cards.iter().zip(&cards).enumerate() {
        let amount = Amount::new(gift.amount)?;
        let decision = if checkout.holds_gift_cards() {
            operations::place_hold(card, amount, false, Some(checkout.currency), cx.now)
        } else {
            operations::redeem(card, amount, false, Some(checkout.currency), cx.now)
        };
        let decision = match decision {
            Ok(decision) => decision,
            Err(error) => {
                // Rolls back and ends the savepoint.
                tx.rollback_to_savepoint("gift_cards").await?;
                checkout.gift_cards_refused(index, &error, cx.now);
                return Ok(());
            }
        };
        let hold = checkout.holds_gift_cards().then(|| HoldSnapshot {
            id: ids::hold(),
            card_id: card.id.clone(),
            amount: decision.amount,
            state: HoldState::Pending,
            expires_at: cx.now.plus_seconds(checkout.hold_seconds),
        });
        let meta = meta(cx, reference(checkout), None, hold.as_ref().map(|h| h.id.clone()));
        tx.append(cx.merchant, card, &decision, &meta).await?;
        if let Some(hold) = &hold {
            tx.insert_hold(cx.merchant, hold, &meta.id, cx.now).await?;
        }
        legs.push((hold.map(|h| h.id), meta.id));
    }
    tx.release_savepoint("gift_cards").await?;
    checkout.gift_cards_used(legs, cx.now);
    Ok(())
}

/// Captures every gift card hold, all or none. If one cannot be captured, every hold is
/// released instead and the capture fails as a whole (the domain then refunds the payment).
async fn capture_gift_cards(tx: &mut dyn WriteTx, cx: &Context<'_>, checkout: &mut Checkout) -> Result<()> {
    let held: Vec<(usize, &GiftCardTender)> = checkout
        .gift_cards
        .iter()
        .enumerate()
        .filter(|(_, g)| g.status == GiftCardStatus::Held)
        .collect();
    let ids: Vec<&CardId> = held.iter().map(|(_, g)| &g.card_id).collect();
    let cards = load_in_order(tx, cx, &ids).await?;
    tx.savepoint("gift_cards").await?;
    let mut captures = Vec::with_capacity(held.len());
    let mut refused = None;
    for ((index, gift), card) in held.iter().zip(&cards) {
        let hold_id = gift
            .hold_id
            .clone()
            .ok_or_else(|| corrupt("a held gift card without its hold"))?;
        let hold = tx
            .hold(cx.merchant, &hold_id)
            .await?
            .ok_or_else(|| corrupt("a checkout's hold is missing"))?;
        match operations::capture(card, &hold.snapshot, None, cx.now) {
            Ok(decision) => {
                tx.finish_hold(&hold_id, HoldState::Captured, decision.amount, cx.now)
                    .await?;
                let meta = meta(cx, reference(checkout), None, Some(hold_id));
                tx.append(cx.merchant, card, &decision, &meta).await?;
                captures.push(meta.id);
            }
            Err(error) => {
                refused = Some((*index, error));
                break;
            }
        }
    }
    match refused {
        None => {
            tx.release_savepoint("gift_cards").await?;
            checkout.gift_cards_captured(captures, cx.now);
        }
        Some((index, error)) => {
            // Rolls back and ends the savepoint.
            tx.rollback_to_savepoint("gift_cards").await?;
            release_holds(tx, cx, checkout).await?;
            checkout.gift_card_capture_refused(index, &error, cx.now);
        }
    }
    Ok(())
}

/// Releases every gift card hold that is still pending (an expired one has given its value
/// back already).
async fn release_holds(tx: &mut dyn WriteTx, cx: &Context<'_>, checkout: &Checkout) -> Result<()> {
    let held: Vec<&GiftCardTender> = checkout
        .gift_cards
        .iter()
        .filter(|g| g.status == GiftCardStatus::Held)
        .collect();
    let ids: Vec<&CardId> = held.iter().map(|g| &g.card_id).collect();
    let cards = load_in_order(tx, cx, &ids).await?;
    for (gift, card) in held.iter().zip(&cards) {
        let Some(hold_id) = &gift.hold_id else { continue };
        let hold = tx
            .hold(cx.merchant, hold_id)
            .await?
            .ok_or_else(|| corrupt("a checkout's hold is missing"))?;
        if hold.snapshot.state != HoldState::Pending {
            continue;
        }
        let decision = operations::release(card, &hold.snapshot);
        tx.finish_hold(hold_id, HoldState::Released, 0, cx.now).await?;
        let meta = meta(cx, reference(checkout), None, Some(hold_id.clone()));
        tx.append(cx.merchant, card, &decision, &meta).await?;
    }
    Ok(())
}

/// Refunds the gift card parts of a refund now (one refund transaction per card, all or
/// none), and leaves the payment part owed to the processor.
/// What a refund request asks.
struct RefundAsked<'a> {
    id: &'a str,
    amount: Option<Amount>,
    tender_id: Option<&'a str>,
    reference: &'a Option<String>,
}

/// A new refund's id (`chr_…`), for [`CheckoutRequest::Refund`].
pub fn new_refund_id() -> String {
    ids::prefixed("chr_")
}

async fn refund(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    checkout: &mut Checkout,
    asked: RefundAsked<'_>,
) -> Result<()> {
    let RefundAsked {
        id,
        amount,
        tender_id,
        reference,
    } = asked;
    if checkout.refunds.iter().any(|r| r.id == id) {
        // A caller reusing an id would make two refunds one; ids come from `new_refund_id`.
        return Err(corrupt(format!(
            "refund id {id} is already used by this checkout"
        )));
    }
    let mut allocations = checkout.allocate_refund(amount.map(Amount::minor), tender_id)?;
    for allocation in &mut allocations {
        let Some(gift) = checkout.gift_cards.iter().find(|g| g.id == allocation.tender_id) else {
            continue;
        };
        let original_id = gift
            .transaction_id
            .clone()
            .ok_or_else(|| corrupt("a redeemed gift card without its transaction"))?;
        let (card, original) = load_original_of(tx, cx, &original_id, Reverser::Checkout).await?;
        let decision = operations::refund(&card, &original, Some(Amount::new(allocation.amount)?))?;
        let meta = meta(
            cx,
            reference.clone().or_else(|| self::reference(checkout)),
            Some(original.id),
            None,
        );
        let record = tx.append(cx.merchant, &card, &decision, &meta).await?;
        allocation.transaction_id = Some(record.id);
    }
    let refund = Refund {
        id: id.to_owned(),
        amount: allocations.iter().map(|a: &Allocation| a.amount).sum(),
        allocations,
        reference: reference.clone(),
        created_at: cx.now,
    };
    checkout.refunded(refund, cx.now);
    Ok(())
}

/// Aborts the process at a named point when `GIFTD_FAILPOINT` names it: a test aid that kills
/// giftd between two steps of a checkout, exactly where a crash could happen
/// (`crates/cli/tests/it/checkout_recovery.rs`). Only in debug builds, which the tests run: a
/// release build has no failpoints, so no setting can make a production giftd abort.
#[cfg(debug_assertions)]
fn failpoint(name: &str, checkout: &CheckoutId) {
    static ARMED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let armed = ARMED.get_or_init(|| std::env::var("GIFTD_FAILPOINT").ok());
    if armed.as_deref() == Some(name) {
        eprintln!("giftd: failpoint {name} reached in {checkout}; aborting");
        std::process::abort();
    }
}

/// A release build has no failpoints (see the debug build's).
#[cfg(not(debug_assertions))]
fn failpoint(_name: &str, _checkout: &CheckoutId) {}

fn step_name(step: Step) -> &'static str {
    match step {
        Step::SendPayment => "send_payment",
        Step::UseGiftCards => "use_gift_cards",
        Step::CapturePayment => "capture_payment",
        Step::CaptureGiftCards => "capture_gift_cards",
        Step::ReleaseGiftCards => "release_gift_cards",
        Step::VoidPayment => "void_payment",
        Step::RefundPayment => "refund_payment",
    }
}

/// A renderer used twice: for the placeholder's refusals and for the final answer.
type SharedRenderer = Arc<dyn Fn(&std::result::Result<Checkout, Refusal>) -> Rendered + Send + Sync>;

/// Checkouts the recovery loop looks at per round.
const RECOVERY_BATCH: u32 = 100;

impl Service {
    /// Creates a checkout and drives it as far as it goes now: the answer shows its
    /// `intent_outcome` (a failed checkout is still created). `render` gets
    /// the checkout's final state, or the refusal.
    pub async fn create_checkout(
        &self,
        merchant: giftd_domain::MerchantId,
        mut new: NewCheckout,
        idempotency: Option<IdempotencyKey>,
        render: Renderer<Checkout>,
    ) -> std::result::Result<Rendered, ServiceError> {
        let card = new.payment.take();
        let payment = card.as_ref().map(|card| PaymentSummary {
            connector: self.inner.payments.name(),
            brand: card.brand(),
            last4: card.last4(),
        });
        let command = CheckoutCommand::Begin {
            id: ids::checkout(),
            new: Box::new(new),
            payment,
            lease_seconds: self.checkout_lease_seconds(),
        };
        self.run_checkout(merchant, command, idempotency, render, card)
            .await
    }

    /// Captures, voids, reviews or refunds a checkout, and drives it as far as it goes now.
    pub async fn checkout_request(
        &self,
        merchant: giftd_domain::MerchantId,
        id: CheckoutId,
        request: CheckoutRequest,
        idempotency: Option<IdempotencyKey>,
        render: Renderer<Checkout>,
    ) -> std::result::Result<Rendered, ServiceError> {
        let command = CheckoutCommand::Request {
            id,
            request,
            lease_seconds: self.checkout_lease_seconds(),
        };
        self.run_checkout(merchant, command, idempotency, render, None)
            .await
    }

    pub async fn checkout(
        &self,
        merchant: &giftd_domain::MerchantId,
        id: &CheckoutId,
    ) -> std::result::Result<Checkout, ServiceError> {
        let row = self
            .inner
            .store
            .checkout(merchant, id)
            .await?
            .ok_or(ServiceError::NotFound("checkout"))?;
        Ok(parse(&row)?)
    }

    /// A page of the merchant's checkouts, newest first, after the checkout `before`.
    pub async fn checkouts(
        &self,
        merchant: &giftd_domain::MerchantId,
        before: Option<&CheckoutId>,
        limit: u32,
    ) -> std::result::Result<Vec<Checkout>, ServiceError> {
        let rows = self.inner.store.checkouts(merchant, before, limit).await?;
        rows.iter()
            .map(|row| parse(row).map_err(ServiceError::from))
            .collect()
    }

    /// The merchant's checkout with a refund whose id starts with `refund_id_prefix` (for a
    /// front-end that names refunds without their checkout).
    pub async fn checkout_with_refund(
        &self,
        merchant: &giftd_domain::MerchantId,
        refund_id_prefix: &str,
    ) -> std::result::Result<Option<Checkout>, ServiceError> {
        let row = self
            .inner
            .store
            .checkout_with_refund(merchant, refund_id_prefix)
            .await?;
        Ok(row.as_ref().map(parse).transpose()?)
    }

    async fn run_checkout(
        &self,
        merchant: giftd_domain::MerchantId,
        command: CheckoutCommand,
        idempotency: Option<IdempotencyKey>,
        render: Renderer<Checkout>,
        card: Option<PaymentCard>,
    ) -> std::result::Result<Rendered, ServiceError> {
        let render: SharedRenderer = Arc::from(render);
        let first = Arc::clone(&render);
        let capture = matches!(
            command,
            CheckoutCommand::Request {
                request: CheckoutRequest::Capture { payment_amount: None },
                ..
            }
        );
        // The first job's success is a placeholder naming the checkout; the answer is rendered
        // once the checkout has been driven.
        let accepted: Renderer<Checkout> = Box::new(move |result| match result {
            Ok(checkout) => Rendered {
                status: PLACEHOLDER,
                body: checkout.id.as_str().as_bytes().to_vec(),
            },
            other => first(other),
        });
        let answer = self
            .execute(merchant.clone(), command, idempotency.clone(), accepted)
            .await?;
        if answer.status != PLACEHOLDER {
            return Ok(answer);
        }
        let id = std::str::from_utf8(&answer.body)
            .ok()
            .and_then(CheckoutId::parse)
            .ok_or_else(|| {
                giftd_store::StoreError::Corrupt("a checkout placeholder without its id".into())
            })?;
        failpoint("checkout.after_begin", &id);
        let checkout = self.drive_checkout(&merchant, &id, card.as_ref()).await?;
        failpoint("checkout.before_answer", &id);
        // A capture that did not happen is answered as a refusal (the checkout shows why).
        let result = match (&checkout.problem, capture, checkout.status) {
            (Some(problem), true, Status::Authorized) => {
                Err(Refusal::Checkout(CheckoutRefusal::PaymentRefused {
                    code: problem.code.clone(),
                    message: problem.message.clone(),
                }))
            }
            (Some(problem), true, Status::Failed) => Err(Refusal::Checkout(CheckoutRefusal::CaptureFailed {
                code: problem.code.clone(),
                message: problem.message.clone(),
            })),
            _ => Ok(checkout),
        };
        let rendered = render(&result);
        let Some(key) = idempotency else {
            return Ok(rendered);
        };
        let sealed = self
            .execute(
                merchant.clone(),
                Seal {
                    key: key.clone(),
                    rendered: rendered.clone(),
                },
                None,
                Box::new(|result| Rendered {
                    status: u16::from(matches!(result, Ok(true))),
                    body: Vec::new(),
                }),
            )
            .await?;
        if sealed.status == 1 {
            return Ok(rendered);
        }
        // Another request with this key sealed it first: answer as it did.
        self.execute(
            merchant,
            Replay::<Checkout>(std::marker::PhantomData),
            Some(key),
            Box::new(move |result| render(result)),
        )
        .await
    }

    /// Runs the checkout's steps until none is left or the next must wait (a processor call
    /// to try again later), and answers with its state then. `card` is the payment card of
    /// the request that created it; without it (a resumed checkout) a payment that was never
    /// answered is voided.
    pub async fn drive_checkout(
        &self,
        merchant: &giftd_domain::MerchantId,
        id: &CheckoutId,
        card: Option<&PaymentCard>,
    ) -> std::result::Result<Checkout, ServiceError> {
        loop {
            let row = self
                .inner
                .store
                .checkout(merchant, id)
                .await?
                .ok_or(ServiceError::NotFound("checkout"))?;
            let checkout = parse(&row)?;
            let now = self.now();
            let Some(step) = checkout.next_step().filter(|_| checkout.due(now)) else {
                return Ok(checkout);
            };
            failpoint(&format!("checkout.before_{}", step_name(step)), id);
            let result = self.run_step(merchant, &checkout, step, card).await?;
            failpoint(&format!("checkout.after_call_{}", step_name(step)), id);
            let command = CheckoutCommand::Advance {
                id: id.clone(),
                version: row.version,
                result,
                lease_seconds: self.checkout_lease_seconds(),
            };
            let answer = self
                .execute(
                    merchant.clone(),
                    command,
                    None,
                    Box::new(|result| Rendered {
                        status: match result {
                            Ok(_) => 200,
                            Err(Refusal::Checkout(CheckoutRefusal::Stale)) => 409,
                            Err(_) => 422,
                        },
                        body: Vec::new(),
                    }),
                )
                .await?;
            match answer.status {
                // Another driver moved it on: read it again.
                200 | 409 => {}
                _ => {
                    return Err(giftd_store::StoreError::Corrupt(format!(
                        "checkout {id}: step {} was refused",
                        step_name(step)
                    ))
                    .into());
                }
            }
            failpoint(&format!("checkout.after_{}", step_name(step)), id);
        }
    }

    /// The processor call of a step (none for the ledger's steps).
    async fn run_step(
        &self,
        merchant: &giftd_domain::MerchantId,
        checkout: &Checkout,
        step: Step,
        card: Option<&PaymentCard>,
    ) -> std::result::Result<StepResult, ServiceError> {
        let connector = &self.inner.payments;
        match step {
            Step::UseGiftCards => return Ok(StepResult::UseGiftCards),
            Step::CaptureGiftCards => return Ok(StepResult::CaptureGiftCards),
            Step::ReleaseGiftCards => return Ok(StepResult::ReleaseGiftCards),
            _ => {}
        }
        let payment = checkout.payment.as_ref().ok_or_else(|| {
            giftd_store::StoreError::Corrupt(format!(
                "checkout {}: a payment step without a payment",
                checkout.id
            ))
        })?;
        let failed = |error: ProcessorError| match error {
            ProcessorError::Declined { message, .. } | ProcessorError::Unavailable(message) => {
                StepResult::PaymentCallFailed { message }
            }
        };
        Ok(match step {
            Step::SendPayment => match card {
                Some(card) => StepResult::PaymentSent(
                    connector
                        .authorize(AuthorizeRequest {
                            merchant,
                            reference: &payment.id,
                            amount: payment.amount,
                            currency: checkout.currency,
                            card,
                            capture: checkout.captures_at_once(),
                        })
                        .await,
                ),
                None => StepResult::PaymentLost,
            },
            Step::UseGiftCards => StepResult::UseGiftCards,
            Step::CaptureGiftCards => StepResult::CaptureGiftCards,
            Step::ReleaseGiftCards => StepResult::ReleaseGiftCards,
            Step::CapturePayment => match connector.capture(&payment.id, payment.amount).await {
                Ok(()) => StepResult::PaymentCaptured,
                Err(ProcessorError::Declined { code, message }) => {
                    StepResult::PaymentCaptureRefused { code, message }
                }
                Err(error) => failed(error),
            },
            Step::VoidPayment => match connector.void(&payment.id).await {
                Ok(()) => StepResult::PaymentVoided,
                Err(error) => failed(error),
            },
            Step::RefundPayment => {
                // Named by what was refunded before it, so a repeated call is the same refund.
                let refund_reference = format!("{}_r{}", payment.id, payment.refunded_amount);
                match connector
                    .refund(&payment.id, &refund_reference, payment.refund_pending)
                    .await
                {
                    Ok(()) => StepResult::PaymentRefunded,
                    Err(error) => failed(error),
                }
            }
        })
    }

    /// Drives every checkout that has a step left and nobody driving it (a giftd stopped
    /// mid-checkout, a void or refund to try again); returns how many it looked at.
    pub async fn recover_checkouts(&self) -> std::result::Result<usize, ServiceError> {
        let open = self
            .inner
            .store
            .open_checkouts(self.now(), RECOVERY_BATCH)
            .await?;
        let count = open.len();
        for (merchant, id) in open {
            if let Err(error) = self.drive_checkout(&merchant, &id, None).await {
                tracing::error!(checkout = %id, error = %error, "resuming a checkout failed");
            }
        }
        Ok(count)
    }

    /// Runs [`Service::recover_checkouts`] every second until `shutdown` resolves.
    pub async fn run_checkout_recovery(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut interval = tokio::time::interval(std::time::Duration::from_secs(1));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = interval.tick() => {
                    if let Err(error) = self.recover_checkouts().await {
                        tracing::error!(error = %error, "checkout recovery failed");
                    }
                }
            }
        }
    }
}
