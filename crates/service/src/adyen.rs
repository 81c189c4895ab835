//! The use-cases of the Adyen facades (the Terminal API over cloud `/sync`, and the Stored
//! Value API v46), run like every command inside the writer's transaction: balance inquiries,
//! activations, loads, unloads, payments, cash-outs that close a card, merchandise returns,
//! reversals and voids, issuing virtual cards, deactivation, and merging one card's balance
//! into another (through giftd's own merge in `transfers.rs`).
//!
//! This module decides what an Adyen request means in giftd's terms and asks the domain to
//! decide the rest; it knows nothing of Adyen's wire format (that is `giftd-api`'s
//! `adyen_terminal/` and `adyen_stored_value/`). Two things are Adyen's own:
//!
//! - **Cards by number.** An authenticated terminal or merchant may name a card by its number
//!   alone (a swipe at the point of sale). When a security code (PIN) comes with it, it is
//!   checked, and a wrong one counts toward the number's lockout like any wrong code.
//! - **References.** Every answer carries a reference giftd draws ([`AdyenReference`]): the
//!   Terminal API's `POITransactionID`, the Stored Value API's `pspReference`. The transactions a
//!   request made are recorded under it, so that a later reversal or void can name them.
//!
//! Cards are always locked (loaded) before anything about them is decided; a reference is read
//! first only to learn which transactions, and so which cards, it names.

use std::fmt;

use async_trait::async_trait;
use giftd_domain::major_units::MajorUnits;
use giftd_domain::operations::{self, CardSnapshot, Decision};
use giftd_domain::{
    Amount, CardKind, CardNumber, CardState, Currency, DomainError, Program, ProgramId, SecurityCode,
    TransactionId, TransactionType, stored_value,
};
use giftd_store::{StoreError, StoreResult, TransactionRecord, WriteTx};
use rand::RngExt;

use crate::crypto::same_hash;
use crate::error::{Failure, Refusal};
use crate::operation::{Context, Operation};
use crate::steps::{self, IssuedCard};
use crate::transfers::{self, TransferCommand, TransferOutcome};
use crate::views::Card;
use crate::webhooks::{self, Before};

/// The idempotency scope of the Terminal API: keys are built from SaleID, POIID and ServiceID.
pub const TERMINAL_SCOPE: &str = "adyen_terminal";
/// The idempotency scope of the Stored Value API's `Idempotency-Key` header.
pub const STORED_VALUE_SCOPE: &str = "adyen_stored_value";
/// Adyen requires a ServiceID to be unique per terminal for 48 hours; giftd remembers each one
/// (and the answer it got) for that long, and no longer.
pub const SERVICE_ID_RETENTION_MILLIS: i64 = 48 * 3600 * 1000;
/// Adyen undoes a Stored Value API transaction (`voidTransaction`) or a Terminal API stored
/// value transaction (a `Reverse`) only within 24 hours of it; so does giftd.
pub const VOID_WINDOW_MILLIS: i64 = 24 * 3600 * 1000;
/// A reference is this many characters of `0-9A-Z`, like Adyen's pspReferences (about 82
/// bits of randomness, so references are never guessed).
pub const REFERENCE_LENGTH: usize = 16;
/// The longest reference a client may quote back; anything longer cannot be one of ours.
pub const MAX_QUOTED_REFERENCE_LENGTH: usize = 64;

/// A reference giftd gives an Adyen client for one request: a Terminal API
/// `POITransactionID.TransactionID` or a Stored Value API `pspReference`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AdyenReference(String);

impl AdyenReference {
    /// A new reference: [`REFERENCE_LENGTH`] random digits and upper-case letters.
    pub fn generate() -> Self {
        const SYMBOLS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut rng = rand::rng();
        Self(
            (0..REFERENCE_LENGTH)
                .map(|_| char::from(SYMBOLS[rng.random_range(0..SYMBOLS.len())]))
                .collect(),
        )
    }

    /// A reference as a client quotes it back: 1 to 64 printable ASCII characters. Whether
    /// giftd ever gave it is for the store to say.
    pub fn parse(value: &str) -> Option<Self> {
        let plausible = !value.is_empty()
            && value.len() <= MAX_QUOTED_REFERENCE_LENGTH
            && value.bytes().all(|b| b.is_ascii_graphic());
        plausible.then(|| Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AdyenReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AdyenReference({})", self.0)
    }
}

/// Which Adyen API a reference was given by: each resolves only its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdyenApi {
    Terminal,
    StoredValue,
}

