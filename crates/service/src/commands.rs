//! The native API's commands: merchants, programs, cards, holds and reversals, as data, and
//! how each runs inside the writer's transaction: load what it touches (`steps.rs`), let the
//! domain decide, append the outcome. The other families (facades, transfers, wallets,
//! checkouts, webhook endpoints) have modules of their own of the same shape (`operation.rs`).

use async_trait::async_trait;
use giftd_domain::operations::{self, CardSnapshot, Decision, HoldSnapshot, HoldState};
use giftd_domain::{
    Amount, CardId, CardKind, CardNumber, CardState, Currency, DomainError, HoldId, MerchantId, NewProgram,
    Program, ProgramChanges, ProgramId, SecurityCode, TransactionId, TransactionType,
};
use giftd_store::{HoldRecord, StoreResult, TransactionRecord, WriteTx};

use crate::error::{Failure, Refusal};
use crate::ids;
use crate::operation::{Context, Operation};
use crate::steps::{
    self, IssuedCard, card_by_secret, card_now, load_card, load_hold, load_original, meta, program_of,
};
use crate::views::Card;
use crate::webhooks::{self, Before};

/// A command of the native API (and of the CLI, the hold sweeper and the facades that need no
/// more than the native operations).
#[derive(Debug, Clone)]
pub enum Command {
    /// A merchant and its first API key (`full`, named `default`).
    CreateMerchant {
        name: String,
        api_key: giftd_store::ApiKeyRecord,
        api_key_hash: Vec<u8>,
    },
    CreateProgram(NewProgram),
    /// `PATCH /v1/programs/{id}`: the changes `Program::amend` allows.
    UpdateProgram {
        program_id: ProgramId,
        changes: ProgramChanges,
    },
    IssueCard {
        program_id: ProgramId,
        kind: CardKind,
        amount: Option<Amount>,
        /// A pre-printed or migrated card: its number and security code.
        import: Option<(CardNumber, SecurityCode)>,
        reference: Option<String>,
    },
    LookupCard {
        number: CardNumber,
        security_code: SecurityCode,
    },
    Activate {
        card_id: CardId,
        amount: Option<Amount>,
        currency: Option<Currency>,
        reference: Option<String>,
    },
    Load {
        card_id: CardId,
        amount: Amount,
        currency: Option<Currency>,
        reference: Option<String>,
    },
    Redeem {
        card_id: CardId,
        amount: Amount,
        allow_partial: bool,
        currency: Option<Currency>,
        reference: Option<String>,
    },
    Cashout {
        card_id: CardId,
        currency: Option<Currency>,
        reference: Option<String>,
    },
    Freeze {
        card_id: CardId,
    },
    Unfreeze {
        card_id: CardId,
    },
    Deactivate {
        card_id: CardId,
        cashout: bool,
    },
    PlaceHold {
        card_id: CardId,
        amount: Amount,
        allow_partial: bool,
        currency: Option<Currency>,
        expires_in_seconds: i64,
        reference: Option<String>,
    },
    CaptureHold {
        hold_id: HoldId,
        amount: Option<i64>,
        currency: Option<Currency>,
        reference: Option<String>,
    },
    ReleaseHold {
        hold_id: HoldId,
    },
    /// The sweeper's: release a hold whose time has passed (nothing if it is no longer pending).
    ExpireHold {
        hold_id: HoldId,
    },
    /// The sweeper's: move the value left on an expired card to its program's breakage account
    /// (nothing if it no longer qualifies: value loaded or spent meanwhile, a hold placed).
    ExpireCard {
        card_id: CardId,
    },
    Refund {
        transaction_id: TransactionId,
        amount: Option<Amount>,
        currency: Option<Currency>,
        reference: Option<String>,
    },
    Void {
        transaction_id: TransactionId,
        currency: Option<Currency>,
        reference: Option<String>,
    },
}

/// What a native command produced, for the front-end to render. One exists per request and
/// lives only until rendered, so the size difference between variants does not matter.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    Merchant(MerchantId),
    Program(Program),
    /// A new card; the only time its number and security code leave giftd.
    IssuedCard(IssuedCard),
    Card(Card),
    Transaction(TransactionRecord),
    Hold(HoldRecord),
    /// A swept hold (`Command::ExpireHold`): nothing to tell.
    Nothing,
}

type Result<T> = std::result::Result<T, Failure>;

#[async_trait]
impl Operation for Command {
    type Outcome = Outcome;

