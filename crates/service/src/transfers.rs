//! Moving value between cards: transfers (to an existing card or to a new one) and merges.
//! Every card involved is locked in id order before anything is decided, so two operations
//! over the same cards (A→B and B→A at once, the classic double-spend race) are serialized by
//! the database and can never deadlock each other; the domain then decides one balanced
//! journal entry with one leg per card, appended whole.

use async_trait::async_trait;
use giftd_domain::linked::{self, Linked};
use giftd_domain::operations::{self, CardSnapshot};
use giftd_domain::{Amount, CardId, CardKind, CardNumber, Currency, SecurityCode};
use giftd_store::{LegRef, StoreResult, TransactionRecord, WriteTx};

use crate::error::{Failure, Refusal};
use crate::ids;
use crate::operation::{Context, Operation};
use crate::steps::{IssuedCard, card_now, issue_card, load_card, program_of};
use crate::views::Card;
use crate::webhooks::{self, Before};

#[derive(Debug, Clone)]
pub enum TransferCommand {
    /// Move value from `card_id` to `to_card_id`, or to a new card of the same program.
    Transfer {
        card_id: CardId,
        to_card_id: Option<CardId>,
        amount: Option<Amount>,
        close_source: bool,
        currency: Option<Currency>,
        reference: Option<String>,
    },
    /// Move the whole available balance of every source into `card_id`; sources end closed.
    Merge {
        card_id: CardId,
        source_card_ids: Vec<CardId>,
        reference: Option<String>,
    },
}

#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per request, alive only until rendered
pub enum TransferOutcome {
    Transfer {
        source: Card,
        target: Card,
        /// The new card's number and security code, when the transfer created it.
        issued: Option<(CardNumber, SecurityCode)>,
        transfer_out: TransactionRecord,
        transfer_in: TransactionRecord,
    },
    Merge {
        target: Card,
        sources: Vec<Card>,
        /// One `merge_out` per source, then the target's `merge_in`.
        transactions: Vec<TransactionRecord>,
    },
}

type Result<T> = std::result::Result<T, Failure>;

impl TransferOutcome {
    /// Every transaction the transfer or merge appended.
    pub fn transactions(&self) -> Vec<TransactionRecord> {
        match self {
            TransferOutcome::Transfer {
                transfer_out,
                transfer_in,
                ..
            } => vec![transfer_out.clone(), transfer_in.clone()],
            TransferOutcome::Merge { transactions, .. } => transactions.clone(),
        }
    }
}

#[async_trait]
impl Operation for TransferCommand {
    type Outcome = TransferOutcome;

    async fn execute(&self, tx: &mut dyn WriteTx, cx: &Context<'_>) -> Result<TransferOutcome> {
        execute(tx, cx, self).await
    }

    async fn events(
        &self,
        tx: &mut dyn WriteTx,
        cx: &Context<'_>,
        outcome: &TransferOutcome,
        _: Before,
    ) -> StoreResult<()> {
        webhooks::transactions(tx, cx, &outcome.transactions()).await
    }
}

/// Runs a transfer or merge (also inside another family's command: Adyen's merge, the
/// wallet's transfer to a new card).
pub(crate) async fn execute(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    command: &TransferCommand,
) -> Result<TransferOutcome> {
    match command {
        TransferCommand::Transfer {
            card_id,
            to_card_id,
            amount,
            close_source,
            currency,
            reference,
        } => {
            transfer(
                tx,
                cx,
                card_id,
                to_card_id.as_ref(),
                *amount,
                *close_source,
                *currency,
                reference,
            )
            .await
        }
        TransferCommand::Merge {
            card_id,
            source_card_ids,
            reference,
        } => merge(tx, cx, card_id, source_card_ids, reference).await,
    }
}

/// Locks and loads the cards in id order (the one order every multi-card operation uses), and
/// returns them in the order asked.
pub(crate) async fn load_in_order(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    ids: &[&CardId],
) -> Result<Vec<CardSnapshot>> {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by(|a, b| ids[*a].cmp(ids[*b]));
    let mut loaded: Vec<Option<CardSnapshot>> = vec![None; ids.len()];
    for i in order {
        // A card named twice is loaded once; the domain refuses the duplicate.
        let already = loaded.iter().flatten().find(|c| &c.id == ids[i]).cloned();
        loaded[i] = Some(match already {
            Some(card) => card,
            None => load_card(tx, cx, ids[i]).await?,
        });
    }
    Ok(loaded
        .into_iter()
        .map(|c| c.expect("every index was loaded"))
        .collect())
}

