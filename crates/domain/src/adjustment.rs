//! Adjustments: value a person puts on or takes off a card, for a stated reason, against the
//! program's adjustment account (`Account::ProgramAdjustment`), never through a sale or a
//! spend. One larger than the merchant's threshold waits for a second person's approval; the
//! one who asked never approves their own. Pure: no IO.

use std::fmt;

use crate::card::CardState;
use crate::error::DomainError;
use crate::ledger::{Account, TransactionType};
use crate::operations::{CardSnapshot, Decision, check_currency};
use crate::program::Program;
use crate::time::Timestamp;

/// Longest note on an adjustment.
pub const MAX_ADJUSTMENT_NOTE_CHARS: usize = 500;
/// A pending adjustment not decided within this long expires and moves nothing: 7 days.
pub const ADJUSTMENT_REQUEST_MILLIS: i64 = 7 * 24 * 3600 * 1000;
/// The threshold of a merchant that set none: adjustments above 50.00 (in minor units of any
/// currency) wait for approval.
pub const DEFAULT_APPROVAL_THRESHOLD: i64 = 5000;

/// Why value was put on or taken off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdjustmentReason {
    /// A gesture to a customer.
    Goodwill,
    /// An error corrected.
    Correction,
    /// Value taken off a card used fraudulently.
    Fraud,
    /// A balance carried over from another system.
    Migration,
    Other,
}

impl AdjustmentReason {
    pub const ALL: [Self; 5] = [
        Self::Goodwill,
        Self::Correction,
        Self::Fraud,
        Self::Migration,
        Self::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Goodwill => "goodwill",
            Self::Correction => "correction",
            Self::Fraud => "fraud",
            Self::Migration => "migration",
            Self::Other => "other",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.as_str() == value)
    }
}

impl fmt::Display for AdjustmentReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an adjustment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdjustmentState {
    /// Waiting for a second person.
    Pending,
    /// Its transaction is on the card.
    Applied,
    Rejected,
    /// Not decided in time; it moved nothing.
    Expired,
}

impl AdjustmentState {
    pub const ALL: [Self; 4] = [Self::Pending, Self::Applied, Self::Rejected, Self::Expired];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Applied => "applied",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == value)
    }
}

/// Whether an adjustment of `amount` (signed minor units) needs a second person under
/// `threshold`.
pub fn needs_approval(amount: i64, threshold: i64) -> bool {
    amount.unsigned_abs() > threshold.unsigned_abs()
}

