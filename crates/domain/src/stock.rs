//! Card stock migrated from another processor: what an imported card may look like and the
//! ledger entry that brings its balance over.
//!
//! An imported balance is an `issue` transaction, exactly like value put on a new virtual card
//! (`program_funding −x, card_available +x`), so reports, `giftd verify` and every later
//! operation treat it like any other value. Pure: the caller brings the program, the card id
//! and the time; reading the file and writing the rows happen elsewhere.

use crate::card::{CardKind, CardState};
use crate::error::DomainError;
use crate::ids::CardId;
use crate::ledger::TransactionType;
use crate::money::Amount;
use crate::operations::{CardSnapshot, Issued, check_max_balance, value_decision};
use crate::program::Program;
use crate::time::Timestamp;

/// Decides how a migrated card enters giftd: its state and expiry, and the `issue` entry of its
/// balance, if it has one. An inactive card carries no value (value arrives with activation,
/// as for new card stock) and a closed card is not worth migrating, so both are refused with a
/// balance or a closed state respectively. Without `expires_at` the program's rule applies, as
/// for a card issued today.
pub fn import(
    program: &Program,
    card_id: &CardId,
    kind: CardKind,
    state: CardState,
    balance: Option<Amount>,
    expires_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<Issued, DomainError> {
    program.check_issuing()?;
    match state {
        CardState::Inactive | CardState::Active | CardState::Frozen => {}
        CardState::Closed => {
            return Err(DomainError::InvalidState {
                state,
                reason: "a closed card cannot be imported".into(),
            });
        }
    }
    let expires_at = expires_at.or_else(|| program.expiry_after_value(now, None));
    let card = CardSnapshot {
        id: card_id.clone(),
        program_id: program.id.clone(),
        kind,
        state,
        currency: program.currency,
        balance: 0,
        held: 0,
        expires_at,
    };
    let value = match balance {
        None => None,
        Some(_) if state == CardState::Inactive => {
            return Err(DomainError::InvalidAmount {
                reason: "an inactive card carries no balance; import it active, or activate it later".into(),
            });
        }
        Some(amount) => {
            check_max_balance(program, &card, amount)?;
            Some(value_decision(
                TransactionType::Issue,
                program,
                &card,
                amount,
                None,
                None,
            ))
        }
    };
    Ok(Issued {
        state,
        expires_at,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Account;
    use crate::money::Currency;
    use crate::program::NewProgram;

    fn program(max_balance: Option<i64>) -> Program {
        NewProgram {
            name: "Migrated".into(),
            currency: Currency::parse("USD").unwrap(),
            denominations: Some(vec![Amount::new(300).unwrap()]),
            min_load: None,
            max_load: None,
            max_balance: max_balance.map(|m| Amount::new(m).unwrap()),
            reloadable: true,
            expiry_months: None,
            promotional: false,
            number_prefix: "6036".into(),
            number_length: 16,
            security_code_length: 8,
            promotion_code: None,
            active: true,
            breakage_on_expiry: false,
        }
        .validate(
            crate::ids::ProgramId::new("prog_1"),
            Timestamp::from_unix_millis(0),
        )
        .unwrap()
    }

    fn card() -> CardId {
        CardId::new("card_1")
    }

    #[test]
    fn an_imported_balance_is_an_issue_from_program_funding_whatever_the_denominations() {
        let program = program(None);
        let amount = Amount::new(1_234).unwrap();
        let now = Timestamp::from_unix_millis(0);
        let issued = import(
            &program,
            &card(),
            CardKind::Physical,
            CardState::Active,
            Some(amount),
            None,
            now,
        )
        .unwrap();
        let decision = issued.value.unwrap();
        assert_eq!(decision.transaction_type, TransactionType::Issue);
        assert_eq!(decision.card.balance_delta, 1_234);
        assert_eq!(decision.entry.delta(&Account::CardAvailable(card())), 1_234);
        assert_eq!(
            decision.entry.delta(&Account::ProgramFunding(program.id.clone())),
            -1_234
        );
        assert_eq!(issued.state, CardState::Active);
    }

    #[test]
    fn import_refuses_value_on_inactive_cards_closed_cards_and_balances_over_the_maximum() {
        let now = Timestamp::from_unix_millis(0);
        let amount = Some(Amount::new(500).unwrap());
        let open = program(None);
        assert!(
            import(
                &open,
                &card(),
                CardKind::Physical,
                CardState::Inactive,
                amount,
                None,
                now
            )
            .is_err()
        );
        assert!(
            import(
                &open,
                &card(),
                CardKind::Physical,
                CardState::Inactive,
                None,
                None,
                now
            )
            .is_ok()
        );
        assert!(
            import(
                &open,
                &card(),
                CardKind::Physical,
                CardState::Closed,
                None,
                None,
                now
            )
            .is_err()
        );
        let capped = program(Some(400));
        assert!(matches!(
            import(
                &capped,
                &card(),
                CardKind::Virtual,
                CardState::Active,
                amount,
                None,
                now
            ),
            Err(DomainError::LimitExceeded { .. })
        ));
    }
}
