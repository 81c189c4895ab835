//! Decisions that stored-value terminals ask for beyond the core operations: a merchandise
//! return credited onto a card without naming the payment it reverses (Adyen's unreferenced
//! refund, and its Stored Value API's `loadType: merchandiseReturn`), and unloading part or all
//! of a card's available value (a cash-out of a chosen amount). Pure, like `operations`.
//!
//! Both use existing transaction types, so that the ledger keeps one vocabulary and the
//! existing void reverses them exactly: a merchandise return is a `refund` without `reverses`
//! (the program's redemption account gives back value, as for a refund of a redemption), an
//! unload is a `cashout` (value leaves through the program's cash-out account).

use crate::CardState;
use crate::error::DomainError;
use crate::ledger::{Account, JournalEntry, TransactionType};
use crate::money::{Amount, Currency, checked_add};
use crate::operations::{
    CardEffect, CardSnapshot, Decision, check_currency, check_max_balance, check_usable,
};
use crate::program::Program;
use crate::time::Timestamp;

/// Credit `amount` onto the card for returned merchandise: a `refund` that reverses no earlier
/// transaction, posted from the program's redemption account (value that had been spent comes
/// back onto a card). The card must be usable (active, not expired) and reloadable, in the
/// request's currency, and stay within the program's `max_balance`; `min_load` and `max_load`
/// do not apply (a return is worth what the merchandise cost). Like a load, it pushes the
/// card's expiry.
pub fn merchandise_return(
    program: &Program,
    card: &CardSnapshot,
    amount: Amount,
    currency: Option<Currency>,
    now: Timestamp,
) -> Result<Decision, DomainError> {
    check_currency(card, currency)?;
    check_usable(card, now)?;
    if !program.reloadable {
        return Err(DomainError::NotReloadable);
    }
    check_max_balance(program, card, amount)?;
    checked_add(card.balance, amount.minor())?;
    let credited = amount.minor();
    let entry = JournalEntry::new(
        card.currency,
        [
            (Account::ProgramRedemption(card.program_id.clone()), -credited),
            (Account::CardAvailable(card.id.clone()), credited),
        ],
    )
    .expect("a merchandise return's two legs balance");
    Ok(Decision {
        transaction_type: TransactionType::Refund,
        amount: credited,
        entry,
        card: CardEffect {
            balance_delta: credited,
            new_expires_at: Some(program.expiry_after_value(now, card.expires_at)),
            ..CardEffect::default()
        },
    })
}

/// Pay out `amount` of what is available (all of it when `None`): a `cashout`, which leaves the
/// card active. The card must be active; more than is available is refused (value held by
/// pending holds stays where it is).
pub fn unload(
    card: &CardSnapshot,
    amount: Option<Amount>,
    currency: Option<Currency>,
) -> Result<Decision, DomainError> {
    check_currency(card, currency)?;
    if card.state != CardState::Active {
        return Err(DomainError::CardNotActive { state: card.state });
    }
    let available = card.available();
    let requested = amount.map_or(available, Amount::minor);
    if available <= 0 || requested > available {
        return Err(DomainError::InsufficientFunds {
            available,
            requested: requested.max(0),
        });
    }
    let entry = JournalEntry::new(
        card.currency,
        [
            (Account::CardAvailable(card.id.clone()), -requested),
            (Account::ProgramCashout(card.program_id.clone()), requested),
        ],
    )
    .expect("an unload's two legs balance");
    Ok(Decision {
        transaction_type: TransactionType::Cashout,
        amount: requested,
        entry,
        card: CardEffect {
            balance_delta: -requested,
            ..CardEffect::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::CardKind;
    use crate::ids::{CardId, ProgramId};
    use crate::operations::{OriginalTransaction, void};
    use crate::program::NewProgram;

    const NOW: Timestamp = Timestamp::from_unix_millis(1_000_000);

    fn usd() -> Currency {
        Currency::parse("USD").unwrap()
    }

    fn program(reloadable: bool, max_balance: Option<i64>) -> Program {
        NewProgram {
            name: "P".into(),
            currency: usd(),
            denominations: None,
            min_load: Some(Amount::new(300).unwrap()),
            max_load: None,
            max_balance: max_balance.map(|m| Amount::new(m).unwrap()),
            reloadable,
            expiry_months: Some(60),
            promotional: false,
            number_prefix: String::new(),
            number_length: 16,
            security_code_length: 8,
            promotion_code: None,
        }
        .validate(ProgramId::new("prog_p"), Timestamp::from_unix_millis(0))
        .unwrap()
    }

    fn card(balance: i64, held: i64) -> CardSnapshot {
        CardSnapshot {
            id: CardId::new("card_a"),
            program_id: ProgramId::new("prog_p"),
            kind: CardKind::Physical,
            state: CardState::Active,
            currency: usd(),
            balance,
            held,
            expires_at: None,
        }
    }

    fn amount(minor: i64) -> Amount {
        Amount::new(minor).unwrap()
    }

    #[test]
    fn a_merchandise_return_is_a_refund_from_the_redemption_account_that_a_void_undoes() {
        let decision =
            merchandise_return(&program(true, None), &card(100, 0), amount(250), Some(usd()), NOW).unwrap();
        assert_eq!(decision.transaction_type, TransactionType::Refund);
        assert_eq!(decision.card.balance_delta, 250);
        assert!(decision.card.new_expires_at.is_some_and(|e| e.is_some()));
        let redemption = Account::ProgramRedemption(ProgramId::new("prog_p"));
        assert_eq!(decision.entry.delta(&redemption), -250);
        // The existing void takes it back to the same account.
        let mut after = card(100, 0);
        after.apply(&decision.card);
        let original = OriginalTransaction {
            id: crate::ids::TransactionId::new("txn_r"),
            card_id: after.id.clone(),
            transaction_type: TransactionType::Refund,
            amount: 250,
            refunded: 0,
            voided: false,
        };
        let undo = void(&after, &original).unwrap();
        assert_eq!(undo.entry.delta(&redemption), 250);
    }

    #[test]
    fn a_merchandise_return_ignores_min_load_but_not_max_balance_or_reloadable() {
        assert!(merchandise_return(&program(true, None), &card(0, 0), amount(1), None, NOW).is_ok());
        assert_eq!(
            merchandise_return(&program(false, None), &card(0, 0), amount(1), None, NOW),
            Err(DomainError::NotReloadable)
        );
        assert!(matches!(
            merchandise_return(&program(true, Some(500)), &card(400, 0), amount(101), None, NOW),
            Err(DomainError::LimitExceeded { .. })
        ));
        let mut frozen = card(0, 0);
        frozen.state = CardState::Frozen;
        assert!(merchandise_return(&program(true, None), &frozen, amount(1), None, NOW).is_err());
    }

    #[test]
    fn an_unload_pays_out_part_or_all_of_what_is_available() {
        let part = unload(&card(500, 100), Some(amount(150)), None).unwrap();
        assert_eq!(part.transaction_type, TransactionType::Cashout);
        assert_eq!(part.amount, 150);
        let all = unload(&card(500, 100), None, None).unwrap();
        assert_eq!(all.amount, 400);
        assert!(matches!(
            unload(&card(500, 100), Some(amount(401)), None),
            Err(DomainError::InsufficientFunds {
                available: 400,
                requested: 401
            })
        ));
        assert!(unload(&card(0, 0), None, None).is_err());
        assert!(unload(&card(500, 0), None, Some(Currency::parse("EUR").unwrap())).is_err());
    }
}
