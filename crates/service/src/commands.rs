//! The commands: each mutating use-case as data, and how it runs inside the writer's
//! transaction: load what it touches, let the domain decide, append the outcome.
//!
//! A command never commits or answers by itself; `job.rs` wraps it with idempotency and
//! savepoints. Commands must only use the transaction (no other IO) so transactions stay short.

use giftd_domain::checkout::Checkout;
use giftd_domain::lockout::Attempts;
use giftd_domain::operations::{self, CardSnapshot, Decision, HoldSnapshot, HoldState, OriginalTransaction};
use giftd_domain::{
    Amount, CardId, CardKind, CardNumber, CardState, Currency, DomainError, HoldId, MerchantId, NewProgram,
    Program, ProgramId, SecurityCode, Timestamp, TransactionId,
};
use giftd_store::{CardRecord, HoldRecord, TransactionMeta, TransactionRecord, WriteTx};

use crate::adyen::{self, AdyenCommand, AdyenOutcome};
use crate::checkout::{self, CheckoutCommand};
use crate::clover::{self, CloverCommand, CloverOutcome};
use crate::crypto::{Keys, same_hash};
use crate::error::{Failure, Refusal};
use crate::ids;
use crate::transfers::{self, TransferCommand, TransferOutcome};
use crate::wallet::{self, WalletCommand, WalletOutcome};
use crate::webhooks::{self, Endpoint, EndpointCreation, WebhookSecret};

/// Attempts to draw an unused card number before giving up (a full number space).
const NUMBER_ATTEMPTS: usize = 8;

#[derive(Debug, Clone)]
pub enum Command {
    CreateMerchant {
        name: String,
        api_key_hash: Vec<u8>,
    },
    CreateProgram(NewProgram),
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
    /// A request of the Clover facade (`clover.rs`).
    Clover(CloverCommand),
    /// A request of the Adyen facades (`adyen.rs`).
    Adyen(AdyenCommand),
    /// Value between cards: transfers and merges (`transfers.rs`).
    Transfer(TransferCommand),
    /// Customer wallets, gifts, and card operations of the wallet facade (`wallet.rs`).
    Wallet(WalletCommand),
    /// Split-tender checkouts, one step per job (`checkout.rs`).
    Checkout(CheckoutCommand),
    /// Registers a webhook endpoint (`webhooks.rs`).
    CreateWebhookEndpoint(Box<EndpointCreation>),
    /// Makes a webhook delivery due now (`webhooks.rs`).
    RetryWebhookDelivery {
        id: String,
    },
}

impl Command {
    /// The object the command mostly locks, as the store's writer affinity: jobs on one card
    /// (or hold, or transaction) then run in one writer's transactions and never wait for each
    /// other's row locks. Commands across several cards or none name nothing.
    pub(crate) fn affinity(&self) -> Option<&str> {
        match self {
            Command::Activate { card_id, .. }
            | Command::Load { card_id, .. }
            | Command::Redeem { card_id, .. }
            | Command::Cashout { card_id, .. }
            | Command::Freeze { card_id }
            | Command::Unfreeze { card_id }
            | Command::Deactivate { card_id, .. }
            | Command::PlaceHold { card_id, .. } => Some(card_id.as_str()),
            Command::CaptureHold { hold_id, .. }
            | Command::ReleaseHold { hold_id }
            | Command::ExpireHold { hold_id } => Some(hold_id.as_str()),
            Command::Refund { transaction_id, .. } | Command::Void { transaction_id, .. } => {
                Some(transaction_id.as_str())
            }
            Command::CreateMerchant { .. }
            | Command::CreateProgram(_)
            | Command::IssueCard { .. }
            | Command::LookupCard { .. }
            | Command::Clover(_)
            | Command::Adyen(_)
            | Command::Transfer(_)
            | Command::Wallet(_)
            | Command::Checkout(_)
            | Command::CreateWebhookEndpoint(_)
            | Command::RetryWebhookDelivery { .. } => None,
        }
    }

