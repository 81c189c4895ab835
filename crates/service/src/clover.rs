//! The Clover Gift Card API's use-cases, run like every command inside the writer's
//! transaction: card tokens (`clv_...`, stored only as a keyed hash), activation by promotion
//! code or token, reloads, balance inquiries, charges (redemptions, and multi-locks, which are
//! giftd holds numbered per card), captures, refunds and voids, and cash-outs.
//!
//! This module decides what a Clover request means in giftd's terms and asks the domain to
//! decide the rest; it knows nothing of Clover's wire format (that is `giftd-api`'s `clover/`).
//! Cards are always locked (loaded) before anything about them is decided; a token, a
//! transaction or a hold is read first only to learn which card to lock.
//!
//! The reads (`GET /v1/charges`, `/v1/refunds` and their single-object forms) rebuild from the
//! ledger what a charge's or refund's creation answered, with what changed since (captured,
//! refunded, cancelled); which transactions count as charges and refunds is the store's
//! `clover_reads.rs`, and docs/CLOVER.md says why.

use std::fmt;

use async_trait::async_trait;
use giftd_domain::Timestamp;
use giftd_domain::operations::{self, CardSnapshot, Decision, HoldSnapshot, HoldState};
use giftd_domain::{
    Amount, CardId, CardKind, CardNumber, Currency, DomainError, HoldId, Program, SecurityCode,
    TransactionId, TransactionType,
};
use giftd_store::{
    CloverDirection, CloverLedgerRow, CloverListQuery, CloverObject, StoreError, StoreResult,
    TransactionMeta, TransactionRecord, WriteTx,
};
use rand::{Rng, RngExt};

use crate::Service;
use crate::error::{Failure, Refusal, ServiceError};
use crate::ids;
use crate::operation::{Context, Operation};
use crate::steps::{self, IssuedCard};
use crate::views::Card;
use crate::webhooks::{self, Before};

/// Every token starts with this, as Clover's do.
pub const TOKEN_PREFIX: &str = "clv_";
/// Random letters and digits after the prefix: 32 of 62 symbols, about 190 bits, so tokens
/// cannot be guessed.
pub const TOKEN_RANDOM_LENGTH: usize = 32;
/// Longest token a client may present; anything longer cannot be one of ours.
pub const MAX_TOKEN_LENGTH: usize = 100;
/// A redemption is voided (rather than refunded) when its reversal is asked for within this
/// time of it, whole, and before any partial refund; later, it is refunded. Clover documents
/// the same 24-hour void window for gift cards.
pub const VOID_WINDOW_MILLIS: i64 = 24 * 3600 * 1000;

/// Why Clover reverses no merchandise return (a `refund` of no charge, made through Adyen's
/// APIs): it is neither a charge nor a refund of one.
const MERCHANDISE_RETURN: &str = "a merchandise return reverses no charge, so Clover can neither refund nor cancel it: void it with POST /v1/transactions/{id}/void or through the Adyen API that made it";

/// A Clover card token as a client presents it. It is a bearer credential for one card of one
/// merchant, so its `Debug` is redacted; it is stored only as a keyed hash.
#[derive(Clone, PartialEq, Eq)]
pub struct CloverToken(String);

impl CloverToken {
    /// A token as presented: `clv_` then letters and digits, at most [`MAX_TOKEN_LENGTH`] in
    /// all. Whether it exists is for the store to say.
    pub fn parse(value: &str) -> Option<Self> {
        let rest = value.strip_prefix(TOKEN_PREFIX)?;
        let plausible = !rest.is_empty()
            && value.len() <= MAX_TOKEN_LENGTH
            && rest.bytes().all(|b| b.is_ascii_alphanumeric());
        plausible.then(|| Self(value.to_owned()))
    }

    fn generate(rng: &mut impl Rng) -> Self {
        const SYMBOLS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let random: String = (0..TOKEN_RANDOM_LENGTH)
            .map(|_| char::from(SYMBOLS[rng.random_range(0..SYMBOLS.len())]))
            .collect();
        Self(format!("{TOKEN_PREFIX}{random}"))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CloverToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CloverToken(redacted)")
    }
}

/// A Clover request, parsed.
#[derive(Debug, Clone)]
pub enum CloverCommand {
    /// `POST /v1/tokens`: a token for the card with this number and secret (its security code,
    /// or the foreign access code of a card migrated from another program).
    CreateToken {
        number: CardNumber,
        secret: SecurityCode,
    },
    /// giftd's own addition: a token stops working for good.
    RevokeToken {
        token: CloverToken,
    },
    /// `POST /v1/activate` with `promotion_code`: a new virtual card of the program with that code.
    ActivateVirtual {
        promotion_code: String,
        amount: Option<Amount>,
        currency: Option<Currency>,
    },
    /// `POST /v1/activate` with `source`: an inactive (physical) card comes alive with value.
    ActivatePhysical {
        source: CloverToken,
        amount: Option<Amount>,
        currency: Option<Currency>,
    },
    Reload {
        source: CloverToken,
        amount: Amount,
        currency: Option<Currency>,
    },
    BalanceInquiry {
        source: CloverToken,
    },
    /// `POST /v1/charges`. Clover never declines for insufficient funds: a charge above what is
    /// available takes (or locks) what is available, with or without `partial_redemption`.
    Charge {
        source: CloverToken,
        amount: Amount,
        currency: Option<Currency>,
        /// `false` places a lock (a giftd hold) instead of redeeming.
        capture: bool,
        lock_seconds: i64,
    },
    /// `POST /v1/charges/{id}/capture`: captures `amount` of a lock (all of it when absent);
    /// the rest is released. Zero releases the lock.
    Capture {
        charge: TransactionId,
        amount: Option<i64>,
    },
    /// `POST /v1/refunds`: reverses a charge, reload, activation or cash-out.
    Refund {
        charge: TransactionId,
        amount: Option<Amount>,
    },
    /// `POST /v1/refunds/{id}/cancel`: voids a refund.
    CancelRefund {
        refund: TransactionId,
    },
    Cashout {
        source: CloverToken,
    },
}

