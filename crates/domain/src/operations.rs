//! The decisions: given the state an operation touches (a card, a hold, an earlier
//! transaction) and the request, either refuse with a [`DomainError`] or say exactly what
//! changes: the transaction's type and amount, its balanced journal entry, and the effect on
//! the card's cached balance, held amount, state and expiry.
//!
//! Deciding is pure. Applying a decision (guarded updates, appends) is the store's job.

use crate::card::{CardKind, CardState, CloseReason};
use crate::error::DomainError;
use crate::ids::{CardId, HoldId, ProgramId, TransactionId};
use crate::ledger::{Account, JournalEntry, TransactionType};
use crate::money::{Amount, Currency, checked_add};
use crate::program::Program;
use crate::time::Timestamp;

/// A card as the decisions need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardSnapshot {
    pub id: CardId,
    pub program_id: ProgramId,
    pub kind: CardKind,
    pub state: CardState,
    pub currency: Currency,
    /// Value on the card, held part included.
    pub balance: i64,
    /// Value reserved by pending holds.
    pub held: i64,
    pub expires_at: Option<Timestamp>,
}

impl CardSnapshot {
    pub fn available(&self) -> i64 {
        self.balance - self.held
    }

    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// The card after a decision's effect, as the store's guarded update leaves it.
    pub fn apply(&mut self, effect: &CardEffect) {
        self.balance += effect.balance_delta;
        self.held += effect.held_delta;
        if let Some(state) = effect.new_state {
            self.state = state;
        }
        if let Some(expires_at) = effect.new_expires_at {
            self.expires_at = expires_at;
        }
    }

    pub(crate) fn available_account(&self) -> Account {
        Account::CardAvailable(self.id.clone())
    }

    fn held_account(&self) -> Account {
        Account::CardHeld(self.id.clone())
    }
}

/// What a decision does to the card row.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CardEffect {
    pub balance_delta: i64,
    pub held_delta: i64,
    pub new_state: Option<CardState>,
    /// `Some(x)` sets the expiry to `x`.
    pub new_expires_at: Option<Option<Timestamp>>,
    /// Why, when `new_state` closes the card.
    pub close_reason: Option<CloseReason>,
}

/// One transaction to append: its type and amount, its journal entry and its effect on the card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub transaction_type: TransactionType,
    /// Positive magnitude; zero only for an activation without value or a zero capture.
    pub amount: i64,
    pub entry: JournalEntry,
    pub card: CardEffect,
}

impl Decision {
    pub(crate) fn new(
        transaction_type: TransactionType,
        amount: i64,
        currency: Currency,
        legs: Vec<(Account, i64)>,
        card: &CardSnapshot,
        new_state: Option<CardState>,
        new_expires_at: Option<Option<Timestamp>>,
    ) -> Self {
        let entry =
            JournalEntry::new(currency, legs).expect("every decision in this module builds balanced legs");
        let available = entry.delta(&card.available_account());
        let held_delta = entry.delta(&card.held_account());
        Self {
            transaction_type,
            amount,
            card: CardEffect {
                balance_delta: available + held_delta,
                held_delta,
                new_state,
                new_expires_at,
                close_reason: (new_state == Some(CardState::Closed)).then_some(CloseReason::Deactivated),
            },
            entry,
        }
    }

    /// The card's balance after this decision, given the balance before it.
    pub fn balance_after(&self, balance_before: i64) -> i64 {
        balance_before + self.card.balance_delta
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldState {
    Pending,
    Captured,
    Released,
    Expired,
}

impl HoldState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Captured => "captured",
            Self::Released => "released",
            Self::Expired => "expired",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "pending" => Some(Self::Pending),
            "captured" => Some(Self::Captured),
            "released" => Some(Self::Released),
            "expired" => Some(Self::Expired),
            _ => None,
        }
    }
}

/// Default and longest lifetime of a hold.
pub const DEFAULT_HOLD_SECONDS: i64 = 600;
pub const MAX_HOLD_SECONDS: i64 = 604_800;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldSnapshot {
    pub id: HoldId,
    pub card_id: CardId,
    pub amount: i64,
    pub state: HoldState,
    pub expires_at: Timestamp,
}