impl AdyenApi {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Terminal => "terminal",
            Self::StoredValue => "stored_value",
        }
    }
}

pub use crate::steps::PresentedCard;

/// What identifies one request's transactions: the reference giftd answers with (drawn by the
/// caller before the command runs, so that a refusal carries one too) and the client's own
/// reference (`SaleTransactionID.TransactionID`, or the Stored Value API's `reference`), kept
/// as the transactions' `reference`.
#[derive(Debug, Clone)]
pub struct Tag {
    pub reference: AdyenReference,
    pub merchant_reference: Option<String>,
}

/// One entry of a Terminal API StoredValueRequest.
#[derive(Debug, Clone)]
pub enum StoredValueItem {
    /// Activate an inactive card, with its first value when `amount` is given.
    Activate {
        card: PresentedCard,
        amount: Option<Amount>,
        currency: Option<Currency>,
    },
    Load {
        card: PresentedCard,
        amount: Amount,
        currency: Currency,
    },
    /// Pay out `amount` (all that is available when `None`): a cash-out.
    Unload {
        card: PresentedCard,
        amount: Option<Amount>,
        currency: Option<Currency>,
    },
    /// Void an earlier Activate, Load or Unload named by the `POITransactionID` giftd gave it.
    /// `card` picks the transaction when that request had several; `amount`, when given, must
    /// be the original's.
    Reverse {
        original: AdyenReference,
        card: Option<PresentedCard>,
        amount: Option<Amount>,
    },
}

/// How `issue` picks the program of the new card.
#[derive(Debug, Clone)]
pub enum IssueProgram {
    /// The program with this promotion code (the request's `giftCardPromoCode`).
    PromotionCode(String),
    /// The program the facade chose (see [`crate::Service::adyen_issue_program`]).
    Program(ProgramId),
}

/// An Adyen request, parsed.
#[derive(Debug, Clone)]
pub enum AdyenCommand {
    /// Terminal API BalanceInquiry; Stored Value API checkBalance.
    Balance { card: PresentedCard },
    /// Terminal API StoredValueRequest: every item in order, all of them or none.
    StoredValue { tag: Tag, items: Vec<StoredValueItem> },
    /// Terminal API PaymentRequest, PaymentType Normal: a redemption; with `allow_partial`
    /// (`tenderOption=AllowPartialAuthorisation`), what is available when that is less.
    Payment {
        tag: Tag,
        card: PresentedCard,
        amount: Amount,
        currency: Currency,
        allow_partial: bool,
    },
    /// Terminal API PaymentRequest, PaymentType Normal, with `redemptionType` `cashback` or
    /// `cashback|deactivate`: pay out the card's whole available value, `amount`, and close the
    /// card, in one `cashout` (`stored_value::cash_out_and_close`; a partial amount is refused).
    CashBack {
        tag: Tag,
        card: PresentedCard,
        amount: Amount,
        currency: Currency,
    },
    /// Terminal API PaymentRequest, PaymentType Refund (an unreferenced refund), and Stored
    /// Value API load with `loadType: merchandiseReturn`: value credited for returned goods.
    MerchandiseReturn {
        api: AdyenApi,
        tag: Tag,
        card: PresentedCard,
        amount: Amount,
        currency: Currency,
    },
    /// Terminal API ReversalRequest: reverse a payment or an unreferenced refund, whole or
    /// `amount` of it. The amount is in major units because the request carries no currency:
    /// it is the original's, known only once the original is found.
    ReversePayment {
        tag: Tag,
        original: AdyenReference,
        amount: Option<MajorUnits>,
    },
    /// Stored Value API issue: a new virtual card, active, with `amount` (or the program's one
    /// denomination) on it.
    Issue {
        tag: Tag,
        program: IssueProgram,
        amount: Option<Amount>,
        currency: Option<Currency>,
    },
    /// Stored Value API changeStatus `active`.
    Activate {
        tag: Tag,
        card: PresentedCard,
        amount: Option<Amount>,
        currency: Option<Currency>,
    },
    /// Stored Value API changeStatus `inactive`, and a Terminal API PaymentRequest with
    /// `redemptionType` `deactivate`: the card is closed for good. A card that still holds value
    /// is refused (cash it out first).
    Deactivate { tag: Tag, card: PresentedCard },
    /// Stored Value API load (`loadType` absent or `load`).
    Load {
        tag: Tag,
        card: PresentedCard,
        amount: Amount,
        currency: Currency,
    },
    /// Stored Value API voidTransaction: void every transaction the pspReference names.
    VoidTransaction { tag: Tag, original: AdyenReference },
    /// Stored Value API mergeBalance: all that is available on `source` moves onto `target`,
    /// and `source` ends closed: giftd's merge (`transfers.rs`), one journal entry.
    Merge {
        tag: Tag,
        target: PresentedCard,
        source: PresentedCard,
    },
}