/// Appends a linked decision: one transaction id per leg, all in one journal entry.
async fn append(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    linked: &Linked,
    reference: &Option<String>,
) -> Result<Vec<TransactionRecord>> {
    let metas: Vec<_> = linked
        .legs
        .iter()
        .map(|_| giftd_store::TransactionMeta {
            id: ids::transaction(),
            reference: reference.clone(),
            reverses: None,
            hold_id: None,
            channel: cx.channel,
            now: cx.now,
        })
        .collect();
    let legs: Vec<LegRef<'_>> = linked
        .legs
        .iter()
        .zip(&metas)
        .map(|(leg, meta)| LegRef {
            card: &leg.card,
            transaction_type: leg.transaction_type,
            amount: leg.amount,
            effect: &leg.effect,
            meta,
        })
        .collect();
    Ok(tx.append_entry(cx.merchant, &linked.entry, &legs).await?)
}

#[allow(clippy::too_many_arguments)]
async fn transfer(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    card_id: &CardId,
    to_card_id: Option<&CardId>,
    amount: Option<Amount>,
    close_source: bool,
    currency: Option<Currency>,
    reference: &Option<String>,
) -> Result<TransferOutcome> {
    let (source, target, issued) = match to_card_id {
        Some(to) => {
            let mut cards = load_in_order(tx, cx, &[card_id, to]).await?;
            let target = cards.pop().expect("two cards");
            let source = cards.pop().expect("two cards");
            (source, target, None)
        }
        None => {
            let source = load_card(tx, cx, card_id).await?;
            // Checked before a card is issued for it, so a refused transfer issues nothing.
            operations::check_currency(&source, currency)?;
            let IssuedCard {
                card,
                number,
                security_code,
                ..
            } = issue_card(tx, cx, &source.program_id, CardKind::Virtual, None, None, &None).await?;
            (source, card.snapshot, Some((number, security_code)))
        }
    };
    operations::check_currency(&source, currency)?;
    let program = program_of(tx, cx, &target).await?;
    let linked = linked::transfer(
        &source,
        &target,
        &program,
        amount,
        close_source,
        issued.is_some(),
        cx.now,
    )?;
    let mut transactions = append(tx, cx, &linked, reference).await?;
    let transfer_in = transactions.pop().expect("two legs");
    let transfer_out = transactions.pop().expect("two legs");
    Ok(TransferOutcome::Transfer {
        source: card_now(tx, cx, &source.id).await?,
        target: card_now(tx, cx, &target.id).await?,
        issued,
        transfer_out,
        transfer_in,
    })
}

async fn merge(
    tx: &mut dyn WriteTx,
    cx: &Context<'_>,
    card_id: &CardId,
    source_card_ids: &[CardId],
    reference: &Option<String>,
) -> Result<TransferOutcome> {
    if source_card_ids.is_empty() || source_card_ids.len() > linked::MAX_MERGE_SOURCES {
        return Err(Refusal::Invalid {
            param: "source_card_ids",
            message: "a merge takes 1 to 10 source cards".into(),
        }
        .into());
    }
    let mut ids: Vec<&CardId> = vec![card_id];
    ids.extend(source_card_ids);
    let mut cards = load_in_order(tx, cx, &ids).await?;
    let target = cards.remove(0);
    let program = program_of(tx, cx, &target).await?;
    let linked = linked::merge(&target, &program, &cards, cx.now)?;
    let transactions = append(tx, cx, &linked, reference).await?;
    let mut sources = Vec::with_capacity(cards.len());
    for card in &cards {
        sources.push(card_now(tx, cx, &card.id).await?);
    }
    Ok(TransferOutcome::Merge {
        target: card_now(tx, cx, &target.id).await?,
        sources,
        transactions,
    })
}