    /// The card a command reads and changes, and whether it reads that card's program too,
    /// when that is all it reads: such a command may be decided in memory with others of its
    /// batch and written with them set-wise (the store's `batch.rs`). Should it need more once
    /// it runs (a card with holds to expire, say), it falls back to the per-job path by itself.
    pub(crate) fn batch_reads(&self) -> Option<(&CardId, bool)> {
        match self {
            Command::Redeem { card_id, .. }
            | Command::PlaceHold { card_id, .. }
            | Command::Cashout { card_id, .. } => Some((card_id, false)),
            Command::Load { card_id, .. } | Command::Activate { card_id, .. } => Some((card_id, true)),
            Command::CreateMerchant { .. }
            | Command::CreateProgram(_)
            | Command::IssueCard { .. }
            | Command::LookupCard { .. }
            | Command::Freeze { .. }
            | Command::Unfreeze { .. }
            | Command::Deactivate { .. }
            | Command::CaptureHold { .. }
            | Command::ReleaseHold { .. }
            | Command::ExpireHold { .. }
            | Command::Refund { .. }
            | Command::Void { .. }
            | Command::Clover(_)
            | Command::Adyen(_)
            | Command::Transfer(_)
            | Command::Wallet(_)
            | Command::Checkout(_)
            | Command::CreateWebhookEndpoint(_)
            | Command::RetryWebhookDelivery { .. } => None,
        }
    }
}

/// What a command produced, for the front-end to render. One exists per request and lives
/// only until rendered, so the size difference between variants does not matter.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    Merchant(MerchantId),
    Program(Program),
    /// A new card; the only time its number and security code leave giftd.
    IssuedCard {
        card: CardRecord,
        number: CardNumber,
        security_code: SecurityCode,
        transaction: Option<TransactionRecord>,
    },
    Card(CardRecord),
    Transaction(TransactionRecord),
    Hold(HoldRecord),
    Clover(CloverOutcome),
    Adyen(AdyenOutcome),
    Transfer(TransferOutcome),
    Wallet(WalletOutcome),
    /// A checkout's state after the step or request.
    Checkout(Box<Checkout>),
    /// Whether a placeholder answer was replaced (`CheckoutCommand::Seal`).
    Sealed(bool),
    /// A new webhook endpoint; the only time its signing secret leaves giftd.
    WebhookEndpoint {
        endpoint: Endpoint,
        secret: WebhookSecret,
    },
    /// A webhook delivery made due now.
    WebhookDeliveryRetried {
        id: String,
    },
    Nothing,
}

pub(crate) struct Context<'a> {
    pub keys: &'a Keys,
    pub merchant: &'a MerchantId,
    pub now: Timestamp,
}

type Result<T> = std::result::Result<T, Failure>;