    fn audit_objects(&self, outcome: &Outcome) -> Vec<String> {
        match outcome {
            Outcome::Merchant(id) => vec![id.to_string()],
            Outcome::Program(program) => vec![program.id.to_string()],
            Outcome::IssuedCard(issued) => std::iter::once(issued.card.snapshot.id.to_string())
                .chain(issued.transaction.iter().map(|t| t.id.to_string()))
                .collect(),
            Outcome::Card(card) => vec![card.snapshot.id.to_string()],
            Outcome::Transaction(transaction) => {
                vec![transaction.card_id.to_string(), transaction.id.to_string()]
            }
            Outcome::Hold(hold) => vec![hold.snapshot.card_id.to_string(), hold.snapshot.id.to_string()],
            Outcome::Nothing => Vec::new(),
        }
    }

    fn affinity(&self) -> Option<&str> {
        match self {
            Command::Activate { card_id, .. }
            | Command::Load { card_id, .. }
            | Command::Redeem { card_id, .. }
            | Command::Cashout { card_id, .. }
            | Command::Freeze { card_id }
            | Command::Unfreeze { card_id }
            | Command::Deactivate { card_id, .. }
            | Command::PlaceHold { card_id, .. }
            | Command::ExpireCard { card_id } => Some(card_id.as_str()),
            Command::CaptureHold { hold_id, .. }
            | Command::ReleaseHold { hold_id }
            | Command::ExpireHold { hold_id } => Some(hold_id.as_str()),
            Command::Refund { transaction_id, .. } | Command::Void { transaction_id, .. } => {
                Some(transaction_id.as_str())
            }
            Command::CreateMerchant { .. }
            | Command::CreateProgram(_)
            | Command::UpdateProgram { .. }
            | Command::IssueCard { .. }
            | Command::LookupCard { .. } => None,
        }
    }

    fn batch_reads(&self) -> Option<(&CardId, bool)> {
        match self {
            Command::Redeem { card_id, .. }
            | Command::PlaceHold { card_id, .. }
            | Command::Cashout { card_id, .. } => Some((card_id, false)),
            Command::Load { card_id, .. } | Command::Activate { card_id, .. } => Some((card_id, true)),
            Command::CreateMerchant { .. }
            | Command::CreateProgram(_)
            | Command::UpdateProgram { .. }
            | Command::IssueCard { .. }
            | Command::LookupCard { .. }
            | Command::Freeze { .. }
            | Command::Unfreeze { .. }
            | Command::Deactivate { .. }
            | Command::CaptureHold { .. }
            | Command::ReleaseHold { .. }
            | Command::ExpireHold { .. }
            | Command::ExpireCard { .. }
            | Command::Refund { .. }
            | Command::Void { .. } => None,
        }
    }