/// Refusals only the Clover facade gives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloverRefusal {
    #[error("the charge has already been captured")]
    AlreadyCaptured,
    #[error("the charge has already been refunded or voided")]
    AlreadyRefunded,
    #[error("the lock has expired; its value was released")]
    LockExpired,
    #[error("the amount is above the {maximum} that can be taken")]
    AmountTooLarge { maximum: i64 },
}

/// How a `/v1/refunds` reversal was carried out (Clover's `metadata.refundType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundType {
    /// The original was voided (or, for a lock, released).
    Void,
    /// Value was refunded to the card.
    Refund,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MovementKind {
    Activation,
    Reload,
    /// A redemption (`capture: true`).
    Charge,
    /// A lock placed (`capture: false`).
    Lock,
    Capture,
    Refund(RefundType),
    CancelRefund,
    Cashout,
}

/// A lock as the answer shows it.
#[derive(Debug, Clone)]
pub struct CloverLock {
    pub hold_id: HoldId,
    /// `None` for a hold placed through another API.
    pub lock_id: Option<i64>,
    pub amount: i64,
}

/// An operation that moved value (or reserved it), with what the answer needs.
#[derive(Debug, Clone)]
pub struct CloverMovement {
    pub kind: MovementKind,
    /// The id Clover clients see: the charge's (a capture answers with its lock's id), the
    /// refund's, the reload's ...
    pub id: TransactionId,
    /// The transaction written.
    pub transaction: TransactionRecord,
    /// For refunds and their cancellation: the charge they reverse.
    pub charge: Option<TransactionId>,
    /// The card after the operation.
    pub card: Card,
    /// What was available before: for a capture, the lock's own amount counts as available.
    pub previous_balance: i64,
    pub lock: Option<CloverLock>,
    /// A new virtual card: the only time its number and security code leave giftd.
    pub issued: Option<(CardNumber, SecurityCode)>,
}

#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum CloverOutcome {
    Token { token: CloverToken, card: Card },
    TokenRevoked { token: CloverToken },
    Balance { card: Card },
    Movement(CloverMovement),
}

type Result<T> = std::result::Result<T, Failure>;

fn corrupt(what: String) -> Failure {
    Failure::Store(StoreError::Corrupt(what))
}

fn invalid(param: &'static str, message: &str) -> Failure {
    Refusal::Invalid {
        param,
        message: message.to_owned(),
    }
    .into()
}

#[async_trait]
impl Operation for CloverCommand {
    type Outcome = CloverOutcome;

    async fn execute(&self, tx: &mut dyn WriteTx, cx: &Context<'_>) -> Result<CloverOutcome> {
        execute(tx, cx, self).await
    }

    async fn events(
        &self,
        tx: &mut dyn WriteTx,
        cx: &Context<'_>,
        outcome: &CloverOutcome,
        _: Before,
    ) -> StoreResult<()> {
        match outcome {
            CloverOutcome::Movement(movement) => {
                webhooks::transactions(tx, cx, std::slice::from_ref(&movement.transaction)).await
            }
            CloverOutcome::Token { .. }
            | CloverOutcome::TokenRevoked { .. }
            | CloverOutcome::Balance { .. } => Ok(()),
        }
    }

    async fn after_refusal(
        &self,
        tx: &mut dyn WriteTx,
        cx: &Context<'_>,
        refusal: &Refusal,
    ) -> StoreResult<()> {
        match self {
            CloverCommand::CreateToken { number, .. } => {
                steps::count_failed_secret(tx, cx, number, refusal).await
            }
            _ => Ok(()),
        }
    }
}