pub(crate) async fn execute(tx: &mut dyn WriteTx, cx: &Context<'_>, command: &Command) -> Result<Outcome> {
    match command {
        Command::CreateMerchant { name, api_key_hash } => {
            tx.insert_merchant(cx.merchant, name, cx.now).await?;
            tx.insert_api_key(cx.merchant, api_key_hash, cx.now).await?;
            Ok(Outcome::Merchant(cx.merchant.clone()))
        }
        Command::CreateProgram(new) => {
            let program = new.clone().validate(ids::program(), cx.now)?;
            tx.insert_program(cx.merchant, &program).await?;
            Ok(Outcome::Program(program))
        }
        Command::IssueCard {
            program_id,
            kind,
            amount,
            import,
            reference,
        } => issue_card(tx, cx, program_id, *kind, *amount, import.as_ref(), reference).await,
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
            append(tx, cx, &card, &decision, reference.clone(), None, None).await
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
            append(tx, cx, &card, &decision, reference.clone(), None, None).await
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
            append(tx, cx, &card, &decision, reference.clone(), None, None).await
        }
        Command::Cashout {
            card_id,
            currency,
            reference,
        } => {
            let card = load_card(tx, cx, card_id).await?;
            operations::check_currency(&card, *currency)?;
            let decision = operations::cashout(&card)?;
            append(tx, cx, &card, &decision, reference.clone(), None, None).await
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
            refuse_checkout_hold(tx, cx, &card, hold_id).await?;
            operations::check_currency(&card, *currency)?;
            let decision = operations::capture(&card, &hold.snapshot, *amount, cx.now)?;
            let state = if decision.amount > 0 {
                HoldState::Captured
            } else {
                HoldState::Released
            };
            tx.finish_hold(hold_id, state, decision.amount, cx.now).await?;
            append(
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
            refuse_checkout_hold(tx, cx, &card, hold_id).await?;
            let decision = operations::release_requested(&card, &hold.snapshot, cx.now)?;
            tx.finish_hold(hold_id, HoldState::Released, 0, cx.now).await?;
            append(tx, cx, &card, &decision, None, None, Some(hold_id.clone())).await?;
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
        Command::Refund {
            transaction_id,
            amount,
            currency,
            reference,
        } => {
            let (card, original) = load_original(tx, cx, transaction_id).await?;
            operations::check_currency(&card, *currency)?;
            let decision = operations::refund(&card, &original, *amount)?;
            append(
                tx,
                cx,
                &card,
                &decision,
                reference.clone(),
                Some(original.id),
                None,
            )
            .await
        }
        Command::Void {
            transaction_id,
            currency,
            reference,
        } => {
            let (card, original) = load_original(tx, cx, transaction_id).await?;
            operations::check_currency(&card, *currency)?;
            let decision = operations::void(&card, &original)?;
            append(
                tx,
                cx,
                &card,
                &decision,
                reference.clone(),
                Some(original.id),
                None,
            )
            .await
        }
        Command::Clover(command) => clover::execute(tx, cx, command).await,
        Command::Adyen(command) => adyen::execute(tx, cx, command).await,
        Command::Transfer(command) => transfers::execute(tx, cx, command).await,
        Command::Wallet(command) => wallet::execute(tx, cx, command).await,
        Command::Checkout(command) => checkout::execute(tx, cx, command).await,
        Command::CreateWebhookEndpoint(creation) => webhooks::create_endpoint(tx, cx, creation).await,
        Command::RetryWebhookDelivery { id } => webhooks::retry_delivery(tx, cx, id).await,
    }
}

/// What a refused command leaves behind: a wrong security code is counted even though the
/// lookup's other writes are rolled back.
pub(crate) async fn after_refusal(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    command: &Command,
    refusal: &Refusal,
) -> std::result::Result<(), giftd_store::StoreError> {
    if let Command::Adyen(command) = command {
        return adyen::after_refusal(tx, cx, command, refusal).await;
    }
    if let Command::Checkout(command) = command {
        return checkout::after_refusal(tx, cx, command, refusal).await;
    }
    let number = match command {
        Command::LookupCard { number, .. } | Command::Clover(CloverCommand::CreateToken { number, .. }) => {
            Some(number)
        }
        Command::Wallet(command) => command.presented_number(),
        _ => None,
    };
    if let (Some(number), Refusal::Domain(DomainError::InvalidCard)) = (number, refusal) {
        let fingerprint = cx.keys.card_fingerprint(cx.merchant.as_str(), number.expose());
        let attempts = tx.attempts(cx.merchant, &fingerprint).await?;
        tx.put_attempts(cx.merchant, &fingerprint, &attempts.after_failure(cx.now))
            .await?;
    }
    Ok(())
}

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
        now: cx.now,
    }
}

async fn append(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    card: &CardSnapshot,
    decision: &Decision,
    reference: Option<String>,
    reverses: Option<TransactionId>,
    hold_id: Option<HoldId>,
) -> Result<Outcome> {
    let meta = meta(cx, reference, reverses, hold_id);
    Ok(Outcome::Transaction(
        tx.append(cx.merchant, card, decision, &meta).await?,
    ))
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
async fn refuse_checkout_hold(
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

async fn change_state(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    card_id: &CardId,
    decide: fn(&CardSnapshot) -> std::result::Result<CardState, DomainError>,
) -> Result<Outcome> {
    let card = load_card(tx, cx, card_id).await?;
    let state = decide(&card)?;
    tx.set_card_state(&card.id, card.state, state, cx.now).await?;
    reload_card(tx, cx, card_id).await
}

async fn reload_card(tx: &mut dyn WriteTx, cx: &Context<'_>, card_id: &CardId) -> Result<Outcome> {
    let record = tx
        .card(cx.merchant, card_id)
        .await?
        .ok_or(Refusal::NotFound("card"))?;
    Ok(Outcome::Card(record))
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
    reload_card(tx, cx, card_id).await
}

pub(crate) async fn issue_card(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    program_id: &ProgramId,
    kind: CardKind,
    amount: Option<Amount>,
    import: Option<&(CardNumber, SecurityCode)>,
    reference: &Option<String>,
) -> Result<Outcome> {
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
    let card = tx
        .card(cx.merchant, &card_id)
        .await?
        .ok_or(Refusal::NotFound("card"))?;
    Ok(Outcome::IssuedCard {
        card,
        number,
        security_code,
        transaction,
    })
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
    reload_card(tx, cx, &card.snapshot.id).await
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