    async fn execute(&self, tx: &mut dyn WriteTx, cx: &Context<'_>) -> Result<Outcome> {
        match self {
            Command::CreateMerchant {
                name,
                api_key,
                api_key_hash,
            } => {
                tx.insert_merchant(cx.merchant, name, cx.now).await?;
                tx.insert_api_key(api_key, api_key_hash).await?;
                Ok(Outcome::Merchant(cx.merchant.clone()))
            }
            Command::CreateProgram(new) => {
                let program = new.clone().validate(ids::program(), cx.now)?;
                tx.insert_program(cx.merchant, &program).await?;
                Ok(Outcome::Program(program))
            }
            Command::UpdateProgram { program_id, changes } => {
                let program = tx
                    .program(cx.merchant, program_id)
                    .await?
                    .ok_or(Refusal::NotFound("program"))?;
                let amended = program.amend(changes)?;
                tx.update_program(cx.merchant, &amended).await?;
                Ok(Outcome::Program(amended))
            }
            Command::IssueCard {
                program_id,
                kind,
                amount,
                import,
                reference,
            } => Ok(Outcome::IssuedCard(
                steps::issue_card(tx, cx, program_id, *kind, *amount, import.as_ref(), reference).await?,
            )),
            Command::LookupCard {
                number,
                security_code,
            } => lookup_card(tx, cx, number, security_code).await,
            Command::Activate {
                card_id,
                amount,
                currency,
                reference,
            } => {
                let card = load_card(tx, cx, card_id).await?;
                operations::check_currency(&card, *currency)?;
                let program = program_of(tx, cx, &card).await?;
                let decision = operations::activate(&program, &card, *amount, cx.now)?;
                transaction(tx, cx, &card, &decision, reference.clone(), None, None).await
            }
            Command::Load {
                card_id,
                amount,
                currency,
                reference,
            } => {
                let card = load_card(tx, cx, card_id).await?;
                let program = program_of(tx, cx, &card).await?;
                let decision = operations::load(&program, &card, *amount, *currency, cx.now)?;
                transaction(tx, cx, &card, &decision, reference.clone(), None, None).await
            }
            Command::Redeem {
                card_id,
                amount,
                allow_partial,
                currency,
                reference,
            } => {
                let card = load_card(tx, cx, card_id).await?;
                let decision = operations::redeem(&card, *amount, *allow_partial, *currency, cx.now)?;
                transaction(tx, cx, &card, &decision, reference.clone(), None, None).await
            }
            Command::Cashout {
                card_id,
                currency,
                reference,
            } => {
                let card = load_card(tx, cx, card_id).await?;
                operations::check_currency(&card, *currency)?;
                let decision = operations::cashout(&card)?;
                transaction(tx, cx, &card, &decision, reference.clone(), None, None).await
            }
            Command::Freeze { card_id } => change_state(tx, cx, card_id, operations::freeze).await,
            Command::Unfreeze { card_id } => change_state(tx, cx, card_id, operations::unfreeze).await,
            Command::Deactivate { card_id, cashout } => deactivate(tx, cx, card_id, *cashout).await,
            Command::PlaceHold {
                card_id,
                amount,
                allow_partial,
                currency,
                expires_in_seconds,
                reference,
            } => {
                let card = load_card(tx, cx, card_id).await?;
                let decision = operations::place_hold(&card, *amount, *allow_partial, *currency, cx.now)?;
                let hold = HoldSnapshot {
                    id: ids::hold(),
                    card_id: card.id.clone(),
                    amount: decision.amount,
                    state: HoldState::Pending,
                    expires_at: cx.now.plus_seconds(*expires_in_seconds),
                };
                let meta = meta(cx, reference.clone(), None, Some(hold.id.clone()));
                tx.append(cx.merchant, &card, &decision, &meta).await?;
                tx.insert_hold(cx.merchant, &hold, &meta.id, cx.now).await?;
                Ok(Outcome::Hold(HoldRecord {
                    merchant_id: cx.merchant.clone(),
                    snapshot: hold,
                    captured_amount: 0,
                    created_at: cx.now,
                }))
            }
            Command::CaptureHold {
                hold_id,
                amount,
                currency,
                reference,
            } => {
                let (card, hold) = load_hold(tx, cx, hold_id).await?;
                steps::refuse_checkout_hold(tx, cx, &card, hold_id).await?;
                operations::check_currency(&card, *currency)?;
                let decision = operations::capture(&card, &hold.snapshot, *amount, cx.now)?;
                let state = if decision.amount > 0 {
                    HoldState::Captured
                } else {
                    HoldState::Released
                };
                tx.finish_hold(hold_id, state, decision.amount, cx.now).await?;
                transaction(
                    tx,
                    cx,
                    &card,
                    &decision,
                    reference.clone(),
                    None,
                    Some(hold_id.clone()),
                )
                .await
            }
            Command::ReleaseHold { hold_id } => {
                let (card, hold) = load_hold(tx, cx, hold_id).await?;
                steps::refuse_checkout_hold(tx, cx, &card, hold_id).await?;
                let decision = operations::release_requested(&card, &hold.snapshot, cx.now)?;
                tx.finish_hold(hold_id, HoldState::Released, 0, cx.now).await?;
                steps::append(tx, cx, &card, &decision, None, None, Some(hold_id.clone())).await?;
                Ok(Outcome::Hold(HoldRecord {
                    snapshot: HoldSnapshot {
                        state: HoldState::Released,
                        ..hold.snapshot
                    },
                    ..hold
                }))
            }
            Command::ExpireHold { hold_id } => {
                // Loading the card expires every due hold of it, this one included.
                let hold = tx
                    .hold(cx.merchant, hold_id)
                    .await?
                    .ok_or(Refusal::NotFound("hold"))?;
                load_card(tx, cx, &hold.snapshot.card_id).await?;
                Ok(Outcome::Nothing)
            }
            Command::ExpireCard { card_id } => {
                let card = load_card(tx, cx, card_id).await?;
                let program = steps::program_of(tx, cx, &card).await?;
                match operations::expire(&program, &card, cx.now) {
                    Ok(decision) => transaction(tx, cx, &card, &decision, None, None, None).await,
                    // It no longer qualifies: the sweeper leaves it.
                    Err(_) => Ok(Outcome::Nothing),
                }
            }
            Command::Refund {
                transaction_id,
                amount,
                currency,
                reference,
            } => {
                let (card, original) = load_original(tx, cx, transaction_id).await?;
                operations::check_currency(&card, *currency)?;
                let decision = operations::refund(&card, &original, *amount)?;
                reversal(tx, cx, &card, &decision, reference, original.id).await
            }
            Command::Void {
                transaction_id,
                currency,
                reference,
            } => {
                let (card, original) = load_original(tx, cx, transaction_id).await?;
                operations::check_currency(&card, *currency)?;
                let decision = operations::void(&card, &original)?;
                reversal(tx, cx, &card, &decision, reference, original.id).await
            }
        }
    }

