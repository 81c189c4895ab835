//! Decisions that move value between cards: transfers and merges. Each is ONE balanced
//! journal entry with one leg per card (its own transaction on that card), so every card
//! changes or none does. Pure, like `operations`.

use crate::card::{CardState, CloseReason};
use crate::error::DomainError;
use crate::ledger::{JournalEntry, TransactionType};
use crate::money::{Amount, checked_add};
use crate::operations::{CardEffect, CardSnapshot, check_max_balance, check_usable};
use crate::program::Program;
use crate::time::Timestamp;

/// Most source cards one merge takes.
pub const MAX_MERGE_SOURCES: usize = 10;

/// One card's side of a linked entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    pub card: CardSnapshot,
    pub transaction_type: TransactionType,
    /// Positive magnitude; zero for a merged card that had nothing available.
    pub amount: i64,
    pub effect: CardEffect,
}

/// A journal entry touching several cards, with each card's leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linked {
    pub entry: JournalEntry,
    pub legs: Vec<Leg>,
}

fn refuse(reason: &str) -> DomainError {
    DomainError::InvalidTransfer {
        reason: reason.to_owned(),
    }
}

fn check_same_currency(source: &CardSnapshot, target: &CardSnapshot) -> Result<(), DomainError> {
    if source.currency == target.currency {
        Ok(())
    } else {
        Err(DomainError::CurrencyMismatch {
            card: target.currency.code(),
            requested: source.currency.code(),
        })
    }
}

/// Checks that `target` may receive `amount` more: reloadable (unless it is new), within the
/// program's maximum balance; and gives the expiry it gets for the new value.
fn receive(
    target: &CardSnapshot,
    program: &Program,
    amount: i64,
    target_is_new: bool,
    now: Timestamp,
) -> Result<Option<Option<Timestamp>>, DomainError> {
    if amount == 0 {
        return Ok(None);
    }
    if !target_is_new && !program.reloadable {
        return Err(DomainError::NotReloadable);
    }
    check_max_balance(program, target, Amount::new(amount)?)?;
    Ok(Some(program.expiry_after_value(now, target.expires_at)))
}

/// Move `amount` (default: all that is available) from `source` to `target`. With
/// `close_source`, the source is closed when the transfer leaves it empty.
pub fn transfer(
    source: &CardSnapshot,
    target: &CardSnapshot,
    target_program: &Program,
    amount: Option<Amount>,
    close_source: bool,
    target_is_new: bool,
    now: Timestamp,
) -> Result<Linked, DomainError> {
    if source.id == target.id {
        return Err(refuse("a card cannot transfer to itself"));
    }
    check_usable(source, now)?;
    check_usable(target, now)?;
    check_same_currency(source, target)?;
    let available = source.available();
    let moved = amount.map_or(available, Amount::minor);
    if moved <= 0 || moved > available {
        return Err(DomainError::InsufficientFunds {
            available,
            requested: moved.max(0),
        });
    }
    let new_expires_at = receive(target, target_program, moved, target_is_new, now)?;
    let empties = source.balance - moved == 0;
    if close_source && !empties {
        return Err(refuse(
            "close_source needs the transfer to leave the source empty (no remaining or held value)",
        ));
    }
    let entry = JournalEntry::new(
        source.currency,
        [
            (source.available_account(), -moved),
            (target.available_account(), moved),
        ],
    )
    .expect("a transfer's two legs balance");
    let closes = close_source.then_some(CardState::Closed);
    Ok(Linked {
        entry,
        legs: vec![
            Leg {
                card: source.clone(),
                transaction_type: TransactionType::TransferOut,
                amount: moved,
                effect: CardEffect {
                    balance_delta: -moved,
                    new_state: closes,
                    close_reason: closes.map(|_| CloseReason::Transferred),
                    ..CardEffect::default()
                },
            },
            Leg {
                card: target.clone(),
                transaction_type: TransactionType::TransferIn,
                amount: moved,
                effect: CardEffect {
                    balance_delta: moved,
                    new_expires_at,
                    ..CardEffect::default()
                },
            },
        ],
    })
}

