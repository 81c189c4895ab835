//! The Clover Gift Card API's use-cases, run like every command inside the writer's
//! transaction: card tokens (`clv_...`, stored only as a keyed hash), activation by promotion
//! code or token, reloads, balance inquiries, charges (redemptions, and multi-locks, which are
//! giftd holds numbered per card), captures, refunds and voids, and cash-outs.
//!
//! This module decides what a Clover request means in giftd's terms and asks the domain to
//! decide the rest; it knows nothing of Clover's wire format (that is `giftd-api`'s `clover/`).
//! Cards are always locked (loaded) before anything about them is decided; a token, a
//! transaction or a hold is read first only to learn which card to lock.

use std::fmt;

use async_trait::async_trait;
use giftd_domain::operations::{self, CardSnapshot, Decision, HoldSnapshot, HoldState};
use giftd_domain::{
    Amount, CardId, CardKind, CardNumber, Currency, DomainError, HoldId, Program, SecurityCode,
    TransactionId, TransactionType,
};
use giftd_store::{StoreError, StoreResult, TransactionMeta, TransactionRecord, WriteTx};
use rand::{Rng, RngExt};

use crate::error::{Failure, Refusal};
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
    let refunded = refund
        .reverses
        .clone()
        .ok_or_else(|| corrupt(format!("refund {} reverses nothing", refund.id)))?;
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
