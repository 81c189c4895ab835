//! The steps operations are made of, shared by every family: load a card for a write (its due
//! holds expired first), its program, a hold, a transaction to reverse; find a card by its
//! number and security code under the lockout; issue a card; append a decision. Each takes the
//! writer's transaction and the command's [`Context`]; none commits or answers.

use giftd_domain::lockout::Attempts;
use giftd_domain::operations::{self, CardSnapshot, Decision, HoldState, OriginalTransaction};
use giftd_domain::{
    Amount, CardId, CardKind, CardNumber, DomainError, HoldId, Program, ProgramId, SecurityCode,
    TransactionId,
};
use giftd_store::{CardRecord, HoldRecord, StoreResult, TransactionMeta, TransactionRecord, WriteTx};

use crate::checkout;
use crate::crypto::same_hash;
use crate::error::{Failure, Refusal};
use crate::ids;
use crate::operation::Context;
use crate::views::Card;

/// Attempts to draw an unused card number before giving up (a full number space).
const NUMBER_ATTEMPTS: usize = 8;

type Result<T> = std::result::Result<T, Failure>;

/// A card as a terminal reads it or a shopper types it: its number and, when one was given,
/// its security code (PIN).
#[derive(Debug, Clone)]
pub struct PresentedCard {
    pub number: CardNumber,
    pub security_code: Option<SecurityCode>,
}

/// A card just issued: the only time its number and security code leave giftd.
#[derive(Debug, Clone)]
pub struct IssuedCard {
    pub card: Card,
    pub number: CardNumber,
    pub security_code: SecurityCode,
    /// The transaction that put its first value on it, if any.
    pub transaction: Option<TransactionRecord>,
}

/// A new ledger transaction's id and what it refers to.
pub(crate) fn meta(
    cx: &Context<'_>,
    reference: Option<String>,
    reverses: Option<TransactionId>,
    hold_id: Option<HoldId>,
) -> TransactionMeta {
    TransactionMeta {
        id: ids::transaction(),
        reference,
        reverses,
        hold_id,
        channel: cx.channel,
        now: cx.now,
    }
}

/// Appends a decision about `card` as one ledger transaction.
pub(crate) async fn append(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    card: &CardSnapshot,
    decision: &Decision,
    reference: Option<String>,
    reverses: Option<TransactionId>,
    hold_id: Option<HoldId>,
) -> Result<TransactionRecord> {
    let meta = meta(cx, reference, reverses, hold_id);
    Ok(tx.append(cx.merchant, card, decision, &meta).await?)
}

/// Loads a card for a write and first expires its holds that are due, so every decision is
/// taken on what is really available now.
pub(crate) async fn load_card(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    card_id: &CardId,
) -> Result<CardSnapshot> {
    let record = tx
        .card(cx.merchant, card_id)
        .await?
        .ok_or(Refusal::NotFound("card"))?;
    let mut card = record.snapshot;
    for hold in tx.pending_holds(&card.id, Some(cx.now)).await? {
        let decision = operations::release(&card, &hold);
        tx.finish_hold(&hold.id, HoldState::Expired, 0, cx.now).await?;
        let meta = meta(cx, None, None, Some(hold.id.clone()));
        let release = tx.append(cx.merchant, &card, &decision, &meta).await?;
        crate::webhooks::hold_expired(tx, cx, &hold, &release).await?;
        card.apply(&decision.card);
    }
    Ok(card)
}

/// The program of a card loaded for a write.
pub(crate) async fn program_of(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    card: &CardSnapshot,
) -> Result<Program> {
    tx.program(cx.merchant, &card.program_id).await?.ok_or_else(|| {
        Failure::Store(giftd_store::StoreError::Corrupt(format!(
            "card {} has no program",
            card.id
        )))
    })
}

/// A hold with its card loaded for a write (which may have just expired the hold).
pub(crate) async fn load_hold(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    hold_id: &HoldId,
) -> Result<(CardSnapshot, HoldRecord)> {
    let hold = tx
        .hold(cx.merchant, hold_id)
        .await?
        .ok_or(Refusal::NotFound("hold"))?;
    let card = load_card(tx, cx, &hold.snapshot.card_id).await?;
    // Loading the card may have just expired this very hold.
    let hold = tx
        .hold(cx.merchant, hold_id)
        .await?
        .ok_or(Refusal::NotFound("hold"))?;
    Ok((card, hold))
}