impl AdyenCommand {
    /// Every card the request presents, for the lockout count after a refusal.
    fn presented(&self) -> Vec<&PresentedCard> {
        match self {
            Self::Balance { card }
            | Self::Payment { card, .. }
            | Self::CashBack { card, .. }
            | Self::MerchandiseReturn { card, .. }
            | Self::Activate { card, .. }
            | Self::Deactivate { card, .. }
            | Self::Load { card, .. } => vec![card],
            Self::StoredValue { items, .. } => items
                .iter()
                .filter_map(|item| match item {
                    StoredValueItem::Activate { card, .. }
                    | StoredValueItem::Load { card, .. }
                    | StoredValueItem::Unload { card, .. } => Some(card),
                    StoredValueItem::Reverse { card, .. } => card.as_ref(),
                })
                .collect(),
            Self::Merge { target, source, .. } => vec![target, source],
            Self::ReversePayment { .. } | Self::Issue { .. } | Self::VoidTransaction { .. } => Vec::new(),
        }
    }
}

/// One thing a request did: the transaction written (`None` when it moved no value, e.g. an
/// empty card closed) and the card afterwards.
#[derive(Debug, Clone)]
pub struct AdyenMovement {
    pub transaction: Option<TransactionRecord>,
    pub card: Card,
}

#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum AdyenOutcome {
    /// A balance, read under the card's lock after its due holds were released.
    Balance { card: Card },
    /// A request that changed something: what each of its items (or its one operation) did,
    /// in order, under `reference`.
    Done {
        reference: AdyenReference,
        movements: Vec<AdyenMovement>,
        /// A new card: the only time its number and security code leave giftd.
        issued: Option<(CardNumber, SecurityCode)>,
    },
}

type Result<T> = std::result::Result<T, Failure>;

fn corrupt(what: String) -> Failure {
    Failure::Store(StoreError::Corrupt(what))
}

fn not_reversible(reason: &str) -> Failure {
    DomainError::NotReversible {
        reason: reason.to_owned(),
    }
    .into()
}

/// A cash-out that closed its card (a Terminal API cashback) is final: giftd never reopens a
/// closed card (closed is the end of a card's life everywhere in giftd), and the value has left
/// as cash.
fn cash_out_closed_the_card() -> Failure {
    not_reversible("the cash-out closed the card, and a closed card is never reopened")
}

fn invalid(param: &'static str, message: &str) -> Failure {
    Refusal::Invalid {
        param,
        message: message.to_owned(),
    }
    .into()
}

#[async_trait]
impl Operation for AdyenCommand {
    type Outcome = AdyenOutcome;

    async fn execute(&self, tx: &mut dyn WriteTx, cx: &Context<'_>) -> Result<AdyenOutcome> {
        execute(tx, cx, self).await
    }