async fn execute(tx: &mut dyn WriteTx, cx: &Context<'_>, command: &CloverCommand) -> Result<CloverOutcome> {
    let outcome = match command {
        CloverCommand::CreateToken { number, secret } => {
            let card = steps::card_by_secret(tx, cx, number, secret).await?;
            let token = CloverToken::generate(&mut rand::rng());
            let hash = cx.keys.clover_token_hash(token.expose());
            tx.insert_clover_token(cx.merchant, &hash, &card.snapshot.id, cx.now)
                .await?;
            CloverOutcome::Token {
                token,
                card: card.into(),
            }
        }
        CloverCommand::RevokeToken { token } => {
            let hash = cx.keys.clover_token_hash(token.expose());
            if !tx.revoke_clover_token(cx.merchant, &hash, cx.now).await? {
                return Err(Refusal::NotFound("source").into());
            }
            CloverOutcome::TokenRevoked { token: token.clone() }
        }
        CloverCommand::ActivateVirtual {
            promotion_code,
            amount,
            currency,
        } => activate_virtual(tx, cx, promotion_code, *amount, *currency).await?,
        CloverCommand::ActivatePhysical {
            source,
            amount,
            currency,
        } => {
            let card = source_card(tx, cx, source).await?;
            operations::check_currency(&card, *currency)?;
            let program = steps::program_of(tx, cx, &card).await?;
            let amount = first_value(&program, *amount, *currency)?;
            let decision = operations::activate(&program, &card, Some(amount), cx.now)?;
            let previous = card.available();
            let meta = steps::meta(cx, None, None, None);
            movement(tx, cx, MovementKind::Activation, &card, &decision, meta, previous).await?
        }
        CloverCommand::Reload {
            source,
            amount,
            currency,
        } => {
            let card = source_card(tx, cx, source).await?;
            let program = steps::program_of(tx, cx, &card).await?;
            let decision = operations::load(&program, &card, *amount, *currency, cx.now)?;
            let previous = card.available();
            let meta = steps::meta(cx, None, None, None);
            movement(tx, cx, MovementKind::Reload, &card, &decision, meta, previous).await?
        }
        CloverCommand::BalanceInquiry { source } => {
            // Loading the card writes the release of its expired locks, so the answer is current.
            let card = source_card(tx, cx, source).await?;
            CloverOutcome::Balance {
                card: card_record(tx, cx, &card.id).await?,
            }
        }
        CloverCommand::Charge {
            source,
            amount,
            currency,
            capture,
            lock_seconds,
        } => {
            let card = source_card(tx, cx, source).await?;
            if *capture {
                let decision = operations::redeem(&card, *amount, true, *currency, cx.now)?;
                let previous = card.available();
                let meta = steps::meta(cx, None, None, None);
                movement(tx, cx, MovementKind::Charge, &card, &decision, meta, previous).await?
            } else {
                lock(tx, cx, &card, *amount, *currency, *lock_seconds).await?
            }
        }
        CloverCommand::Capture { charge, amount } => capture(tx, cx, charge, *amount).await?,
        CloverCommand::Refund { charge, amount } => refund(tx, cx, charge, *amount).await?,
        CloverCommand::CancelRefund { refund } => cancel_refund(tx, cx, refund).await?,
        CloverCommand::Cashout { source } => {
            let card = source_card(tx, cx, source).await?;
            let decision = operations::cashout(&card)?;
            let previous = card.available();
            let meta = steps::meta(cx, None, None, None);
            movement(tx, cx, MovementKind::Cashout, &card, &decision, meta, previous).await?
        }
    };
    Ok(outcome)
}

/// The card a token stands for, loaded (locked) for the rest of the transaction. An unknown or
/// revoked token, or another merchant's, finds nothing.
async fn source_card(tx: &mut dyn WriteTx, cx: &Context<'_>, token: &CloverToken) -> Result<CardSnapshot> {
    let hash = cx.keys.clover_token_hash(token.expose());
    let card_id = tx
        .clover_token_card(cx.merchant, &hash)
        .await?
        .ok_or(Refusal::NotFound("source"))?;
    steps::load_card(tx, cx, &card_id).await
}

async fn card_record(tx: &mut dyn WriteTx, cx: &Context<'_>, card_id: &CardId) -> Result<Card> {
    tx.card(cx.merchant, card_id)
        .await?
        .map(Card::from)
        .ok_or_else(|| corrupt(format!("card {card_id} vanished inside its transaction")))
}

/// The first value of a card: the amount given, or the program's one denomination. A
/// non-denominated program needs both the amount and the currency.
fn first_value(program: &Program, amount: Option<Amount>, currency: Option<Currency>) -> Result<Amount> {
    match (&program.denominations, amount) {
        (None, None) => Err(invalid(
            "amount",
            "a card of a non-denominated program is activated with an amount and a currency",
        )),
        (None, Some(_)) if currency.is_none() => Err(invalid(
            "currency",
            "a card of a non-denominated program is activated with an amount and a currency",
        )),
        (Some(denominations), None) => match denominations.as_slice() {
            [only] => Ok(*only),
            _ => Err(invalid(
                "amount",
                "the program has several denominations: give the amount of one of them",
            )),
        },
        // The domain checks that it is one of the denominations, when there are some.
        (_, Some(amount)) => Ok(amount),
    }
}

async fn activate_virtual(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    promotion_code: &str,
    amount: Option<Amount>,
    currency: Option<Currency>,
) -> Result<CloverOutcome> {
    let programs = tx
        .programs_by_promotion_code(cx.merchant, promotion_code, 2)
        .await?;
    let program = match programs.as_slice() {
        [] => return Err(Refusal::NotFound("promotion_code").into()),
        [program] => program,
        _ => {
            return Err(invalid(
                "promotion_code",
                "several programs share this promotion code; give each program its own",
            ));
        }
    };
    if let Some(currency) = currency
        && currency != program.currency
    {
        return Err(DomainError::CurrencyMismatch {
            card: program.currency.code(),
            requested: currency.code(),
        }
        .into());
    }
    let amount = first_value(program, amount, currency)?;
    let issued = steps::issue_card(tx, cx, &program.id, CardKind::Virtual, Some(amount), None, &None).await?;
    let IssuedCard {
        card,
        number,
        security_code,
        transaction: Some(transaction),
    } = issued
    else {
        return Err(corrupt(
            "a virtual card issued with value has no issue transaction".into(),
        ));
    };
    Ok(CloverOutcome::Movement(CloverMovement {
        kind: MovementKind::Activation,
        id: transaction.id.clone(),
        transaction,
        charge: None,
        card,
        previous_balance: 0,
        lock: None,
        issued: Some((number, security_code)),
    }))
}