/// Refuses a capture or release outside its checkout of a hold a checkout placed.
pub(crate) async fn refuse_checkout_hold(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    card: &CardSnapshot,
    hold_id: &HoldId,
) -> Result<()> {
    let placed = tx
        .transaction_of_hold(
            cx.merchant,
            &card.id,
            hold_id,
            giftd_domain::TransactionType::Hold,
        )
        .await?;
    match placed {
        Some(placed) => checkout::refuse_outside(tx, cx, &placed, Some(hold_id)).await,
        None => Ok(()),
    }
}

/// A transaction to refund or void, with its card (locked) and what was reversed of it so far;
/// refused when a checkout owns it (`checkout::refuse_outside`).
pub(crate) async fn load_original(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    transaction_id: &TransactionId,
) -> Result<(CardSnapshot, OriginalTransaction)> {
    load_original_of(tx, cx, transaction_id, Reverser::Outside).await
}

/// Who reverses a transaction: the checkout that owns it may, others may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reverser {
    Checkout,
    Outside,
}

pub(crate) async fn load_original_of(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    transaction_id: &TransactionId,
    reverser: Reverser,
) -> Result<(CardSnapshot, OriginalTransaction)> {
    let original = tx
        .transaction(cx.merchant, transaction_id)
        .await?
        .ok_or(Refusal::NotFound("transaction"))?;
    match reverser {
        Reverser::Outside => checkout::refuse_outside(tx, cx, &original, None).await?,
        Reverser::Checkout => {}
    }
    let card = load_card(tx, cx, &original.card_id).await?;
    let (refunded, voided) = tx.reversal_totals(&original.id).await?;
    Ok((
        card,
        OriginalTransaction {
            id: original.id,
            card_id: original.card_id,
            transaction_type: original.transaction_type,
            amount: original.amount,
            refunded,
            voided,
        },
    ))
}

/// The card as it is after the command's writes, as front-ends see it.
pub(crate) async fn card_now(tx: &mut dyn WriteTx, cx: &Context<'_>, card_id: &CardId) -> Result<Card> {
    Ok(tx
        .card(cx.merchant, card_id)
        .await?
        .map(Card::from)
        .ok_or(Refusal::NotFound("card"))?)
}

/// Issues a card of `program_id`: an imported number and code, or new ones drawn.
pub(crate) async fn issue_card(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    program_id: &ProgramId,
    kind: CardKind,
    amount: Option<Amount>,
    import: Option<&(CardNumber, SecurityCode)>,
    reference: &Option<String>,
) -> Result<IssuedCard> {
    let program = tx
        .program(cx.merchant, program_id)
        .await?
        .ok_or(Refusal::NotFound("program"))?;
    let card_id = ids::card();
    let issued = operations::issue(&program, &card_id, kind, amount, cx.now)?;
    let (number, security_code, fingerprint) = match import {
        Some((number, code)) => {
            let fingerprint = cx.keys.card_fingerprint(cx.merchant.as_str(), number.expose());
            if tx.card_by_fingerprint(cx.merchant, &fingerprint).await?.is_some() {
                return Err(Refusal::CardNumberTaken.into());
            }
            (number.clone(), code.clone(), fingerprint)
        }
        None => {
            let mut drawn = None;
            for _ in 0..NUMBER_ATTEMPTS {
                let number =
                    CardNumber::generate(&program.number_prefix, program.number_length, &mut rand::rng());
                let fingerprint = cx.keys.card_fingerprint(cx.merchant.as_str(), number.expose());
                if tx.card_by_fingerprint(cx.merchant, &fingerprint).await?.is_none() {
                    drawn = Some((number, fingerprint));
                    break;
                }
            }
            let (number, fingerprint) = drawn.ok_or_else(|| {
                Refusal::Domain(DomainError::LimitExceeded {
                    reason: "the program's number space is exhausted; use a longer number_length".into(),
                })
            })?;
            let code = SecurityCode::generate(program.security_code_length, &mut rand::rng());
            (number, code, fingerprint)
        }
    };
    let snapshot = CardSnapshot {
        id: card_id.clone(),
        program_id: program.id.clone(),
        kind,
        state: issued.state,
        currency: program.currency,
        balance: 0,
        held: 0,
        expires_at: issued.expires_at,
    };
    tx.insert_card(&CardRecord {
        merchant_id: cx.merchant.clone(),
        snapshot: snapshot.clone(),
        closed_reason: None,
        last4: number.last4(),
        number_ciphertext: cx
            .keys
            .encrypt(number.expose().as_bytes(), card_id.as_str().as_bytes()),
        number_fingerprint: fingerprint,
        security_code_hash: cx
            .keys
            .security_code_hash(card_id.as_str(), security_code.expose()),
        created_at: cx.now,
    })
    .await?;
    let transaction = match &issued.value {
        Some(decision) => {
            let meta = meta(cx, reference.clone(), None, None);
            Some(tx.append(cx.merchant, &snapshot, decision, &meta).await?)
        }
        None => None,
    };
    let card = card_now(tx, cx, &card_id).await?;
    Ok(IssuedCard {
        card,
        number,
        security_code,
        transaction,
    })
}