impl HoldSnapshot {
    /// The state as of `now`: a pending hold past its expiry no longer reserves anything,
    /// even before the sweeper has written its release.
    pub fn effective_state(&self, now: Timestamp) -> HoldState {
        match self.state {
            HoldState::Pending if self.expires_at <= now => HoldState::Expired,
            state => state,
        }
    }
}

/// An earlier transaction that a refund or void refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalTransaction {
    pub id: TransactionId,
    pub card_id: CardId,
    pub transaction_type: TransactionType,
    pub amount: i64,
    /// Sum of the refunds of this transaction that have not themselves been voided.
    pub refunded: i64,
    pub voided: bool,
}

/// When a request names a currency, it must be the card's.
pub fn check_currency(card: &CardSnapshot, requested: Option<Currency>) -> Result<(), DomainError> {
    match requested {
        Some(currency) if currency != card.currency => Err(DomainError::CurrencyMismatch {
            card: card.currency.code(),
            requested: currency.code(),
        }),
        _ => Ok(()),
    }
}

/// A card that may be spent from or loaded: active and not expired.
pub(crate) fn check_usable(card: &CardSnapshot, now: Timestamp) -> Result<(), DomainError> {
    if card.state != CardState::Active {
        return Err(DomainError::CardNotActive { state: card.state });
    }
    if card.is_expired(now) {
        return Err(DomainError::CardExpired);
    }
    Ok(())
}

pub(crate) fn check_max_balance(
    program: &Program,
    card: &CardSnapshot,
    amount: Amount,
) -> Result<(), DomainError> {
    let after = checked_add(card.balance, amount.minor())?;
    program.check_balance_after(after)
}

/// The state and expiry of a card being issued, and its first value if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub state: CardState,
    pub expires_at: Option<Timestamp>,
    pub value: Option<Decision>,
}