/// Appends a decision and describes it: the plain case, where the id is the new transaction's.
async fn movement(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    kind: MovementKind,
    card: &CardSnapshot,
    decision: &Decision,
    meta: TransactionMeta,
    previous_balance: i64,
) -> Result<CloverOutcome> {
    let transaction = tx.append(cx.merchant, card, decision, &meta).await?;
    Ok(CloverOutcome::Movement(CloverMovement {
        kind,
        id: transaction.id.clone(),
        transaction,
        charge: None,
        card: card_record(tx, cx, &card.id).await?,
        previous_balance,
        lock: None,
        issued: None,
    }))
}

async fn lock(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    card: &CardSnapshot,
    amount: Amount,
    currency: Option<Currency>,
    lock_seconds: i64,
) -> Result<CloverOutcome> {
    let decision = operations::place_hold(card, amount, true, currency, cx.now)?;
    let hold = HoldSnapshot {
        id: ids::hold(),
        card_id: card.id.clone(),
        amount: decision.amount,
        state: HoldState::Pending,
        expires_at: cx.now.plus_seconds(lock_seconds),
    };
    let meta = steps::meta(cx, None, None, Some(hold.id.clone()));
    let transaction = tx.append(cx.merchant, card, &decision, &meta).await?;
    tx.insert_hold(cx.merchant, &hold, &transaction.id, cx.now)
        .await?;
    let lock_id = tx
        .insert_clover_lock(cx.merchant, &card.id, &hold.id, cx.now)
        .await?;
    Ok(CloverOutcome::Movement(CloverMovement {
        kind: MovementKind::Lock,
        id: transaction.id.clone(),
        transaction,
        charge: None,
        card: card_record(tx, cx, &card.id).await?,
        previous_balance: card.available(),
        lock: Some(CloverLock {
            hold_id: hold.id,
            lock_id: Some(lock_id),
            amount: hold.amount,
        }),
        issued: None,
    }))
}

/// Why a charge that is not a pending lock cannot be captured (or a finished lock refunded).
async fn finished_lock(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    card: &CardId,
    hold: &HoldId,
    state: HoldState,
) -> Result<CloverRefusal> {
    Ok(match state {
        HoldState::Pending => return Err(corrupt(format!("hold {hold} is pending after all"))),
        HoldState::Captured => CloverRefusal::AlreadyCaptured,
        HoldState::Expired => CloverRefusal::LockExpired,
        // Released by a zero capture (an unlock), or voided through a refund.
        HoldState::Released => {
            let captured = tx
                .transaction_of_hold(cx.merchant, card, hold, TransactionType::Capture)
                .await?;
            if captured.is_some() {
                CloverRefusal::AlreadyCaptured
            } else {
                CloverRefusal::AlreadyRefunded
            }
        }
    })
}

/// The charge behind an id from the path or body, or `not found` for the given parameter.
async fn charge_transaction(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    id: &TransactionId,
    param: &'static str,
) -> Result<TransactionRecord> {
    Ok(tx
        .transaction(cx.merchant, id)
        .await?
        .ok_or(Refusal::NotFound(param))?)
}

fn lock_hold_id(charge: &TransactionRecord) -> Result<HoldId> {
    charge
        .hold_id
        .clone()
        .ok_or_else(|| corrupt(format!("hold transaction {} names no hold", charge.id)))
}