/// The card with this number and security code, under the lockout rule: a locked number is
/// refused even with the right code, and unknown number and wrong code are refused alike
/// (`after_refusal` counts the failure). A success clears the number's failures.
pub(crate) async fn card_by_secret(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    number: &CardNumber,
    security_code: &SecurityCode,
) -> Result<CardRecord> {
    let fingerprint = cx.keys.card_fingerprint(cx.merchant.as_str(), number.expose());
    let attempts = tx.attempts(cx.merchant, &fingerprint).await?;
    if let Some(until) = attempts.locked_until(cx.now) {
        return Err(DomainError::CardLocked {
            locked_until_millis: until.unix_millis(),
        }
        .into());
    }
    let card = tx.card_by_fingerprint(cx.merchant, &fingerprint).await?;
    // Hash the code whether or not the card exists, so both failures cost the same.
    let card_id = card.as_ref().map_or("card_none", |c| c.snapshot.id.as_str());
    let presented = cx.keys.security_code_hash(card_id, security_code.expose());
    let card = match card {
        Some(card) if same_hash(&presented, &card.security_code_hash) => card,
        _ => return Err(DomainError::InvalidCard.into()),
    };
    if attempts != Attempts::default() {
        tx.put_attempts(cx.merchant, &fingerprint, &Attempts::default())
            .await?;
    }
    Ok(card)
}

/// Counts a wrong security code (or an unknown number) presented with `number` toward its
/// lockout; the command's own writes are rolled back, this one stays.
/// The card presented by its number, with its security code checked when one came (under
/// the lookup's lockout either way), its due holds expired.
pub(crate) async fn presented_card(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    card: &PresentedCard,
) -> Result<CardSnapshot> {
    let record = match &card.security_code {
        Some(code) => card_by_secret(tx, cx, &card.number, code).await?,
        None => {
            let fingerprint = cx
                .keys
                .card_fingerprint(cx.merchant.as_str(), card.number.expose());
            let attempts = tx.attempts(cx.merchant, &fingerprint).await?;
            if let Some(until) = attempts.locked_until(cx.now) {
                return Err(DomainError::CardLocked {
                    locked_until_millis: until.unix_millis(),
                }
                .into());
            }
            tx.card_by_fingerprint(cx.merchant, &fingerprint)
                .await?
                .ok_or(DomainError::InvalidCard)?
        }
    };
    load_card(tx, cx, &record.snapshot.id).await
}

pub(crate) async fn count_failed_secret(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    number: &CardNumber,
    refusal: &Refusal,
) -> StoreResult<()> {
    if let Refusal::Domain(DomainError::InvalidCard) = refusal {
        let fingerprint = cx.keys.card_fingerprint(cx.merchant.as_str(), number.expose());
        let attempts = tx.attempts(cx.merchant, &fingerprint).await?;
        tx.put_attempts(cx.merchant, &fingerprint, &attempts.after_failure(cx.now))
            .await?;
    }
    Ok(())
}