/// Issue a card. Virtual cards are issued active, with `amount` loaded when given; physical
/// cards are card stock, issued inactive with no value and activated later.
pub fn issue(
    program: &Program,
    card_id: &CardId,
    kind: CardKind,
    amount: Option<Amount>,
    now: Timestamp,
) -> Result<Issued, DomainError> {
    program.check_issuing()?;
    let expires_at = program.expiry_after_value(now, None);
    let state = match kind {
        CardKind::Virtual => CardState::Active,
        CardKind::Physical => CardState::Inactive,
    };
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
    let value = match (kind, amount) {
        (_, None) => None,
        (CardKind::Physical, Some(_)) => {
            return Err(DomainError::InvalidAmount {
                reason: "physical cards are issued inactive; give the amount when activating".into(),
            });
        }
        (CardKind::Virtual, Some(amount)) => {
            program.check_value_amount(amount, true)?;
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

pub(crate) fn value_decision(
    transaction_type: TransactionType,
    program: &Program,
    card: &CardSnapshot,
    amount: Amount,
    new_state: Option<CardState>,
    new_expires_at: Option<Option<Timestamp>>,
) -> Decision {
    Decision::new(
        transaction_type,
        amount.minor(),
        card.currency,
        vec![
            (Account::ProgramFunding(program.id.clone()), -amount.minor()),
            (card.available_account(), amount.minor()),
        ],
        card,
        new_state,
        new_expires_at,
    )
}

/// Activate card stock, optionally putting its first value on it.
pub fn activate(
    program: &Program,
    card: &CardSnapshot,
    amount: Option<Amount>,
    now: Timestamp,
) -> Result<Decision, DomainError> {
    if card.state != CardState::Inactive {
        return Err(DomainError::InvalidState {
            state: card.state,
            reason: "only an inactive card can be activated".into(),
        });
    }
    // Activation is when card stock first goes into circulation: an inactive program's stock
    // stays on the shelf.
    program.check_issuing()?;
    let expires_at = Some(program.expiry_after_value(now, card.expires_at));
    match amount {
        Some(amount) => {
            program.check_value_amount(amount, true)?;
            check_max_balance(program, card, amount)?;
            Ok(value_decision(
                TransactionType::Activation,
                program,
                card,
                amount,
                Some(CardState::Active),
                expires_at,
            ))
        }
        None => Ok(Decision::new(
            TransactionType::Activation,
            0,
            card.currency,
            Vec::new(),
            card,
            Some(CardState::Active),
            expires_at,
        )),
    }
}

pub fn load(
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
    program.check_value_amount(amount, false)?;
    check_max_balance(program, card, amount)?;
    let expires_at = Some(program.expiry_after_value(now, card.expires_at));
    Ok(value_decision(
        TransactionType::Load,
        program,
        card,
        amount,
        None,
        expires_at,
    ))
}

/// How much a spend takes: all of `amount`, or with `allow_partial` as much as is available.
fn spend_amount(card: &CardSnapshot, amount: Amount, allow_partial: bool) -> Result<i64, DomainError> {
    let available = card.available();
    if available >= amount.minor() {
        Ok(amount.minor())
    } else if allow_partial && available > 0 {
        Ok(available)
    } else {
        Err(DomainError::InsufficientFunds {
            available,
            requested: amount.minor(),
        })
    }
}

pub fn redeem(
    card: &CardSnapshot,
    amount: Amount,
    allow_partial: bool,
    currency: Option<Currency>,
    now: Timestamp,
) -> Result<Decision, DomainError> {
    check_currency(card, currency)?;
    check_usable(card, now)?;
    let taken = spend_amount(card, amount, allow_partial)?;
    Ok(Decision::new(
        TransactionType::Redemption,
        taken,
        card.currency,
        vec![
            (card.available_account(), -taken),
            (Account::ProgramRedemption(card.program_id.clone()), taken),
        ],
        card,
        None,
        None,
    ))
}

pub fn place_hold(
    card: &CardSnapshot,
    amount: Amount,
    allow_partial: bool,
    currency: Option<Currency>,
    now: Timestamp,
) -> Result<Decision, DomainError> {
    check_currency(card, currency)?;
    check_usable(card, now)?;
    let reserved = spend_amount(card, amount, allow_partial)?;
    Ok(Decision::new(
        TransactionType::Hold,
        reserved,
        card.currency,
        vec![
            (card.available_account(), -reserved),
            (card.held_account(), reserved),
        ],
        card,
        None,
        None,
    ))
}

fn check_pending(hold: &HoldSnapshot, now: Timestamp) -> Result<(), DomainError> {
    match hold.effective_state(now) {
        HoldState::Pending => Ok(()),
        state => Err(DomainError::HoldNotPending {
            state: state.as_str(),
        }),
    }
}

/// Capture `amount` of a pending hold (default: all of it); the rest is released. A capture of
/// zero releases the whole hold.
pub fn capture(
    card: &CardSnapshot,
    hold: &HoldSnapshot,
    amount: Option<i64>,
    now: Timestamp,
) -> Result<Decision, DomainError> {
    check_pending(hold, now)?;
    let captured = amount.unwrap_or(hold.amount);
    if captured < 0 || captured > hold.amount {
        return Err(DomainError::InvalidAmount {
            reason: format!("a capture must be between 0 and the hold's {}", hold.amount),
        });
    }
    if captured > 0 && card.state != CardState::Active {
        return Err(DomainError::CardNotActive { state: card.state });
    }
    Ok(Decision::new(
        TransactionType::Capture,
        captured,
        card.currency,
        vec![
            (card.held_account(), -hold.amount),
            (card.available_account(), hold.amount - captured),
            (Account::ProgramRedemption(card.program_id.clone()), captured),
        ],
        card,
        None,
        None,
    ))
}

/// Release a hold, by request or because it expired: the reserved value is available again.
/// Callers check the hold is pending; an expiring hold is pending by definition.
pub fn release(card: &CardSnapshot, hold: &HoldSnapshot) -> Decision {
    Decision::new(
        TransactionType::Release,
        hold.amount,
        card.currency,
        vec![
            (card.held_account(), -hold.amount),
            (card.available_account(), hold.amount),
        ],
        card,
        None,
        None,
    )
}

/// Release a pending hold at the holder's request.
pub fn release_requested(
    card: &CardSnapshot,
    hold: &HoldSnapshot,
    now: Timestamp,
) -> Result<Decision, DomainError> {
    check_pending(hold, now)?;
    Ok(release(card, hold))
}

pub fn refund(
    card: &CardSnapshot,
    original: &OriginalTransaction,
    amount: Option<Amount>,
) -> Result<Decision, DomainError> {
    match original.transaction_type {
        TransactionType::Redemption | TransactionType::Capture => {}
        other => {
            return Err(DomainError::NotRefundable {
                transaction_type: other,
            });
        }
    }
    if original.voided {
        return Err(DomainError::NotReversible {
            reason: "the transaction has been voided".into(),
        });
    }
    if card.state == CardState::Closed {
        return Err(DomainError::CardNotActive { state: card.state });
    }
    if original.card_id != card.id {
        return Err(DomainError::NotReversible {
            reason: "the transaction belongs to another card".into(),
        });
    }
    let refundable = original.amount - original.refunded;
    let requested = amount.map_or(refundable, Amount::minor);
    if requested == 0 || requested > refundable {
        return Err(DomainError::RefundExceedsAmount {
            refundable,
            requested,
        });
    }
    // A refund restores value that was on the card, so the program's max_balance does not
    // apply; the sum must still fit.
    checked_add(card.balance, requested)?;
    Ok(Decision::new(
        TransactionType::Refund,
        requested,
        card.currency,
        vec![
            (Account::ProgramRedemption(card.program_id.clone()), -requested),
            (card.available_account(), requested),
        ],
        card,
        None,
        None,
    ))
}

/// Reverse an earlier transaction exactly once.
pub fn void(card: &CardSnapshot, original: &OriginalTransaction) -> Result<Decision, DomainError> {
    let refuse = |reason: &str| {
        Err(DomainError::NotReversible {
            reason: reason.to_owned(),
        })
    };
    if original.voided {
        return refuse("the transaction has already been voided");
    }
    if card.state == CardState::Closed {
        return Err(DomainError::CardNotActive { state: card.state });
    }
    if original.card_id != card.id {
        return refuse("the transaction belongs to another card");
    }
    let amount = original.amount;
    if amount == 0 {
        return refuse("the transaction moved no value");
    }
    // A void that credits the card restores value that was there; it must still fit.
    checked_add(card.balance, amount)?;
    let available = card.available_account();
    let program = card.program_id.clone();
    let legs = match original.transaction_type {
        TransactionType::Redemption | TransactionType::Capture => {
            if original.refunded > 0 {
                return refuse("the transaction has been partly refunded; refund the rest instead");
            }
            vec![
                (Account::ProgramRedemption(program), -amount),
                (available, amount),
            ]
        }
        TransactionType::Issue | TransactionType::Activation | TransactionType::Load => {
            if card.available() < amount {
                return refuse("voiding it would overdraw the card");
            }
            vec![(available, -amount), (Account::ProgramFunding(program), amount)]
        }
        TransactionType::Refund => {
            if card.available() < amount {
                return refuse("voiding it would overdraw the card");
            }
            vec![
                (available, -amount),
                (Account::ProgramRedemption(program), amount),
            ]
        }
        TransactionType::Cashout => {
            vec![(Account::ProgramCashout(program), -amount), (available, amount)]
        }
        TransactionType::Hold
        | TransactionType::Release
        | TransactionType::Void
        | TransactionType::TransferOut
        | TransactionType::TransferIn
        | TransactionType::MergeOut
        | TransactionType::MergeIn
        | TransactionType::Adjustment
        | TransactionType::Expiry => {
            return refuse("this type of transaction cannot be voided");
        }
    };
    Ok(Decision::new(
        TransactionType::Void,
        amount,
        card.currency,
        legs,
        card,
        None,
        None,
    ))
}

/// Pay out the whole available balance.
pub fn cashout(card: &CardSnapshot) -> Result<Decision, DomainError> {
    if card.state != CardState::Active {
        return Err(DomainError::CardNotActive { state: card.state });
    }
    let available = card.available();
    if available <= 0 {
        return Err(DomainError::InsufficientFunds {
            available,
            requested: available,
        });
    }
    Ok(Decision::new(
        TransactionType::Cashout,
        available,
        card.currency,
        vec![
            (card.available_account(), -available),
            (Account::ProgramCashout(card.program_id.clone()), available),
        ],
        card,
        None,
        None,
    ))
}

/// A lifecycle change that moves no value.
/// Moves the value left on an expired card to its program's breakage account: an `expiry`
/// transaction. Only for a card past its expiry, with value and no pending hold (the sweeper
/// comes back once its holds have ended), of a program that takes breakage.
pub fn expire(program: &Program, card: &CardSnapshot, now: Timestamp) -> Result<Decision, DomainError> {
    if !program.breakage_on_expiry {
        return Err(DomainError::InvalidState {
            state: card.state,
            reason: "its program does not take breakage".into(),
        });
    }
    if !card.is_expired(now) || card.balance <= 0 || card.held != 0 {
        return Err(DomainError::InvalidState {
            state: card.state,
            reason: "only an expired card with value and no pending hold expires".into(),
        });
    }
    if !matches!(card.state, CardState::Active | CardState::Frozen) {
        return Err(DomainError::CardNotActive { state: card.state });
    }
    Ok(Decision::new(
        TransactionType::Expiry,
        card.balance,
        card.currency,
        vec![
            (card.available_account(), -card.balance),
            (Account::ProgramBreakage(card.program_id.clone()), card.balance),
        ],
        card,
        None,
        None,
    ))
}

pub fn freeze(card: &CardSnapshot) -> Result<CardState, DomainError> {
    match card.state {
        CardState::Active => Ok(CardState::Frozen),
        state => Err(DomainError::InvalidState {
            state,
            reason: "only an active card can be frozen".into(),
        }),
    }
}

pub fn unfreeze(card: &CardSnapshot) -> Result<CardState, DomainError> {
    match card.state {
        CardState::Frozen => Ok(CardState::Active),
        state => Err(DomainError::InvalidState {
            state,
            reason: "only a frozen card can be unfrozen".into(),
        }),
    }
}

/// Close a card for good. A card that still has value or pending holds is refused unless
/// `cashout` is set; then every pending hold is released and the whole balance is paid out,
/// in one journal entry.
pub fn deactivate(card: &CardSnapshot, cashout: bool) -> Result<Option<Decision>, DomainError> {
    if card.state == CardState::Closed {
        return Err(DomainError::InvalidState {
            state: card.state,
            reason: "the card is already closed".into(),
        });
    }
    if card.balance == 0 && card.held == 0 {
        return Ok(None);
    }
    if !cashout {
        return Err(DomainError::CardNotEmpty {
            balance: card.balance,
            held: card.held,
        });
    }
    Ok(Some(Decision::new(
        TransactionType::Cashout,
        card.balance,
        card.currency,
        vec![
            (card.held_account(), -card.held),
            (card.available_account(), card.held - card.balance),
            (Account::ProgramCashout(card.program_id.clone()), card.balance),
        ],
        card,
        Some(CardState::Closed),
        None,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(breakage: bool) -> Program {
        let mut new = crate::program::tests::usd_program();
        new.expiry_months = Some(60);
        new.breakage_on_expiry = breakage;
        new.validate(ProgramId::new("prog_1"), Timestamp::from_unix_millis(0))
            .unwrap()
    }

    fn expired_card(balance: i64, held: i64) -> CardSnapshot {
        CardSnapshot {
            id: CardId::new("card_1"),
            program_id: ProgramId::new("prog_1"),
            kind: CardKind::Virtual,
            state: CardState::Active,
            currency: Currency::parse("USD").unwrap(),
            balance,
            held,
            expires_at: Some(Timestamp::from_unix_millis(1_000)),
        }
    }

    #[test]
    fn an_expired_cards_value_moves_to_breakage_only_when_nothing_holds_it_back() {
        let now = Timestamp::from_unix_millis(2_000);
        let decision = expire(&program(true), &expired_card(700, 0), now).unwrap();
        assert_eq!(decision.transaction_type, TransactionType::Expiry);
        assert_eq!(decision.card.balance_delta, -700);
        assert_eq!(
            decision
                .entry
                .delta(&Account::ProgramBreakage(ProgramId::new("prog_1"))),
            700
        );
        // A program that does not take it, a pending hold, no value, not yet expired.
        assert!(expire(&program(false), &expired_card(700, 0), now).is_err());
        assert!(expire(&program(true), &expired_card(700, 100), now).is_err());
        assert!(expire(&program(true), &expired_card(0, 0), now).is_err());
        assert!(
            expire(
                &program(true),
                &expired_card(700, 0),
                Timestamp::from_unix_millis(500)
            )
            .is_err()
        );
    }
}