    async fn events(
        &self,
        tx: &mut dyn WriteTx,
        cx: &Context<'_>,
        outcome: &Outcome,
        _: Before,
    ) -> StoreResult<()> {
        match outcome {
            Outcome::IssuedCard(issued) => {
                webhooks::transactions(tx, cx, issued.transaction.as_slice()).await
            }
            Outcome::Transaction(t) => webhooks::transactions(tx, cx, std::slice::from_ref(t)).await,
            Outcome::Hold(hold) => {
                // A capture answers with its hold; the capture's transaction is the event.
                if hold.snapshot.state == HoldState::Captured
                    && let Some(t) = tx
                        .transaction_of_hold(
                            cx.merchant,
                            &hold.snapshot.card_id,
                            &hold.snapshot.id,
                            TransactionType::Capture,
                        )
                        .await?
                    && t.created_at == cx.now
                {
                    return webhooks::transactions(tx, cx, &[t]).await;
                }
                Ok(())
            }
            Outcome::Merchant(_) | Outcome::Program(_) | Outcome::Card(_) | Outcome::Nothing => Ok(()),
        }
    }

    async fn after_refusal(
        &self,
        tx: &mut dyn WriteTx,
        cx: &Context<'_>,
        refusal: &Refusal,
    ) -> StoreResult<()> {
        match self {
            Command::LookupCard { number, .. } => steps::count_failed_secret(tx, cx, number, refusal).await,
            _ => Ok(()),
        }
    }
}

/// Appends a refund or void of `original` and answers with its transaction.
async fn reversal(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    card: &CardSnapshot,
    decision: &Decision,
    reference: &Option<String>,
    original: TransactionId,
) -> Result<Outcome> {
    transaction(tx, cx, card, decision, reference.clone(), Some(original), None).await
}

/// Appends a decision about `card` and answers with its transaction.
async fn transaction(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    card: &CardSnapshot,
    decision: &Decision,
    reference: Option<String>,
    reverses: Option<TransactionId>,
    hold_id: Option<HoldId>,
) -> Result<Outcome> {
    Ok(Outcome::Transaction(
        steps::append(tx, cx, card, decision, reference, reverses, hold_id).await?,
    ))
}

async fn change_state(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    card_id: &CardId,
    decide: fn(&CardSnapshot) -> std::result::Result<CardState, DomainError>,
) -> Result<Outcome> {
    let card = load_card(tx, cx, card_id).await?;
    let state = decide(&card)?;
    tx.set_card_state(&card.id, card.state, state, cx.now).await?;
    Ok(Outcome::Card(card_now(tx, cx, card_id).await?))
}

async fn deactivate(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    card_id: &CardId,
    cashout: bool,
) -> Result<Outcome> {
    let card = load_card(tx, cx, card_id).await?;
    match operations::deactivate(&card, cashout)? {
        Some(decision) => {
            for hold in tx.pending_holds(&card.id, None).await? {
                tx.finish_hold(&hold.id, HoldState::Released, 0, cx.now).await?;
            }
            let meta = meta(cx, None, None, None);
            tx.append(cx.merchant, &card, &decision, &meta).await?;
        }
        None => {
            tx.set_card_state(&card.id, card.state, CardState::Closed, cx.now)
                .await?
        }
    }
    Ok(Outcome::Card(card_now(tx, cx, card_id).await?))
}

async fn lookup_card(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    number: &CardNumber,
    security_code: &SecurityCode,
) -> Result<Outcome> {
    let card = card_by_secret(tx, cx, number, security_code).await?;
    // Expire due holds so the answer shows what is really available.
    load_card(tx, cx, &card.snapshot.id).await?;
    Ok(Outcome::Card(card_now(tx, cx, &card.snapshot.id).await?))
}