/// Move the whole available balance of every source into `target`; every source ends closed
/// (reason `combined`). A source with pending holds is refused: closing it would strand them.
pub fn merge(
    target: &CardSnapshot,
    target_program: &Program,
    sources: &[CardSnapshot],
    now: Timestamp,
) -> Result<Linked, DomainError> {
    if sources.is_empty() || sources.len() > MAX_MERGE_SOURCES {
        return Err(refuse("a merge takes 1 to 10 source cards"));
    }
    check_usable(target, now)?;
    let mut total: i64 = 0;
    let mut legs = Vec::with_capacity(sources.len() + 1);
    let mut postings = Vec::with_capacity(sources.len() + 1);
    for (i, source) in sources.iter().enumerate() {
        if source.id == target.id || sources[..i].iter().any(|s| s.id == source.id) {
            return Err(refuse(
                "each source card must be named once, and not be the target",
            ));
        }
        check_usable(source, now)?;
        check_same_currency(source, target)?;
        if source.held > 0 {
            return Err(DomainError::InvalidState {
                state: source.state,
                reason: format!("{} has pending holds; release or capture them first", source.id),
            });
        }
        let amount = source.available();
        total = checked_add(total, amount)?;
        postings.push((source.available_account(), -amount));
        legs.push(Leg {
            card: source.clone(),
            transaction_type: TransactionType::MergeOut,
            amount,
            effect: CardEffect {
                balance_delta: -amount,
                new_state: Some(CardState::Closed),
                close_reason: Some(CloseReason::Combined),
                ..CardEffect::default()
            },
        });
    }
    let new_expires_at = receive(target, target_program, total, false, now)?;
    postings.push((target.available_account(), total));
    legs.push(Leg {
        card: target.clone(),
        transaction_type: TransactionType::MergeIn,
        amount: total,
        effect: CardEffect {
            balance_delta: total,
            new_expires_at,
            ..CardEffect::default()
        },
    });
    let entry = JournalEntry::new(target.currency, postings).expect("a merge's legs balance");
    Ok(Linked { entry, legs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::CardKind;
    use crate::ids::{CardId, ProgramId};
    use crate::money::Currency;
    use crate::program::NewProgram;

    fn program() -> Program {
        NewProgram {
            name: "P".into(),
            currency: Currency::parse("USD").unwrap(),
            denominations: None,
            min_load: None,
            max_load: None,
            max_balance: None,
            reloadable: true,
            expiry_months: None,
            promotional: false,
            number_prefix: String::new(),
            number_length: 16,
            security_code_length: 8,
            promotion_code: None,
            active: true,
            breakage_on_expiry: false,
        }
        .validate(ProgramId::new("prog_p"), Timestamp::from_unix_millis(0))
        .unwrap()
    }

    fn card(id: &str, balance: i64, held: i64) -> CardSnapshot {
        CardSnapshot {
            id: CardId::new(id),
            program_id: ProgramId::new("prog_p"),
            kind: CardKind::Virtual,
            state: CardState::Active,
            currency: Currency::parse("USD").unwrap(),
            balance,
            held,
            expires_at: None,
        }
    }

    const NOW: Timestamp = Timestamp::from_unix_millis(1_000);

    #[test]
    fn a_transfer_is_one_balanced_entry_with_a_leg_per_card() {
        let linked = transfer(
            &card("card_a", 500, 100),
            &card("card_b", 0, 0),
            &program(),
            None,
            false,
            false,
            NOW,
        )
        .unwrap();
        assert!(linked.entry.check_balanced().is_ok());
        assert_eq!(linked.legs[0].amount, 400);
        assert_eq!(linked.legs[0].effect.balance_delta, -400);
        assert_eq!(linked.legs[1].effect.balance_delta, 400);
    }

    #[test]
    fn a_transfer_never_takes_more_than_is_available() {
        let error = transfer(
            &card("card_a", 500, 100),
            &card("card_b", 0, 0),
            &program(),
            Some(Amount::new(401).unwrap()),
            false,
            false,
            NOW,
        )
        .unwrap_err();
        assert!(matches!(
            error,
            DomainError::InsufficientFunds { available: 400, .. }
        ));
    }

    #[test]
    fn close_source_needs_an_empty_source() {
        let partial = transfer(
            &card("card_a", 500, 0),
            &card("card_b", 0, 0),
            &program(),
            Some(Amount::new(100).unwrap()),
            true,
            false,
            NOW,
        );
        assert!(partial.is_err());
        let whole = transfer(
            &card("card_a", 500, 0),
            &card("card_b", 0, 0),
            &program(),
            None,
            true,
            false,
            NOW,
        )
        .unwrap();
        assert_eq!(whole.legs[0].effect.new_state, Some(CardState::Closed));
    }

    #[test]
    fn a_merge_closes_every_source_and_credits_the_total() {
        let linked = merge(
            &card("card_t", 100, 0),
            &program(),
            &[card("card_a", 300, 0), card("card_b", 0, 0)],
            NOW,
        )
        .unwrap();
        assert!(linked.entry.check_balanced().is_ok());
        assert_eq!(linked.legs.len(), 3);
        assert_eq!(linked.legs[2].amount, 300);
        assert!(
            linked.legs[..2]
                .iter()
                .all(|l| l.effect.new_state == Some(CardState::Closed))
        );
    }

    #[test]
    fn a_merge_refuses_duplicates_held_value_and_the_target_itself() {
        let t = card("card_t", 0, 0);
        assert!(merge(&t, &program(), &[card("card_a", 1, 0), card("card_a", 1, 0)], NOW).is_err());
        assert!(merge(&t, &program(), &[card("card_a", 10, 5)], NOW).is_err());
        assert!(merge(&t, &program(), std::slice::from_ref(&t), NOW).is_err());
        assert!(merge(&t, &program(), &[], NOW).is_err());
    }
}