async fn capture(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    charge_id: &TransactionId,
    amount: Option<i64>,
) -> Result<CloverOutcome> {
    let charge = charge_transaction(tx, cx, charge_id, "charge").await?;
    match charge.transaction_type {
        TransactionType::Hold => {}
        // A charge made with `capture: true` was captured when it was made.
        TransactionType::Redemption | TransactionType::Capture => {
            return Err(Refusal::Clover(CloverRefusal::AlreadyCaptured).into());
        }
        TransactionType::Issue
        | TransactionType::Activation
        | TransactionType::Load
        | TransactionType::Release
        | TransactionType::Refund
        | TransactionType::Void
        | TransactionType::Cashout
        | TransactionType::TransferOut
        | TransactionType::TransferIn
        | TransactionType::MergeOut
        | TransactionType::MergeIn
        | TransactionType::Adjustment
        | TransactionType::Expiry => {
            return Err(invalid(
                "charge",
                "only a lock (a charge made with capture false) can be captured",
            ));
        }
    }
    let hold_id = lock_hold_id(&charge)?;
    let (card, hold) = steps::load_hold(tx, cx, &hold_id).await?;
    // A checkout's hold is captured by its checkout alone, as on the native API.
    steps::refuse_checkout_hold(tx, cx, &card, &hold_id).await?;
    let state = hold.snapshot.effective_state(cx.now);
    if state != HoldState::Pending {
        let refusal = finished_lock(tx, cx, &card.id, &hold_id, state).await?;
        return Err(Refusal::Clover(refusal).into());
    }
    let held = hold.snapshot.amount;
    let captured = amount.unwrap_or(held);
    if captured > held {
        return Err(Refusal::Clover(CloverRefusal::AmountTooLarge { maximum: held }).into());
    }
    let decision = operations::capture(&card, &hold.snapshot, Some(captured), cx.now)?;
    let state = if decision.amount > 0 {
        HoldState::Captured
    } else {
        HoldState::Released
    };
    tx.finish_hold(&hold_id, state, decision.amount, cx.now).await?;
    let meta = steps::meta(cx, None, None, Some(hold_id.clone()));
    let transaction = tx.append(cx.merchant, &card, &decision, &meta).await?;
    let lock_id = tx.clover_lock_id(&hold_id).await?;
    Ok(CloverOutcome::Movement(CloverMovement {
        kind: MovementKind::Capture,
        id: charge.id,
        transaction,
        charge: None,
        card: card_record(tx, cx, &card.id).await?,
        previous_balance: card.available() + held,
        lock: Some(CloverLock {
            hold_id,
            lock_id,
            amount: held,
        }),
        issued: None,
    }))
}

/// A reversal answer: a new transaction that reverses `charge` (the id the client gave).
async fn reversal(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    kind: MovementKind,
    charge: &TransactionId,
    card: &CardSnapshot,
    decision: &Decision,
    meta: TransactionMeta,
) -> Result<CloverOutcome> {
    let transaction = tx.append(cx.merchant, card, decision, &meta).await?;
    Ok(CloverOutcome::Movement(CloverMovement {
        kind,
        id: transaction.id.clone(),
        transaction,
        charge: Some(charge.clone()),
        card: card_record(tx, cx, &card.id).await?,
        previous_balance: card.available(),
        lock: None,
        issued: None,
    }))
}

async fn refund(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    charge_id: &TransactionId,
    amount: Option<Amount>,
) -> Result<CloverOutcome> {
    let charge = charge_transaction(tx, cx, charge_id, "charge").await?;
    match charge.transaction_type {
        TransactionType::Hold => refund_lock(tx, cx, &charge, amount).await,
        TransactionType::Redemption | TransactionType::Capture => {
            let voidable = charge.transaction_type == TransactionType::Redemption
                && cx.now.unix_millis() - charge.created_at.unix_millis() < VOID_WINDOW_MILLIS;
            refund_redemption(tx, cx, charge_id, &charge.id, amount, voidable).await
        }
        TransactionType::Issue
        | TransactionType::Activation
        | TransactionType::Load
        | TransactionType::Cashout => {
            if amount.is_some_and(|a| a.minor() != charge.amount) {
                return Err(invalid(
                    "amount",
                    "a reload, activation or cash-out is voided whole: leave out the amount or give all of it",
                ));
            }
            let (card, original) = steps::load_original(tx, cx, &charge.id).await?;
            if original.voided {
                return Err(Refusal::Clover(CloverRefusal::AlreadyRefunded).into());
            }
            let decision = operations::void(&card, &original)?;
            let meta = steps::meta(cx, None, Some(charge.id.clone()), None);
            let kind = MovementKind::Refund(RefundType::Void);
            reversal(tx, cx, kind, charge_id, &card, &decision, meta).await
        }
        // A merchandise return (an Adyen unreferenced refund) reverses no charge: it is no
        // Clover refund, and Clover cannot cancel it either.
        TransactionType::Refund if charge.reverses.is_none() => Err(invalid("charge", MERCHANDISE_RETURN)),
        TransactionType::Refund => Err(invalid(
            "charge",
            "a refund is voided with POST /v1/refunds/{id}/cancel",
        )),
        TransactionType::Release
        | TransactionType::Void
        | TransactionType::TransferOut
        | TransactionType::TransferIn
        | TransactionType::MergeOut
        | TransactionType::MergeIn
        | TransactionType::Adjustment
        | TransactionType::Expiry => Err(invalid("charge", "this is not a charge that can be refunded")),
    }
}

