//! Decisions that stored-value terminals ask for beyond the core operations: a merchandise
//! return credited onto a card without naming the payment it reverses (Adyen's unreferenced
//! refund, and its Stored Value API's `loadType: merchandiseReturn`), unloading part or all
//! of a card's available value (a cash-out of a chosen amount), and cashing a card out whole
//! and closing it (Adyen's cashback). Pure, like `operations`.
//!
//! All use existing transaction types, so that the ledger keeps one vocabulary: a merchandise
//! return is a `refund` without `reverses` (the program's redemption account gives back value,
//! as for a refund of a redemption), an unload is a `cashout` (value leaves through the
//! program's cash-out account), and the existing void reverses either exactly. A cash-out that
//! closes the card is the native deactivation's own `cashout`, and is final: a closed card is
//! never reopened, so nothing voids it.

use crate::CardState;
use crate::error::DomainError;
use crate::ledger::{Account, JournalEntry, TransactionType};
use crate::major_units::MajorUnits;
use crate::money::{Amount, Currency, checked_add};
use crate::operations::{
    self, CardEffect, CardSnapshot, Decision, check_currency, check_max_balance, check_usable,
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

/// Pay out a card's whole available value and close it, in one `cashout`: Adyen's gift card
/// cashback (a Terminal API PaymentRequest with `redemptionType` `cashback`, or
/// `cashback|deactivate`), after which "the card is no longer active and cannot be used again".
/// The decision is the one deactivation with cash-out makes ([`operations::deactivate`]), so
/// the ledger has one way of closing a card with value.
///
/// `requested` must be all that is available: giftd's programs have no setting that allows a
/// partial cash-out through a payment (an [`unload`] pays out part and leaves the card active).
/// More than is available is `InsufficientFunds`; less is refused as a partial cash-out. A card
/// with pending holds is refused: closing it would release value another sale still holds.
/// The card must be active; like the native cash-out, an expired card may still be paid out.
pub fn cash_out_and_close(
    card: &CardSnapshot,
    requested: Amount,
    currency: Option<Currency>,
) -> Result<Decision, DomainError> {
    check_currency(card, currency)?;
    if card.state != CardState::Active {
        return Err(DomainError::CardNotActive { state: card.state });
    }
    let format = |minor: i64| {
        format!(
            "{} {}",
            MajorUnits::format_minor(minor, card.currency),
            card.currency
        )
    };
    if card.held > 0 {
        return Err(DomainError::InvalidState {
            state: card.state,
            reason: format!(
                "pending holds keep {} of its value, and a cash-out closes the card: capture or release them first",
                format(card.held)
            ),
        });
    }
    let available = card.available();
    if available <= 0 || requested.minor() > available {
        return Err(DomainError::InsufficientFunds {
            available,
            requested: requested.minor(),
        });
    }
    if requested.minor() < available {
        return Err(DomainError::InvalidState {
            state: card.state,
            reason: format!(
                "a cash-out pays out the whole available balance, {}, and closes the card; {} would be a partial cash-out, which giftd's programs do not allow",
                format(available),
                format(requested.minor())
            ),
        });
    }
    let decision = operations::deactivate(card, true)?;
    Ok(decision.expect("a card with value available is paid out, not closed empty"))
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
            active: true,
            breakage_on_expiry: false,
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

    #[test]
    fn a_cash_out_and_close_pays_out_exactly_what_is_available_and_closes_the_card() {
        let decision = cash_out_and_close(&card(500, 0), amount(500), Some(usd())).unwrap();
        assert_eq!(
            decision,
            operations::deactivate(&card(500, 0), true).unwrap().unwrap()
        );
        assert_eq!(decision.transaction_type, TransactionType::Cashout);
        assert_eq!(decision.amount, 500);
        assert_eq!(decision.card.new_state, Some(CardState::Closed));
        let cashout = Account::ProgramCashout(ProgramId::new("prog_p"));
        assert_eq!(decision.entry.delta(&cashout), 500);
    }

    #[test]
    fn a_cash_out_and_close_refuses_part_more_held_value_and_cards_not_active() {
        let partial = cash_out_and_close(&card(500, 0), amount(499), None);
        assert!(
            matches!(&partial, Err(DomainError::InvalidState { reason, .. }) if reason.contains("5 USD") && reason.contains("4.99 USD")),
            "{partial:?}"
        );
        assert_eq!(
            cash_out_and_close(&card(500, 0), amount(501), None),
            Err(DomainError::InsufficientFunds {
                available: 500,
                requested: 501
            })
        );
        assert!(matches!(
            cash_out_and_close(&card(0, 0), amount(1), None),
            Err(DomainError::InsufficientFunds { .. })
        ));
        assert!(matches!(
            cash_out_and_close(&card(500, 100), amount(400), None),
            Err(DomainError::InvalidState { .. })
        ));
        let mut frozen = card(500, 0);
        frozen.state = CardState::Frozen;
        assert!(matches!(
            cash_out_and_close(&frozen, amount(500), None),
            Err(DomainError::CardNotActive { .. })
        ));
        assert!(matches!(
            cash_out_and_close(&card(500, 0), amount(500), Some(Currency::parse("EUR").unwrap())),
            Err(DomainError::CurrencyMismatch { .. })
        ));
    }
}