/// Puts `amount` on the card (positive) or takes it off (negative). The card must hold value
/// in a state that can: active or frozen (a frozen card is often the one being corrected),
/// not inactive stock or a closed card; what is taken off must be available (not held).
/// The program's limits do not apply: an adjustment corrects, it does not sell. Value put on
/// an expired card reinstates it: its expiry is renewed as a load's would be.
pub fn adjust(
    program: &Program,
    card: &CardSnapshot,
    amount: i64,
    now: Timestamp,
) -> Result<Decision, DomainError> {
    check_currency(card, None)?;
    if !matches!(card.state, CardState::Active | CardState::Frozen) {
        return Err(DomainError::CardNotActive { state: card.state });
    }
    if amount == 0 {
        return Err(DomainError::InvalidAmount {
            reason: "an adjustment moves a non-zero amount".into(),
        });
    }
    let magnitude = amount.checked_abs().ok_or(DomainError::InvalidAmount {
        reason: "the amount is out of range".into(),
    })?;
    if amount < 0 && card.available() < magnitude {
        return Err(DomainError::InsufficientFunds {
            available: card.available(),
            requested: magnitude,
        });
    }
    card.balance
        .checked_add(amount)
        .ok_or(DomainError::InvalidAmount {
            reason: "the balance would be out of range".into(),
        })?;
    let renewed =
        (amount > 0 && card.is_expired(now)).then(|| program.expiry_after_value(now, card.expires_at));
    Ok(Decision::new(
        TransactionType::Adjustment,
        magnitude,
        card.currency,
        vec![
            (Account::ProgramAdjustment(card.program_id.clone()), -amount),
            (Account::CardAvailable(card.id.clone()), amount),
        ],
        card,
        None,
        renewed,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CardId, Currency, ProgramId};

    fn card(state: CardState, balance: i64, held: i64) -> CardSnapshot {
        CardSnapshot {
            id: CardId::new("card_1"),
            program_id: ProgramId::new("prog_1"),
            kind: crate::CardKind::Virtual,
            currency: Currency::parse("USD").unwrap(),
            state,
            balance,
            held,
            expires_at: None,
        }
    }

    fn program(expiry_months: Option<u32>) -> Program {
        let mut new = crate::program::tests::usd_program();
        new.expiry_months = expiry_months;
        new.validate(ProgramId::new("prog_1"), Timestamp::from_unix_millis(0))
            .unwrap()
    }

    fn at(millis: i64) -> Timestamp {
        Timestamp::from_unix_millis(millis)
    }

    #[test]
    fn value_put_on_an_expired_card_reinstates_it_and_value_taken_off_does_not() {
        let program = program(Some(60));
        let mut expired = card(CardState::Active, 0, 0);
        expired.expires_at = Some(at(1_000));
        let now = at(5_000);
        let up = adjust(&program, &expired, 500, now).unwrap();
        assert_eq!(up.card.new_expires_at, Some(Some(now.plus_months(60))));
        let mut with_value = expired.clone();
        with_value.balance = 800;
        let down = adjust(&program, &with_value, -100, now).unwrap();
        assert_eq!(down.card.new_expires_at, None);
        let live = card(CardState::Active, 0, 0);
        assert_eq!(
            adjust(&program, &live, 500, now).unwrap().card.new_expires_at,
            None
        );
    }

    #[test]
    fn value_put_on_comes_from_the_adjustment_account_and_value_taken_off_goes_back_to_it() {
        let (p, now) = (program(None), at(0));
        let up = adjust(&p, &card(CardState::Active, 1_000, 0), 250, now).unwrap();
        assert_eq!(up.transaction_type, TransactionType::Adjustment);
        assert_eq!(up.amount, 250);
        assert_eq!(up.card.balance_delta, 250);
        assert_eq!(
            up.entry
                .delta(&Account::ProgramAdjustment(ProgramId::new("prog_1"))),
            -250
        );
        let down = adjust(&p, &card(CardState::Frozen, 1_000, 0), -400, now).unwrap();
        assert_eq!(down.amount, 400);
        assert_eq!(down.card.balance_delta, -400);
        assert_eq!(
            down.entry
                .delta(&Account::ProgramAdjustment(ProgramId::new("prog_1"))),
            400
        );
    }

    #[test]
    fn held_value_closed_cards_stock_and_zero_are_refused() {
        let (p, now) = (program(None), at(0));
        assert!(matches!(
            adjust(&p, &card(CardState::Active, 1_000, 700), -400, now),
            Err(DomainError::InsufficientFunds {
                available: 300,
                requested: 400
            })
        ));
        for state in [CardState::Closed, CardState::Inactive] {
            assert!(matches!(
                adjust(&p, &card(state, 0, 0), 100, now),
                Err(DomainError::CardNotActive { .. })
            ));
        }
        assert!(adjust(&p, &card(CardState::Active, 0, 0), 0, now).is_err());
        assert!(adjust(&p, &card(CardState::Active, 0, 0), i64::MIN, now).is_err());
    }

    #[test]
    fn only_amounts_beyond_the_threshold_either_way_wait_for_approval() {
        assert!(!needs_approval(5_000, 5_000));
        assert!(!needs_approval(-5_000, 5_000));
        assert!(needs_approval(5_001, 5_000));
        assert!(needs_approval(-5_001, 5_000));
        assert!(needs_approval(1, 0));
    }

    #[test]
    fn a_reason_and_a_state_read_back_from_their_names() {
        for reason in AdjustmentReason::ALL {
            assert_eq!(AdjustmentReason::parse(reason.as_str()), Some(reason));
        }
        for state in AdjustmentState::ALL {
            assert_eq!(AdjustmentState::parse(state.as_str()), Some(state));
        }
        assert_eq!(AdjustmentReason::parse("because"), None);
    }
}