/// A lock still pending is voided: released whole. A captured one is refunded (Clover: once a
/// lock is captured, only a refund reverses it).
async fn refund_lock(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    charge: &TransactionRecord,
    amount: Option<Amount>,
) -> Result<CloverOutcome> {
    let hold_id = lock_hold_id(charge)?;
    let (card, hold) = steps::load_hold(tx, cx, &hold_id).await?;
    // A checkout's hold is released by its checkout alone, as on the native API.
    steps::refuse_checkout_hold(tx, cx, &card, &hold_id).await?;
    match hold.snapshot.effective_state(cx.now) {
        HoldState::Pending => {
            if amount.is_some_and(|a| a.minor() != hold.snapshot.amount) {
                return Err(invalid(
                    "amount",
                    "a lock is voided whole: leave out the amount or give all of it",
                ));
            }
            let decision = operations::release_requested(&card, &hold.snapshot, cx.now)?;
            tx.finish_hold(&hold_id, HoldState::Released, 0, cx.now).await?;
            let meta = steps::meta(cx, None, None, Some(hold_id));
            let kind = MovementKind::Refund(RefundType::Void);
            reversal(tx, cx, kind, &charge.id, &card, &decision, meta).await
        }
        HoldState::Captured => {
            let capture = tx
                .transaction_of_hold(cx.merchant, &card.id, &hold_id, TransactionType::Capture)
                .await?
                .ok_or_else(|| corrupt(format!("captured hold {hold_id} has no capture transaction")))?;
            refund_redemption(tx, cx, &charge.id, &capture.id, amount, false).await
        }
        state @ (HoldState::Released | HoldState::Expired) => {
            let refusal = match finished_lock(tx, cx, &card.id, &hold_id, state).await? {
                // An unlocked (zero-captured) lock took nothing: nothing to refund.
                CloverRefusal::AlreadyCaptured => CloverRefusal::AlreadyRefunded,
                other => other,
            };
            Err(Refusal::Clover(refusal).into())
        }
    }
}

/// Reverses a redemption or capture: a void when `voidable` and the whole of it is asked for
/// before any partial refund, else a refund (of `amount`, or of what remains).
async fn refund_redemption(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    charge_id: &TransactionId,
    redemption: &TransactionId,
    amount: Option<Amount>,
    voidable: bool,
) -> Result<CloverOutcome> {
    let (card, original) = steps::load_original(tx, cx, redemption).await?;
    if original.voided || original.refunded >= original.amount {
        return Err(Refusal::Clover(CloverRefusal::AlreadyRefunded).into());
    }
    let whole = amount.is_none_or(|a| a.minor() == original.amount);
    let meta = steps::meta(cx, None, Some(original.id.clone()), None);
    if voidable && whole && original.refunded == 0 {
        let decision = operations::void(&card, &original)?;
        let kind = MovementKind::Refund(RefundType::Void);
        return reversal(tx, cx, kind, charge_id, &card, &decision, meta).await;
    }
    let refundable = original.amount - original.refunded;
    if let Some(amount) = amount
        && amount.minor() > refundable
    {
        return Err(Refusal::Clover(CloverRefusal::AmountTooLarge { maximum: refundable }).into());
    }
    let decision = operations::refund(&card, &original, amount)?;
    let kind = MovementKind::Refund(RefundType::Refund);
    reversal(tx, cx, kind, charge_id, &card, &decision, meta).await
}

async fn cancel_refund(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    refund_id: &TransactionId,
) -> Result<CloverOutcome> {
    let refund = charge_transaction(tx, cx, refund_id, "refund").await?;
    if refund.transaction_type != TransactionType::Refund {
        return Err(invalid(
            "refund",
            "only a refund (metadata.refundType REFUND) can be cancelled; a void is final",
        ));
    }
    // A merchandise return (an Adyen unreferenced refund) reverses no charge: it is no Clover
    // refund (the reads do not list it), so there is nothing for Clover to cancel.
    let Some(refunded) = refund.reverses.clone() else {
        return Err(invalid("refund", MERCHANDISE_RETURN));
    };
    let (card, original) = steps::load_original(tx, cx, &refund.id).await?;
    if original.voided {
        return Err(Refusal::Clover(CloverRefusal::AlreadyRefunded).into());
    }
    let decision = operations::void(&card, &original)?;
    let meta = steps::meta(cx, None, Some(refund.id.clone()), None);
    // The charge a client knows: for a refunded capture, the lock's id.
    let charge = charge_of(tx, cx, &card.id, &refunded).await?;
    let transaction = tx.append(cx.merchant, &card, &decision, &meta).await?;
    Ok(CloverOutcome::Movement(CloverMovement {
        kind: MovementKind::CancelRefund,
        id: transaction.id.clone(),
        transaction,
        charge: Some(charge),
        card: card_record(tx, cx, &card.id).await?,
        previous_balance: card.available(),
        lock: None,
        issued: None,
    }))
}

/// The Clover charge id of a giftd transaction: a capture is known by its lock's id.
async fn charge_of(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    card: &CardId,
    transaction_id: &TransactionId,
) -> Result<TransactionId> {
    let transaction = charge_transaction(tx, cx, transaction_id, "charge").await?;
    if transaction.transaction_type != TransactionType::Capture {
        return Ok(transaction.id);
    }
    let Some(hold_id) = &transaction.hold_id else {
        return Ok(transaction.id);
    };
    let placed = tx
        .transaction_of_hold(cx.merchant, card, hold_id, TransactionType::Hold)
        .await?;
    Ok(placed.map_or(transaction.id, |t| t.id))
}

// ---- reads ----

/// The most objects one page of a list holds (Clover's hard limit).
pub const MAX_LIST_LIMIT: u32 = 100;

/// Where a page starts. Clover's cursors include the object they name: `starting_after` X
/// gives X and what was created before it, newest first; `ending_before` X gives X and what
/// was created after it, oldest first (X is first either way, as Clover's example shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloverCursor {
    StartingAfter(TransactionId),
    EndingBefore(TransactionId),
}