    async fn events(
        &self,
        tx: &mut dyn WriteTx,
        cx: &Context<'_>,
        outcome: &AdyenOutcome,
        _: Before,
    ) -> StoreResult<()> {
        match outcome {
            AdyenOutcome::Done { movements, .. } => {
                let transactions: Vec<TransactionRecord> =
                    movements.iter().filter_map(|m| m.transaction.clone()).collect();
                webhooks::transactions(tx, cx, &transactions).await
            }
            AdyenOutcome::Balance { .. } => Ok(()),
        }
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

async fn execute(tx: &mut dyn WriteTx, cx: &Context<'_>, command: &AdyenCommand) -> Result<AdyenOutcome> {
    let outcome = match command {
        AdyenCommand::Balance { card } => {
            let card = steps::presented_card(tx, cx, card).await?;
            AdyenOutcome::Balance {
                card: card_record(tx, cx, &card).await?,
            }
        }
        AdyenCommand::StoredValue { tag, items } => {
            let mut movements = Vec::with_capacity(items.len());
            for item in items {
                movements.push(stored_value_item(tx, cx, tag, item).await?);
            }
            done(tag, movements, None)
        }
        AdyenCommand::Payment {
            tag,
            card,
            amount,
            currency,
            allow_partial,
        } => {
            let card = steps::presented_card(tx, cx, card).await?;
            let decision = operations::redeem(&card, *amount, *allow_partial, Some(*currency), cx.now)?;
            let movement = append(tx, cx, AdyenApi::Terminal, tag, &card, &decision, None).await?;
            done(tag, vec![movement], None)
        }
        AdyenCommand::CashBack {
            tag,
            card,
            amount,
            currency,
        } => {
            let card = steps::presented_card(tx, cx, card).await?;
            let decision = stored_value::cash_out_and_close(&card, *amount, Some(*currency))?;
            let movement = append(tx, cx, AdyenApi::Terminal, tag, &card, &decision, None).await?;
            done(tag, vec![movement], None)
        }
        AdyenCommand::MerchandiseReturn {
            api,
            tag,
            card,
            amount,
            currency,
        } => {
            let card = steps::presented_card(tx, cx, card).await?;
            let program = steps::program_of(tx, cx, &card).await?;
            let decision =
                stored_value::merchandise_return(&program, &card, *amount, Some(*currency), cx.now)?;
            let movement = append(tx, cx, *api, tag, &card, &decision, None).await?;
            done(tag, vec![movement], None)
        }
        AdyenCommand::ReversePayment {
            tag,
            original,
            amount,
        } => {
            let movement = reverse_payment(tx, cx, tag, original, *amount).await?;
            done(tag, vec![movement], None)
        }
        AdyenCommand::Issue {
            tag,
            program,
            amount,
            currency,
        } => issue(tx, cx, tag, program, *amount, *currency).await?,
        AdyenCommand::Activate {
            tag,
            card,
            amount,
            currency,
        } => {
            let movement = activate(tx, cx, AdyenApi::StoredValue, tag, card, *amount, *currency).await?;
            done(tag, vec![movement], None)
        }
        AdyenCommand::Deactivate { tag, card } => {
            let card = steps::presented_card(tx, cx, card).await?;
            if operations::deactivate(&card, false)?.is_some() {
                return Err(corrupt(format!(
                    "card {} is not empty yet was deactivated",
                    card.id
                )));
            }
            tx.set_card_state(&card.id, card.state, giftd_domain::CardState::Closed, cx.now)
                .await?;
            let movement = AdyenMovement {
                transaction: None,
                card: card_record(tx, cx, &card).await?,
            };
            done(tag, vec![movement], None)
        }
        AdyenCommand::Load {
            tag,
            card,
            amount,
            currency,
        } => {
            let card = steps::presented_card(tx, cx, card).await?;
            let program = steps::program_of(tx, cx, &card).await?;
            let decision = operations::load(&program, &card, *amount, Some(*currency), cx.now)?;
            let movement = append(tx, cx, AdyenApi::StoredValue, tag, &card, &decision, None).await?;
            done(tag, vec![movement], None)
        }
        AdyenCommand::VoidTransaction { tag, original } => {
            let movements = void_transaction(tx, cx, tag, original).await?;
            done(tag, movements, None)
        }
        AdyenCommand::Merge { tag, target, source } => merge(tx, cx, tag, target, source).await?,
    };
    Ok(outcome)
}

fn done(
    tag: &Tag,
    movements: Vec<AdyenMovement>,
    issued: Option<(CardNumber, SecurityCode)>,
) -> AdyenOutcome {
    AdyenOutcome::Done {
        reference: tag.reference.clone(),
        movements,
        issued,
    }
}

/// The card presented, loaded (locked, its due holds released) for the rest of the
/// transaction. With a security code, the code must be the card's (a wrong one is counted by
/// [`after_refusal`]); without one, the number alone finds the card. Either way a number locked
/// by too many wrong codes is refused, and an unknown number is `InvalidCard`.
async fn card_record(tx: &mut dyn WriteTx, cx: &Context<'_>, card: &CardSnapshot) -> Result<Card> {
    tx.card(cx.merchant, &card.id)
        .await?
        .map(Card::from)
        .ok_or_else(|| corrupt(format!("card {} vanished inside its transaction", card.id)))
}

/// Appends a decision on `card` and records it under the request's reference.
async fn append(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    api: AdyenApi,
    tag: &Tag,
    card: &CardSnapshot,
    decision: &Decision,
    reverses: Option<TransactionId>,
) -> Result<AdyenMovement> {
    let meta = steps::meta(cx, tag.merchant_reference.clone(), reverses, None);
    let transaction = tx.append(cx.merchant, card, decision, &meta).await?;
    record(tx, cx, api, tag, &transaction).await?;
    Ok(AdyenMovement {
        transaction: Some(transaction),
        card: card_record(tx, cx, card).await?,
    })
}

async fn record(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    api: AdyenApi,
    tag: &Tag,
    transaction: &TransactionRecord,
) -> Result<()> {
    tx.insert_adyen_reference(
        cx.merchant,
        api.as_str(),
        tag.reference.as_str(),
        &transaction.id,
        cx.now,
    )
    .await?;
    Ok(())
}

async fn activate(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    api: AdyenApi,
    tag: &Tag,
    card: &PresentedCard,
    amount: Option<Amount>,
    currency: Option<Currency>,
) -> Result<AdyenMovement> {
    let card = steps::presented_card(tx, cx, card).await?;
    operations::check_currency(&card, currency)?;
    let program = steps::program_of(tx, cx, &card).await?;
    let decision = operations::activate(&program, &card, amount, cx.now)?;
    append(tx, cx, api, tag, &card, &decision, None).await
}

async fn stored_value_item(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    tag: &Tag,
    item: &StoredValueItem,
) -> Result<AdyenMovement> {
    let api = AdyenApi::Terminal;
    match item {
        StoredValueItem::Activate {
            card,
            amount,
            currency,
        } => activate(tx, cx, api, tag, card, *amount, *currency).await,
        StoredValueItem::Load {
            card,
            amount,
            currency,
        } => {
            let card = steps::presented_card(tx, cx, card).await?;
            let program = steps::program_of(tx, cx, &card).await?;
            let decision = operations::load(&program, &card, *amount, Some(*currency), cx.now)?;
            append(tx, cx, api, tag, &card, &decision, None).await
        }
        StoredValueItem::Unload {
            card,
            amount,
            currency,
        } => {
            let card = steps::presented_card(tx, cx, card).await?;
            let decision = stored_value::unload(&card, *amount, *currency)?;
            append(tx, cx, api, tag, &card, &decision, None).await
        }
        StoredValueItem::Reverse {
            original,
            card,
            amount,
        } => reverse_stored_value(tx, cx, tag, original, card.as_ref(), *amount).await,
    }
}

/// Voids one earlier Activate, Load or Unload of the Terminal API, within
/// [`VOID_WINDOW_MILLIS`].
async fn reverse_stored_value(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    tag: &Tag,
    original: &AdyenReference,
    card: Option<&PresentedCard>,
    amount: Option<Amount>,
) -> Result<AdyenMovement> {
    let mut candidates = tx
        .adyen_reference_transactions(cx.merchant, AdyenApi::Terminal.as_str(), original.as_str())
        .await?;
    // The card that was presented picks the transaction among several; it is checked (a code
    // with it must be right) but it is the original's card that is locked below.
    if let Some(card) = card {
        let presented = steps::presented_card(tx, cx, card).await?;
        candidates.retain(|t| t.card_id == presented.id);
    }
    let original = match candidates.as_slice() {
        [] => return Err(Refusal::NotFound("transaction").into()),
        [one] => one.clone(),
        _ => {
            return Err(invalid(
                "OriginalPOITransaction",
                "that transaction changed several cards; name the card to reverse with StoredValueAccountID",
            ));
        }
    };
    match original.transaction_type {
        TransactionType::Activation | TransactionType::Load | TransactionType::Cashout => {}
        TransactionType::Redemption | TransactionType::Refund => {
            return Err(not_reversible(
                "a payment or refund is reversed with a ReversalRequest, not a stored value Reverse",
            ));
        }
        TransactionType::Issue
        | TransactionType::Hold
        | TransactionType::Capture
        | TransactionType::Release
        | TransactionType::Void
        | TransactionType::TransferOut
        | TransactionType::TransferIn
        | TransactionType::MergeOut
        | TransactionType::MergeIn
        | TransactionType::Adjustment
        | TransactionType::Expiry => {
            return Err(not_reversible("only an Activate, Load or Unload can be reversed"));
        }
    }
    if cx.now.unix_millis() - original.created_at.unix_millis() >= VOID_WINDOW_MILLIS {
        return Err(not_reversible(
            "a stored value transaction can only be reversed within 24 hours",
        ));
    }
    if amount.is_some_and(|a| a.minor() != original.amount) {
        return Err(invalid(
            "ItemAmount",
            "a Reverse undoes the whole transaction: leave out ItemAmount or give all of it",
        ));
    }
    let (locked, snapshot) = steps::load_original(tx, cx, &original.id).await?;
    if snapshot.voided {
        return Err(not_reversible("the transaction has already been reversed"));
    }
    if snapshot.transaction_type == TransactionType::Cashout && locked.state == CardState::Closed {
        return Err(cash_out_closed_the_card());
    }
    let decision = operations::void(&locked, &snapshot)?;
    append(
        tx,
        cx,
        AdyenApi::Terminal,
        tag,
        &locked,
        &decision,
        Some(original.id),
    )
    .await
}

/// Reverses a payment (a redemption) or an unreferenced refund made through the Terminal API.
/// A payment reversed whole before any partial reversal is voided; a partial reversal (or the
/// rest after one) is a refund. An unreferenced refund is voided whole.
async fn reverse_payment(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    tag: &Tag,
    original: &AdyenReference,
    amount: Option<MajorUnits>,
) -> Result<AdyenMovement> {
    let transactions = tx
        .adyen_reference_transactions(cx.merchant, AdyenApi::Terminal.as_str(), original.as_str())
        .await?;
    let original = match transactions.as_slice() {
        [] => return Err(Refusal::NotFound("transaction").into()),
        [one] => one.clone(),
        _ => {
            return Err(not_reversible(
                "that is a stored value transaction, not a payment",
            ));
        }
    };
    let (card, snapshot) = steps::load_original(tx, cx, &original.id).await?;
    let amount = match amount {
        None => None,
        Some(major) => {
            // The request carries no currency: the amount is read in the original's.
            let minor = major
                .to_minor(card.currency)
                .map_err(|error| invalid("ReversedAmount", &error.to_string()))?;
            Some(
                Amount::new(minor)
                    .map_err(|_| invalid("ReversedAmount", "ReversedAmount must be more than zero"))?,
            )
        }
    };
    let decision = match original.transaction_type {
        TransactionType::Redemption => {
            let whole = amount.is_none_or(|a| a.minor() == snapshot.amount);
            if snapshot.voided {
                return Err(not_reversible("the payment has already been reversed"));
            }
            if whole && snapshot.refunded == 0 {
                operations::void(&card, &snapshot)?
            } else {
                operations::refund(&card, &snapshot, amount)?
            }
        }
        TransactionType::Refund => {
            if amount.is_some_and(|a| a.minor() != snapshot.amount) {
                return Err(invalid(
                    "ReversedAmount",
                    "a refund is reversed whole: leave out ReversedAmount or give all of it",
                ));
            }
            if snapshot.voided {
                return Err(not_reversible("the refund has already been reversed"));
            }
            operations::void(&card, &snapshot)?
        }
        TransactionType::Cashout if card.state == CardState::Closed => {
            return Err(cash_out_closed_the_card());
        }
        TransactionType::Issue
        | TransactionType::Activation
        | TransactionType::Load
        | TransactionType::Hold
        | TransactionType::Capture
        | TransactionType::Release
        | TransactionType::Void
        | TransactionType::Cashout
        | TransactionType::TransferOut
        | TransactionType::TransferIn
        | TransactionType::MergeOut
        | TransactionType::MergeIn
        | TransactionType::Adjustment
        | TransactionType::Expiry => {
            return Err(not_reversible(
                "only a payment can be reversed with a ReversalRequest; undo a stored value transaction with a StoredValueRequest Reverse",
            ));
        }
    };
    append(
        tx,
        cx,
        AdyenApi::Terminal,
        tag,
        &card,
        &decision,
        Some(original.id),
    )
    .await
}

/// Voids every transaction a Stored Value API pspReference names, newest first, within
/// [`VOID_WINDOW_MILLIS`].
async fn void_transaction(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    tag: &Tag,
    original: &AdyenReference,
) -> Result<Vec<AdyenMovement>> {
    let transactions = tx
        .adyen_reference_transactions(cx.merchant, AdyenApi::StoredValue.as_str(), original.as_str())
        .await?;
    let Some(first) = transactions.first() else {
        return Err(Refusal::NotFound("transaction").into());
    };
    if cx.now.unix_millis() - first.created_at.unix_millis() >= VOID_WINDOW_MILLIS {
        return Err(not_reversible("a transaction can only be voided within 24 hours"));
    }
    let mut movements = Vec::with_capacity(transactions.len());
    for original in transactions.iter().rev() {
        let (card, snapshot) = steps::load_original(tx, cx, &original.id).await?;
        if snapshot.voided {
            return Err(not_reversible("the transaction has already been voided"));
        }
        let decision = operations::void(&card, &snapshot)?;
        movements.push(
            append(
                tx,
                cx,
                AdyenApi::StoredValue,
                tag,
                &card,
                &decision,
                Some(original.id.clone()),
            )
            .await?,
        );
    }
    Ok(movements)
}

/// Moves the source's whole available value onto the target with giftd's merge, and records
/// both cards' transactions under the pspReference. Each card is found (and its security code
/// checked) first; the merge then locks both in id order, the order every multi-card
/// operation uses (a lock already held is taken again at no cost).
async fn merge(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    tag: &Tag,
    target: &PresentedCard,
    source: &PresentedCard,
) -> Result<AdyenOutcome> {
    let target = steps::presented_card(tx, cx, target).await?;
    let source = steps::presented_card(tx, cx, source).await?;
    let command = TransferCommand::Merge {
        card_id: target.id.clone(),
        source_card_ids: vec![source.id.clone()],
        reference: tag.merchant_reference.clone(),
    };
    let TransferOutcome::Merge {
        target,
        mut sources,
        transactions,
    } = transfers::execute(tx, cx, &command).await?
    else {
        return Err(corrupt(
            "a merge answered with something else than a merge".into(),
        ));
    };
    for transaction in &transactions {
        record(tx, cx, AdyenApi::StoredValue, tag, transaction).await?;
    }
    let (Some(source), [merge_out, merge_in]) = (sources.pop(), transactions.as_slice()) else {
        return Err(corrupt(
            "a merge of one source did not make two transactions".into(),
        ));
    };
    let movements = vec![
        AdyenMovement {
            transaction: Some(merge_out.clone()),
            card: source,
        },
        AdyenMovement {
            transaction: Some(merge_in.clone()),
            card: target,
        },
    ];
    Ok(done(tag, movements, None))
}

async fn issue(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    tag: &Tag,
    choice: &IssueProgram,
    amount: Option<Amount>,
    currency: Option<Currency>,
) -> Result<AdyenOutcome> {
    let program = issue_program(tx, cx, choice).await?;
    if let Some(currency) = currency
        && currency != program.currency
    {
        return Err(DomainError::CurrencyMismatch {
            card: program.currency.code(),
            requested: currency.code(),
        }
        .into());
    }
    // A program with one denomination preloads it, as some providers do; otherwise the card
    // starts with what was asked for, or empty.
    let amount = amount.or(match program.denominations.as_deref() {
        Some([only]) => Some(*only),
        _ => None,
    });
    let issued = steps::issue_card(
        tx,
        cx,
        &program.id,
        CardKind::Virtual,
        amount,
        None,
        &tag.merchant_reference,
    )
    .await?;
    let IssuedCard {
        card,
        number,
        security_code,
        transaction,
    } = issued;
    if let Some(transaction) = &transaction {
        record(tx, cx, AdyenApi::StoredValue, tag, transaction).await?;
    }
    Ok(done(
        tag,
        vec![AdyenMovement { transaction, card }],
        Some((number, security_code)),
    ))
}

async fn issue_program(tx: &mut dyn WriteTx, cx: &Context<'_>, choice: &IssueProgram) -> Result<Program> {
    match choice {
        IssueProgram::Program(id) => Ok(tx
            .program(cx.merchant, id)
            .await?
            .ok_or(Refusal::NotFound("program"))?),
        IssueProgram::PromotionCode(code) => {
            let mut programs = tx.programs_by_promotion_code(cx.merchant, code, 2).await?;
            match programs.len() {
                0 => Err(Refusal::NotFound("giftCardPromoCode").into()),
                1 => Ok(programs.remove(0)),
                _ => Err(invalid(
                    "giftCardPromoCode",
                    "several programs share this promotion code; give each program its own",
                )),
            }
        }
    }
}

/// What a refused Adyen command leaves behind: every security code presented with a number it
/// does not belong to counts toward that number's lockout, as a wrong code given to the native
/// lookup does. The codes are checked again here because the command's own reads were rolled
/// back with it, and a request may present several cards.
async fn after_refusal(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    command: &AdyenCommand,
    refusal: &Refusal,
) -> std::result::Result<(), StoreError> {
    if !matches!(refusal, Refusal::Domain(DomainError::InvalidCard)) {
        return Ok(());
    }
    for card in command.presented() {
        let Some(code) = &card.security_code else {
            continue;
        };
        let fingerprint = cx
            .keys
            .card_fingerprint(cx.merchant.as_str(), card.number.expose());
        let found = tx.card_by_fingerprint(cx.merchant, &fingerprint).await?;
        let card_id = found.as_ref().map_or("card_none", |c| c.snapshot.id.as_str());
        let presented = cx.keys.security_code_hash(card_id, code.expose());
        let right = found.is_some_and(|c| same_hash(&presented, &c.security_code_hash));
        if !right {
            let attempts = tx.attempts(cx.merchant, &fingerprint).await?;
            tx.put_attempts(cx.merchant, &fingerprint, &attempts.after_failure(cx.now))
                .await?;
        }
    }
    Ok(())
}

impl crate::Service {
    /// The program a Stored Value API `issue` without `giftCardPromoCode` uses: the merchant's
    /// one active program (in `currency`, when the request names one). `None` when there is no
    /// such program or more than one, and the client must say which with `giftCardPromoCode`.
    /// Read before the command runs: a program made inactive in between is refused by the
    /// issue itself (`Program::check_issuing`).
    pub async fn adyen_issue_program(
        &self,
        merchant: &giftd_domain::MerchantId,
        currency: Option<Currency>,
    ) -> std::result::Result<Option<ProgramId>, crate::ServiceError> {
        /// Programs read per page while looking.
        const PAGE: u32 = 100;
        let mut found: Option<ProgramId> = None;
        let mut cursor = None;
        loop {
            let page = giftd_store::Page { limit: PAGE, cursor };
            let programs = self.programs(merchant, &page).await?;
            for program in &programs {
                if program.active && currency.is_none_or(|c| c == program.currency) {
                    if found.is_some() {
                        return Ok(None);
                    }
                    found = Some(program.id.clone());
                }
            }
            if programs.len() < PAGE as usize {
                return Ok(found);
            }
            cursor = programs.last().map(|p| p.id.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_sixteen_upper_case_letters_and_digits() {
        let reference = AdyenReference::generate();
        assert_eq!(reference.as_str().len(), REFERENCE_LENGTH);
        assert!(
            reference
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        );
        assert_ne!(reference, AdyenReference::generate());
        assert_eq!(AdyenReference::parse(reference.as_str()), Some(reference));
    }

    #[test]
    fn a_quoted_reference_must_be_short_printable_text() {
        assert!(AdyenReference::parse("851564654294247B").is_some());
        assert!(AdyenReference::parse("oLkO001503399575001.9815033996072250").is_some());
        assert!(AdyenReference::parse("").is_none());
        assert!(AdyenReference::parse("a b").is_none());
        assert!(AdyenReference::parse(&"A".repeat(MAX_QUOTED_REFERENCE_LENGTH + 1)).is_none());
    }
}