/// A list request, parsed.
#[derive(Debug, Clone)]
pub struct CloverListRequest {
    /// Creation time from and until (milliseconds since 1970, both inclusive); unbounded when
    /// absent.
    pub created_from: Option<i64>,
    pub created_until: Option<i64>,
    pub cursor: Option<CloverCursor>,
    /// Refunds only: those of this charge.
    pub charge: Option<TransactionId>,
    /// 1 to [`MAX_LIST_LIMIT`].
    pub limit: u32,
}

/// A charge's state as its answer shows it: at its creation, or as of a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChargeState {
    pub captured: bool,
    /// What the charge took from the card: a redemption all of it, a lock what its capture took.
    pub amount_captured: i64,
    /// What of its amount went back to the card: refunds (not cancelled) and a void of what it
    /// took, and, for a lock, what it did not take (released, unlocked, expired, or left over by
    /// a partial capture), as Stripe-shaped APIs count an authorization's release.
    pub amount_refunded: i64,
}

impl ChargeState {
    /// A charge's state when its creation answers: a redemption took its amount, a lock
    /// nothing yet.
    pub fn at_creation(kind: MovementKind, amount: i64) -> Self {
        let captured = kind == MovementKind::Charge;
        Self {
            captured,
            amount_captured: if captured { amount } else { 0 },
            amount_refunded: 0,
        }
    }

    /// Clover's `refunded`: all of the charge's amount went back.
    pub fn refunded(&self, amount: i64) -> bool {
        amount > 0 && self.amount_refunded >= amount
    }
}

/// What changed about a charge or refund since its creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloverState {
    Charge(ChargeState),
    /// A refund; `cancelled` when it was voided (`/v1/refunds/{id}/cancel` or a native void).
    Refund {
        cancelled: bool,
    },
}

/// A Clover charge or refund read back: what its creation's answer showed, and its state now.
#[derive(Debug, Clone)]
pub struct CloverRecord {
    /// `Charge` (a redemption), `Lock` (a hold) or `Refund`.
    pub kind: MovementKind,
    pub transaction: TransactionRecord,
    /// A refund's Clover charge.
    pub charge: Option<TransactionId>,
    pub last4: String,
    /// The card's expiry, now.
    pub expires_at: Option<Timestamp>,
    /// Available before and after the transaction, and held after it.
    pub previous_balance: i64,
    pub new_balance: i64,
    pub lock_amount: i64,
    /// A lock's number, when the Clover facade placed it.
    pub lock_id: Option<i64>,
    pub state: CloverState,
}

/// One page of a list, and whether more lie beyond it in its direction.
#[derive(Debug, Clone)]
pub struct CloverPage {
    pub items: Vec<CloverRecord>,
    pub has_more: bool,
}

fn read_corrupt(what: String) -> ServiceError {
    ServiceError::Internal(StoreError::Corrupt(what))
}

/// A ledger row as a Clover object, with its state as of `now` (a lock past its expiry has
/// expired, swept or not).
fn record(row: CloverLedgerRow, now: Timestamp) -> std::result::Result<CloverRecord, ServiceError> {
    let amount = row.transaction.amount;
    let (kind, state) = match row.transaction.transaction_type {
        TransactionType::Redemption => {
            let refunded = if row.voided { amount } else { row.refunded };
            let state = ChargeState {
                captured: true,
                amount_captured: amount,
                amount_refunded: refunded,
            };
            (MovementKind::Charge, CloverState::Charge(state))
        }
        TransactionType::Hold => {
            let hold = row.hold.as_ref().ok_or_else(|| {
                read_corrupt(format!("hold transaction {} has no hold", row.transaction.id))
            })?;
            let expired = hold.state == HoldState::Pending && hold.expires_at <= now;
            let state = match (hold.state, expired) {
                (HoldState::Pending, false) => ChargeState::at_creation(MovementKind::Lock, amount),
                (HoldState::Captured, _) => {
                    let taken = hold.captured_amount;
                    let given_back = if row.voided { taken } else { row.refunded };
                    ChargeState {
                        captured: true,
                        amount_captured: taken,
                        amount_refunded: amount - taken + given_back,
                    }
                }
                (HoldState::Pending, true) | (HoldState::Released | HoldState::Expired, _) => ChargeState {
                    captured: false,
                    amount_captured: 0,
                    amount_refunded: amount,
                },
            };
            (MovementKind::Lock, CloverState::Charge(state))
        }
        TransactionType::Refund => (
            MovementKind::Refund(RefundType::Refund),
            CloverState::Refund {
                cancelled: row.voided,
            },
        ),
        TransactionType::Void | TransactionType::Release => (
            MovementKind::Refund(RefundType::Void),
            CloverState::Refund { cancelled: false },
        ),
        other @ (TransactionType::Issue
        | TransactionType::Activation
        | TransactionType::Load
        | TransactionType::Capture
        | TransactionType::Cashout
        | TransactionType::TransferOut
        | TransactionType::TransferIn
        | TransactionType::MergeOut
        | TransactionType::MergeIn
        | TransactionType::Adjustment
        | TransactionType::Expiry) => {
            return Err(read_corrupt(format!(
                "a {} transaction read as a Clover charge or refund",
                other.as_str()
            )));
        }
    };
    Ok(CloverRecord {
        kind,
        previous_balance: row.available_before(),
        new_balance: row.available_after(),
        lock_amount: row.held_after,
        lock_id: row.hold.as_ref().and_then(|hold| hold.lock_id),
        charge: row.charge,
        last4: row.card_last4,
        expires_at: row.card_expires_at,
        transaction: row.transaction,
        state,
    })
}

impl Service {
    /// A charge (a redemption or a lock) of the merchant, as of now.
    pub async fn clover_charge(
        &self,
        merchant: &giftd_domain::MerchantId,
        id: &TransactionId,
    ) -> std::result::Result<CloverRecord, ServiceError> {
        let row = self
            .inner
            .store
            .clover_object(merchant, CloverObject::Charge, id)
            .await?
            .ok_or(ServiceError::NotFound("charge"))?;
        record(row, self.now())
    }

    /// A refund (a refund, a void or a requested release) of the merchant, as of now.
    pub async fn clover_refund(
        &self,
        merchant: &giftd_domain::MerchantId,
        id: &TransactionId,
    ) -> std::result::Result<CloverRecord, ServiceError> {
        let row = self
            .inner
            .store
            .clover_object(merchant, CloverObject::Refund, id)
            .await?
            .ok_or(ServiceError::NotFound("refund"))?;
        record(row, self.now())
    }

    /// A page of the merchant's charges.
    pub async fn clover_charges(
        &self,
        merchant: &giftd_domain::MerchantId,
        request: &CloverListRequest,
    ) -> std::result::Result<CloverPage, ServiceError> {
        self.clover_list(merchant, CloverObject::Charge, request).await
    }

    /// A page of the merchant's refunds, perhaps only those of one charge.
    pub async fn clover_refunds(
        &self,
        merchant: &giftd_domain::MerchantId,
        request: &CloverListRequest,
    ) -> std::result::Result<CloverPage, ServiceError> {
        self.clover_list(merchant, CloverObject::Refund, request).await
    }

    /// Where the object a cursor names sits in its list; a cursor naming none is refused.
    async fn clover_position(
        &self,
        merchant: &giftd_domain::MerchantId,
        object: CloverObject,
        param: &'static str,
        id: &TransactionId,
    ) -> std::result::Result<giftd_store::CloverPosition, ServiceError> {
        let what = match object {
            CloverObject::Charge => "charge",
            CloverObject::Refund => "refund",
        };
        self.inner
            .store
            .clover_object(merchant, object, id)
            .await?
            .map(|row| row.position)
            .ok_or_else(|| ServiceError::Invalid {
                param,
                message: format!("`{param}` names no {what} of yours: {id}"),
            })
    }

    async fn clover_list(
        &self,
        merchant: &giftd_domain::MerchantId,
        object: CloverObject,
        request: &CloverListRequest,
    ) -> std::result::Result<CloverPage, ServiceError> {
        // A cursor must name an object of the list; where it sits is its place.
        let direction = match &request.cursor {
            None => CloverDirection::Older(None),
            Some(CloverCursor::StartingAfter(id)) => CloverDirection::Older(Some(
                self.clover_position(merchant, object, "starting_after", id)
                    .await?,
            )),
            Some(CloverCursor::EndingBefore(id)) => CloverDirection::Newer(
                self.clover_position(merchant, object, "ending_before", id)
                    .await?,
            ),
        };
        // A refund's `charge` is what its creation reversed: a charge, or a reload, activation
        // or cash-out (voided through /v1/refunds too), so any transaction of the merchant.
        if let Some(charge) = &request.charge
            && self.inner.store.transaction(merchant, charge).await?.is_none()
        {
            return Err(ServiceError::Invalid {
                param: "charge",
                message: format!("`charge` names nothing of yours: {charge}"),
            });
        }
        let limit = request.limit.clamp(1, MAX_LIST_LIMIT);
        let query = CloverListQuery {
            created_from: request.created_from.unwrap_or(i64::MIN),
            created_until: request.created_until.unwrap_or(i64::MAX),
            direction,
            charge: request.charge.clone(),
            // One more than asked, to learn whether there is more.
            limit: limit + 1,
        };
        let mut rows = self.inner.store.clover_objects(merchant, object, &query).await?;
        let has_more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let now = self.now();
        let items = rows
            .into_iter()
            .map(|row| record(row, now))
            .collect::<std::result::Result<_, _>>()?;
        Ok(CloverPage { items, has_more })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_long_and_redacted() {
        let token = CloverToken::generate(&mut rand::rng());
        assert!(token.expose().starts_with(TOKEN_PREFIX));
        assert_eq!(token.expose().len(), TOKEN_PREFIX.len() + TOKEN_RANDOM_LENGTH);
        assert_eq!(CloverToken::parse(token.expose()), Some(token.clone()));
        assert!(!format!("{token:?}").contains(&token.expose()[4..]));
    }

    #[test]
    fn token_parsing_refuses_what_cannot_be_a_token() {
        assert!(CloverToken::parse("clv_").is_none());
        assert!(CloverToken::parse("tok_abc").is_none());
        assert!(CloverToken::parse("clv_ab-c").is_none());
        assert!(CloverToken::parse(&format!("clv_{}", "a".repeat(MAX_TOKEN_LENGTH))).is_none());
        assert!(CloverToken::parse("clv_1TSxxxxxx2S71ECrva7").is_some());
    }
}
