//! Property tests for the ledger invariants of `giftd-domain`.
//!
//! Each case builds a random program, issues one card, and drives it through a random sequence
//! of operations (activate, load, redeem, holds and their captures and releases, the hold
//! sweeper, refunds, voids, cashout, freeze and unfreeze, deactivation) the way the store would:
//! it asks the domain to decide, applies only the `Ok` decisions to a `CardSnapshot`, appends
//! their journal entries, and keeps its own model of holds and transactions so that refunds and
//! voids see `refunded` and `voided` exactly as the store computes them. After every step the
//! tests check one invariant each. Nothing here does IO; time is a `Timestamp` that the case
//! advances at random.

use std::collections::BTreeMap;

use giftd_domain::operations::{self, CardSnapshot, Decision, HoldSnapshot, HoldState, OriginalTransaction};
use giftd_domain::{
    Account, Amount, CardId, CardKind, CardState, Currency, DomainError, HoldId, JournalEntry, NewProgram,
    Program, ProgramId, Timestamp, TransactionId, TransactionType,
};
use proptest::prelude::*;
use proptest::sample::Index;

/// Enough cases to reach the rare paths (expired cards, voided refunds) while the suite stays
/// within a few seconds in a debug build.
const CASES: u32 = 256;
/// The longest sequence of operations in one case.
const MAX_OPERATIONS: usize = 60;
const DAY_MILLIS: i64 = 86_400_000;
/// 2024-01-01T00:00:00Z: the clock of every case starts here.
const START_MILLIS: i64 = 1_704_067_200_000;
/// The denominations a program may list; amounts are drawn from them often so that issues and
/// activations of programs with denominations succeed.
const DENOMINATIONS: [i64; 3] = [2_500, 5_000, 10_000];

// ---------------------------------------------------------------------------------------------
// What a case is made of.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct ProgramRules {
    denominations: bool,
    min_load: Option<i64>,
    max_load: Option<i64>,
    max_balance: Option<i64>,
    reloadable: bool,
    /// `(months, promotional)`.
    expiry: Option<(u32, bool)>,
}

#[derive(Debug, Clone, Copy)]
enum CurrencyChoice {
    Omitted,
    Card,
    Other,
}

#[derive(Debug, Clone, Copy)]
enum CaptureAmount {
    /// No amount: capture the whole hold.
    Whole,
    Zero,
    /// A fraction of the hold, `0..=hold`.
    Part(Index),
    /// One more than the hold.
    Over,
    Negative,
}

#[derive(Debug, Clone, Copy)]
enum RefundAmount {
    /// No amount: refund what is left.
    Rest,
    /// `1..=refundable + 1`, so it sometimes asks for one too many.
    Part(Index),
    Huge,
}

/// Which earlier transaction a refund or void refers to.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// Any transaction at all, whatever its type.
    Any(Index),
    /// One of the redemptions and captures.
    Spend(Index),
    /// One of the refunds.
    Refund(Index),
    /// The most recent transaction.
    Last,
}

/// Which hold a capture or release refers to.
#[derive(Debug, Clone, Copy)]
enum HoldTarget {
    /// Any hold, whatever its state.
    Any(Index),
    /// One of the holds still pending in the store (perhaps past its expiry).
    Pending(Index),
}

#[derive(Debug, Clone)]
enum Operation {
    Activate {
        amount: Option<i64>,
    },
    Load {
        amount: i64,
        currency: CurrencyChoice,
    },
    Redeem {
        amount: i64,
        allow_partial: bool,
        currency: CurrencyChoice,
    },
    /// A redemption immediately voided: the balance must come back exactly.
    RedeemThenVoid {
        amount: i64,
        allow_partial: bool,
    },
    PlaceHold {
        amount: i64,
        allow_partial: bool,
        currency: CurrencyChoice,
        lifetime_seconds: i64,
    },
    Capture {
        hold: HoldTarget,
        amount: CaptureAmount,
    },
    Release {
        hold: HoldTarget,
    },
    /// What the store's sweeper does: release every pending hold past its expiry.
    SweepExpiredHolds,
    Refund {
        target: Target,
        amount: RefundAmount,
    },
    Void {
        target: Target,
    },
    Cashout,
    Freeze,
    Unfreeze,
    Deactivate {
        cashout: bool,
    },
}

#[derive(Debug, Clone)]
struct Case {
    rules: ProgramRules,
    kind: CardKind,
    issue_amount: Option<i64>,
    /// Each operation with the milliseconds the clock advances before it.
    operations: Vec<(i64, Operation)>,
}

fn amount() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => 1i64..=20_000,
        2 => prop::sample::select(DENOMINATIONS.to_vec()),
        1 => 1i64..=100,
    ]
}

fn currency_choice() -> impl Strategy<Value = CurrencyChoice> {
    prop_oneof![
        8 => Just(CurrencyChoice::Omitted),
        3 => Just(CurrencyChoice::Card),
        1 => Just(CurrencyChoice::Other),
    ]
}

fn capture_amount() -> impl Strategy<Value = CaptureAmount> {
    prop_oneof![
        3 => Just(CaptureAmount::Whole),
        1 => Just(CaptureAmount::Zero),
        4 => any::<Index>().prop_map(CaptureAmount::Part),
        1 => Just(CaptureAmount::Over),
        1 => Just(CaptureAmount::Negative),
    ]
}

fn refund_amount() -> impl Strategy<Value = RefundAmount> {
    prop_oneof![
        2 => Just(RefundAmount::Rest),
        5 => any::<Index>().prop_map(RefundAmount::Part),
        1 => Just(RefundAmount::Huge),
    ]
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        2 => any::<Index>().prop_map(Target::Any),
        4 => any::<Index>().prop_map(Target::Spend),
        2 => any::<Index>().prop_map(Target::Refund),
        2 => Just(Target::Last),
    ]
}

fn hold_target() -> impl Strategy<Value = HoldTarget> {
    prop_oneof![
        1 => any::<Index>().prop_map(HoldTarget::Any),
        3 => any::<Index>().prop_map(HoldTarget::Pending),
    ]
}

fn operation() -> impl Strategy<Value = Operation> {
    // Weights keep the card usable most of the time: closing is rare, freezing is undone
    // quickly, and holds, refunds and voids mostly refer to something they can act on.
    prop_oneof![
        6 => prop::option::of(amount()).prop_map(|amount| Operation::Activate { amount }),
        12 => (amount(), currency_choice())
            .prop_map(|(amount, currency)| Operation::Load { amount, currency }),
        15 => (amount(), any::<bool>(), currency_choice()).prop_map(
            |(amount, allow_partial, currency)| Operation::Redeem { amount, allow_partial, currency }
        ),
        5 => (amount(), any::<bool>())
            .prop_map(|(amount, allow_partial)| Operation::RedeemThenVoid { amount, allow_partial }),
        15 => (amount(), any::<bool>(), currency_choice(), 60i64..=3_600).prop_map(
            |(amount, allow_partial, currency, lifetime_seconds)| Operation::PlaceHold {
                amount,
                allow_partial,
                currency,
                lifetime_seconds,
            }
        ),
        12 => (hold_target(), capture_amount())
            .prop_map(|(hold, amount)| Operation::Capture { hold, amount }),
        5 => hold_target().prop_map(|hold| Operation::Release { hold }),
        4 => Just(Operation::SweepExpiredHolds),
        15 => (target(), refund_amount())
            .prop_map(|(target, amount)| Operation::Refund { target, amount }),
        10 => target().prop_map(|target| Operation::Void { target }),
        2 => Just(Operation::Cashout),
        2 => Just(Operation::Freeze),
        8 => Just(Operation::Unfreeze),
        1 => any::<bool>().prop_map(|cashout| Operation::Deactivate { cashout }),
    ]
}

/// Mostly seconds, sometimes many minutes (holds expire), rarely weeks (promotional cards
/// expire).
fn clock_step() -> impl Strategy<Value = i64> {
    prop_oneof![
        12 => 0i64..=60_000,
        4 => 0i64..=900_000,
        1 => 0i64..=60 * DAY_MILLIS,
    ]
}

fn program_rules() -> impl Strategy<Value = ProgramRules> {
    (
        prop::bool::weighted(0.25),
        prop::option::weighted(0.3, 100i64..=1_000),
        prop::option::weighted(0.3, 20_000i64..=50_000),
        prop::option::weighted(0.3, 50_000i64..=200_000),
        prop::bool::weighted(0.85),
        prop_oneof![
            2 => Just(None),
            1 => Just(Some((60, false))),
            1 => (1u32..=3).prop_map(|months| Some((months, true))),
        ],
    )
        .prop_map(
            |(denominations, min_load, max_load, max_balance, reloadable, expiry)| ProgramRules {
                denominations,
                min_load,
                max_load,
                max_balance,
                reloadable,
                expiry,
            },
        )
}

fn case() -> impl Strategy<Value = Case> {
    (
        program_rules(),
        prop_oneof![3 => Just(CardKind::Virtual), 1 => Just(CardKind::Physical)],
        prop::option::weighted(0.8, amount()),
        prop::collection::vec((clock_step(), operation()), 0..=MAX_OPERATIONS),
    )
        .prop_map(|(rules, kind, issue_amount, operations)| Case {
            rules,
            kind,
            issue_amount,
            operations,
        })
}

// ---------------------------------------------------------------------------------------------
// The model: what the store would hold for one card.
// ---------------------------------------------------------------------------------------------

fn usd() -> Currency {
    Currency::parse("USD").expect("USD is an ISO 4217 currency")
}

fn eur() -> Currency {
    Currency::parse("EUR").expect("EUR is an ISO 4217 currency")
}

fn positive(minor: i64) -> Amount {
    Amount::new(minor).expect("the strategies only draw positive amounts")
}

fn build_program(rules: &ProgramRules) -> Program {
    let new_program = NewProgram {
        name: "Property".into(),
        currency: usd(),
        denominations: rules
            .denominations
            .then(|| DENOMINATIONS.iter().copied().map(positive).collect()),
        min_load: rules.min_load.map(positive),
        max_load: rules.max_load.map(positive),
        max_balance: rules.max_balance.map(positive),
        reloadable: rules.reloadable,
        expiry_months: rules.expiry.map(|(months, _)| months),
        promotional: rules.expiry.is_some_and(|(_, promotional)| promotional),
        number_prefix: "6036".into(),
        number_length: 16,
        security_code_length: 8,
        promotion_code: None,
        active: true,
        breakage_on_expiry: false,
    };
    new_program
        .validate(
            ProgramId::new("prog_1"),
            Timestamp::from_unix_millis(START_MILLIS),
        )
        .expect("the strategy only builds valid programs")
}

#[derive(Debug, Clone)]
struct Hold {
    id: HoldId,
    amount: i64,
    state: HoldState,
    expires_at: Timestamp,
}

impl Hold {
    fn snapshot(&self, card_id: &CardId) -> HoldSnapshot {
        HoldSnapshot {
            id: self.id.clone(),
            card_id: card_id.clone(),
            amount: self.amount,
            state: self.state,
            expires_at: self.expires_at,
        }
    }
}

#[derive(Debug, Clone)]
struct Transaction {
    id: TransactionId,
    transaction_type: TransactionType,
    amount: i64,
    entry: JournalEntry,
    balance_delta: i64,
    held_delta: i64,
    voided: bool,
    /// For a refund: the index of the transaction it refunds.
    refund_of: Option<usize>,
    /// For a void: the index of the transaction it voids.
    void_of: Option<usize>,
}

/// What one step did, for the properties to inspect.
#[derive(Debug)]
enum Outcome {
    /// The domain decided; these transactions (indices) were appended.
    Applied(Vec<usize>),
    /// A lifecycle change without value (freeze, unfreeze, closing an empty card).
    StateChanged,
    /// The domain refused.
    Refused {
        operation: &'static str,
        error: DomainError,
    },
    /// There was nothing for the operation to refer to (no holds, no transactions).
    Skipped,
}

#[derive(Debug)]
struct Step {
    operation: Operation,
    before: CardSnapshot,
    journal_length_before: usize,
    /// What an independent reading of the rules says: should the domain have accepted?
    expected_ok: bool,
    outcome: Outcome,
}

struct World {
    program: Program,
    card: CardSnapshot,
    now: Timestamp,
    holds: Vec<Hold>,
    transactions: Vec<Transaction>,
}

impl World {
    fn issue(case: &Case) -> Self {
        let program = build_program(&case.rules);
        let now = Timestamp::from_unix_millis(START_MILLIS);
        let card_id = CardId::new("card_1");
        let requested = case.issue_amount.map(positive);
        let issued = match operations::issue(&program, &card_id, case.kind, requested, now) {
            Ok(issued) => issued,
            Err(error) => {
                assert!(
                    matches!(
                        error,
                        DomainError::InvalidAmount { .. } | DomainError::LimitExceeded { .. }
                    ),
                    "issue refused with an unexpected error: {error:?}"
                );
                operations::issue(&program, &card_id, case.kind, None, now)
                    .expect("issuing without value always succeeds")
            }
        };
        let mut world = Self {
            card: CardSnapshot {
                id: card_id,
                program_id: program.id.clone(),
                kind: case.kind,
                state: issued.state,
                currency: program.currency,
                balance: 0,
                held: 0,
                expires_at: issued.expires_at,
            },
            program,
            now,
            holds: Vec::new(),
            transactions: Vec::new(),
        };
        if let Some(decision) = issued.value {
            world.apply(decision, None, None);
        }
        world
    }

    fn currency(&self, choice: CurrencyChoice) -> Option<Currency> {
        match choice {
            CurrencyChoice::Omitted => None,
            CurrencyChoice::Card => Some(self.card.currency),
            CurrencyChoice::Other => Some(eur()),
        }
    }

    fn journal(&self) -> impl Iterator<Item = &JournalEntry> {
        self.transactions.iter().map(|t| &t.entry)
    }

    /// Sum of the refunds of `index` that have not been voided, as the store computes it.
    fn refunded(&self, index: usize) -> i64 {
        self.transactions
            .iter()
            .filter(|t| t.refund_of == Some(index) && !t.voided)
            .map(|t| t.amount)
            .sum()
    }

    fn original(&self, index: usize) -> OriginalTransaction {
        let t = &self.transactions[index];
        OriginalTransaction {
            id: t.id.clone(),
            card_id: self.card.id.clone(),
            transaction_type: t.transaction_type,
            amount: t.amount,
            refunded: self.refunded(index),
            voided: t.voided,
        }
    }

    fn pick(&self, target: Target) -> Option<usize> {
        let of_types = |types: &[TransactionType], index: Index| {
            let matching: Vec<usize> = (0..self.transactions.len())
                .filter(|&i| types.contains(&self.transactions[i].transaction_type))
                .collect();
            (!matching.is_empty()).then(|| matching[index.index(matching.len())])
        };
        match target {
            Target::Any(index) => {
                (!self.transactions.is_empty()).then(|| index.index(self.transactions.len()))
            }
            Target::Spend(index) => of_types(&[TransactionType::Redemption, TransactionType::Capture], index),
            Target::Refund(index) => of_types(&[TransactionType::Refund], index),
            Target::Last => self.transactions.len().checked_sub(1),
        }
    }

    fn pick_hold(&self, target: HoldTarget) -> Option<usize> {
        let (candidates, index): (Vec<usize>, Index) = match target {
            HoldTarget::Any(index) => ((0..self.holds.len()).collect(), index),
            HoldTarget::Pending(index) => (
                (0..self.holds.len())
                    .filter(|&i| self.holds[i].state == HoldState::Pending)
                    .collect(),
                index,
            ),
        };
        (!candidates.is_empty()).then(|| candidates[index.index(candidates.len())])
    }

    /// Applies a decision the way the store does and records its transaction.
    fn apply(&mut self, decision: Decision, refund_of: Option<usize>, void_of: Option<usize>) -> usize {
        let effect = &decision.card;
        self.card.balance = decision.balance_after(self.card.balance);
        self.card.held += effect.held_delta;
        if let Some(state) = effect.new_state {
            self.card.state = state;
        }
        if let Some(expires_at) = effect.new_expires_at {
            self.card.expires_at = expires_at;
        }
        if let Some(original) = void_of {
            self.transactions[original].voided = true;
        }
        let index = self.transactions.len();
        self.transactions.push(Transaction {
            id: TransactionId::new(format!("txn_{index}")),
            transaction_type: decision.transaction_type,
            amount: decision.amount,
            balance_delta: effect.balance_delta,
            held_delta: effect.held_delta,
            entry: decision.entry,
            voided: false,
            refund_of,
            void_of,
        });
        index
    }

    fn spend_would_succeed(&self, amount: i64, allow_partial: bool, currency: Option<Currency>) -> bool {
        let card = &self.card;
        currency.is_none_or(|c| c == card.currency)
            && card.state == CardState::Active
            && !card.is_expired(self.now)
            && (card.available() >= amount || (allow_partial && card.available() > 0))
    }

    fn value_would_succeed(&self, amount: i64, first_value: bool) -> bool {
        let program = &self.program;
        let denomination_ok = !first_value
            || program
                .denominations
                .as_ref()
                .is_none_or(|ds| ds.iter().any(|d| d.minor() == amount));
        denomination_ok
            && program.min_load.is_none_or(|min| amount >= min.minor())
            && program.max_load.is_none_or(|max| amount <= max.minor())
            && program
                .max_balance
                .is_none_or(|max| self.card.balance + amount <= max.minor())
    }

    fn void_would_succeed(&self, index: usize) -> bool {
        let original = self.original(index);
        if original.voided || self.card.state == CardState::Closed || original.amount == 0 {
            return false;
        }
        match original.transaction_type {
            TransactionType::Redemption | TransactionType::Capture => original.refunded == 0,
            TransactionType::Issue
            | TransactionType::Activation
            | TransactionType::Load
            | TransactionType::Refund => self.card.available() >= original.amount,
            TransactionType::Cashout => true,
            _ => false,
        }
    }

    /// Runs one operation, returning what happened. Only `Ok` decisions touch the model.
    fn step(&mut self, advance_millis: i64, operation: Operation) -> Step {
        self.now = self.now.plus_millis(advance_millis);
        let before = self.card.clone();
        let journal_length_before = self.transactions.len();
        let (expected_ok, outcome) = self.run(&operation);
        Step {
            operation,
            before,
            journal_length_before,
            expected_ok,
            outcome,
        }
    }

    fn decided(
        &mut self,
        operation: &'static str,
        result: Result<Decision, DomainError>,
        refund_of: Option<usize>,
        void_of: Option<usize>,
    ) -> Outcome {
        match result {
            Ok(decision) => Outcome::Applied(vec![self.apply(decision, refund_of, void_of)]),
            Err(error) => Outcome::Refused { operation, error },
        }
    }

    fn run(&mut self, operation: &Operation) -> (bool, Outcome) {
        let now = self.now;
        match *operation {
            Operation::Activate { amount } => {
                let expected = self.card.state == CardState::Inactive
                    && amount.is_none_or(|a| self.value_would_succeed(a, true));
                let result = operations::activate(&self.program, &self.card, amount.map(positive), now);
                (expected, self.decided("activate", result, None, None))
            }
            Operation::Load { amount, currency } => {
                let currency = self.currency(currency);
                let expected = currency.is_none_or(|c| c == self.card.currency)
                    && self.card.state == CardState::Active
                    && !self.card.is_expired(now)
                    && self.program.reloadable
                    && self.value_would_succeed(amount, false);
                let result = operations::load(&self.program, &self.card, positive(amount), currency, now);
                (expected, self.decided("load", result, None, None))
            }
            Operation::Redeem {
                amount,
                allow_partial,
                currency,
            } => {
                let currency = self.currency(currency);
                let expected = self.spend_would_succeed(amount, allow_partial, currency);
                let result = operations::redeem(&self.card, positive(amount), allow_partial, currency, now);
                (expected, self.decided("redeem", result, None, None))
            }
            Operation::RedeemThenVoid {
                amount,
                allow_partial,
            } => {
                let expected = self.spend_would_succeed(amount, allow_partial, None);
                let redemption =
                    match operations::redeem(&self.card, positive(amount), allow_partial, None, now) {
                        Ok(decision) => self.apply(decision, None, None),
                        Err(error) => {
                            return (
                                expected,
                                Outcome::Refused {
                                    operation: "redeem",
                                    error,
                                },
                            );
                        }
                    };
                // A redemption just made is never voided or refunded, and the card is active.
                let void = operations::void(&self.card, &self.original(redemption))
                    .expect("a fresh redemption can always be voided");
                let void = self.apply(void, None, Some(redemption));
                (expected, Outcome::Applied(vec![redemption, void]))
            }
            Operation::PlaceHold {
                amount,
                allow_partial,
                currency,
                lifetime_seconds,
            } => {
                let currency = self.currency(currency);
                let expected = self.spend_would_succeed(amount, allow_partial, currency);
                match operations::place_hold(&self.card, positive(amount), allow_partial, currency, now) {
                    Ok(decision) => {
                        let reserved = decision.amount;
                        let index = self.apply(decision, None, None);
                        self.holds.push(Hold {
                            id: HoldId::new(format!("hold_{}", self.holds.len())),
                            amount: reserved,
                            state: HoldState::Pending,
                            expires_at: now.plus_seconds(lifetime_seconds),
                        });
                        (expected, Outcome::Applied(vec![index]))
                    }
                    Err(error) => (
                        expected,
                        Outcome::Refused {
                            operation: "place_hold",
                            error,
                        },
                    ),
                }
            }
            Operation::Capture { hold, amount } => {
                let Some(index) = self.pick_hold(hold) else {
                    return (true, Outcome::Skipped);
                };
                let hold = self.holds[index].clone();
                let requested = match amount {
                    CaptureAmount::Whole => None,
                    CaptureAmount::Zero => Some(0),
                    CaptureAmount::Part(part) => Some(part.index(hold.amount as usize + 1) as i64),
                    CaptureAmount::Over => Some(hold.amount + 1),
                    CaptureAmount::Negative => Some(-1),
                };
                let captured = requested.unwrap_or(hold.amount);
                let expected = hold.state == HoldState::Pending
                    && hold.expires_at > now
                    && (0..=hold.amount).contains(&captured)
                    && (captured == 0 || self.card.state == CardState::Active);
                let result = operations::capture(&self.card, &hold.snapshot(&self.card.id), requested, now);
                let outcome = self.decided("capture", result, None, None);
                if matches!(outcome, Outcome::Applied(_)) {
                    self.holds[index].state = HoldState::Captured;
                }
                (expected, outcome)
            }
            Operation::Release { hold } => {
                let Some(index) = self.pick_hold(hold) else {
                    return (true, Outcome::Skipped);
                };
                let hold = self.holds[index].clone();
                let expected = hold.state == HoldState::Pending && hold.expires_at > now;
                let result = operations::release_requested(&self.card, &hold.snapshot(&self.card.id), now);
                let outcome = self.decided("release", result, None, None);
                if matches!(outcome, Outcome::Applied(_)) {
                    self.holds[index].state = HoldState::Released;
                }
                (expected, outcome)
            }
            Operation::SweepExpiredHolds => {
                let mut applied = Vec::new();
                for index in 0..self.holds.len() {
                    let hold = &self.holds[index];
                    if hold.state == HoldState::Pending && hold.expires_at <= now {
                        let decision = operations::release(&self.card, &hold.snapshot(&self.card.id));
                        self.holds[index].state = HoldState::Expired;
                        applied.push(self.apply(decision, None, None));
                    }
                }
                (true, Outcome::Applied(applied))
            }
            Operation::Refund { target, amount } => {
                let Some(index) = self.pick(target) else {
                    return (true, Outcome::Skipped);
                };
                let original = self.original(index);
                let refundable = original.amount - original.refunded;
                let requested = match amount {
                    RefundAmount::Rest => None,
                    RefundAmount::Part(part) => Some(part.index(refundable.max(0) as usize + 1) as i64 + 1),
                    RefundAmount::Huge => Some(i64::MAX),
                };
                let asked = requested.unwrap_or(refundable);
                let expected = matches!(
                    original.transaction_type,
                    TransactionType::Redemption | TransactionType::Capture
                ) && !original.voided
                    && self.card.state != CardState::Closed
                    && asked > 0
                    && asked <= refundable;
                let result = operations::refund(&self.card, &original, requested.map(positive));
                (expected, self.decided("refund", result, Some(index), None))
            }
            Operation::Void { target } => {
                let Some(index) = self.pick(target) else {
                    return (true, Outcome::Skipped);
                };
                let expected = self.void_would_succeed(index);
                let result = operations::void(&self.card, &self.original(index));
                (expected, self.decided("void", result, None, Some(index)))
            }
            Operation::Cashout => {
                let expected = self.card.state == CardState::Active && self.card.available() > 0;
                let result = operations::cashout(&self.card);
                (expected, self.decided("cashout", result, None, None))
            }
            Operation::Freeze => {
                let expected = self.card.state == CardState::Active;
                (expected, self.lifecycle("freeze", operations::freeze(&self.card)))
            }
            Operation::Unfreeze => {
                let expected = self.card.state == CardState::Frozen;
                (
                    expected,
                    self.lifecycle("unfreeze", operations::unfreeze(&self.card)),
                )
            }
            Operation::Deactivate { cashout } => {
                let expected = self.card.state != CardState::Closed
                    && (cashout || (self.card.balance == 0 && self.card.held == 0));
                let outcome = match operations::deactivate(&self.card, cashout) {
                    Ok(Some(decision)) => Outcome::Applied(vec![self.apply(decision, None, None)]),
                    Ok(None) => {
                        self.card.state = CardState::Closed;
                        Outcome::StateChanged
                    }
                    Err(error) => Outcome::Refused {
                        operation: "deactivate",
                        error,
                    },
                };
                if self.card.state == CardState::Closed {
                    // The store releases every pending hold of a card it closes; the cashout
                    // entry has already moved their value out of the held account.
                    for hold in &mut self.holds {
                        if hold.state == HoldState::Pending {
                            hold.state = HoldState::Released;
                        }
                    }
                }
                (expected, outcome)
            }
        }
    }

    fn lifecycle(&mut self, operation: &'static str, result: Result<CardState, DomainError>) -> Outcome {
        match result {
            Ok(state) => {
                self.card.state = state;
                Outcome::StateChanged
            }
            Err(error) => Outcome::Refused { operation, error },
        }
    }
}

/// Issues the card and runs every operation of the case, calling `check` after the issue
/// (with no step) and after every step.
fn run_case(
    case: Case,
    mut check: impl FnMut(&World, Option<&Step>) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError> {
    let mut world = World::issue(&case);
    check(&world, None)?;
    for (advance_millis, operation) in case.operations {
        let step = world.step(advance_millis, operation);
        check(&world, Some(&step))?;
    }
    Ok(())
}

/// The errors each operation may be refused with: business outcomes, nothing else.
fn is_expected_refusal(operation: &str, error: &DomainError) -> bool {
    use DomainError as E;
    match operation {
        "activate" => matches!(
            error,
            E::InvalidState { .. } | E::InvalidAmount { .. } | E::LimitExceeded { .. }
        ),
        "load" => matches!(
            error,
            E::CurrencyMismatch { .. }
                | E::CardNotActive { .. }
                | E::CardExpired
                | E::NotReloadable
                | E::LimitExceeded { .. }
        ),
        "redeem" | "place_hold" => matches!(
            error,
            E::CurrencyMismatch { .. }
                | E::CardNotActive { .. }
                | E::CardExpired
                | E::InsufficientFunds { .. }
        ),
        "capture" => matches!(
            error,
            E::HoldNotPending { .. } | E::InvalidAmount { .. } | E::CardNotActive { .. }
        ),
        "release" => matches!(error, E::HoldNotPending { .. }),
        "refund" => matches!(
            error,
            E::NotRefundable { .. }
                | E::NotReversible { .. }
                | E::CardNotActive { .. }
                | E::RefundExceedsAmount { .. }
        ),
        "void" => matches!(error, E::NotReversible { .. } | E::CardNotActive { .. }),
        "cashout" => matches!(error, E::CardNotActive { .. } | E::InsufficientFunds { .. }),
        "freeze" | "unfreeze" => matches!(error, E::InvalidState { .. }),
        "deactivate" => matches!(error, E::InvalidState { .. } | E::CardNotEmpty { .. }),
        _ => false,
    }
}

fn sum_to(world: &World, account: &Account) -> i128 {
    world
        .journal()
        .flat_map(JournalEntry::postings)
        .filter(|p| &p.account == account)
        .map(|p| i128::from(p.amount))
        .sum()
}

// ---------------------------------------------------------------------------------------------
// The properties.
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn balances_never_go_negative_and_holds_never_exceed_the_balance(case in case()) {
        run_case(case, |world, step| {
            let card = &world.card;
            prop_assert!(card.balance >= 0, "negative balance {card:?} after {step:?}");
            prop_assert!(card.held >= 0, "negative held {card:?} after {step:?}");
            prop_assert!(card.held <= card.balance, "held above balance {card:?} after {step:?}");
            prop_assert!(card.available() >= 0);
            Ok(())
        })?;
    }

    #[test]
    fn every_journal_entry_balances_and_has_no_zero_posting(case in case()) {
        run_case(case, |world, step| {
            let Some(Step { outcome: Outcome::Applied(indices), .. }) = step else {
                return Ok(());
            };
            for &index in indices {
                let entry = &world.transactions[index].entry;
                prop_assert!(entry.check_balanced().is_ok(), "unbalanced {entry:?}");
                let mut sums: BTreeMap<&str, i128> = BTreeMap::new();
                for posting in entry.postings() {
                    prop_assert_ne!(posting.amount, 0, "zero posting in {:?}", entry);
                    *sums.entry(posting.currency.code()).or_default() += i128::from(posting.amount);
                }
                prop_assert!(sums.values().all(|sum| *sum == 0), "unbalanced {entry:?}");
            }
            Ok(())
        })?;
    }

    #[test]
    fn card_balance_and_held_match_the_journal_and_the_pending_holds(case in case()) {
        run_case(case, |world, step| {
            let card = &world.card;
            let available = sum_to(world, &Account::CardAvailable(card.id.clone()));
            let held = sum_to(world, &Account::CardHeld(card.id.clone()));
            prop_assert_eq!(available + held, i128::from(card.balance), "after {:?}", step);
            prop_assert_eq!(held, i128::from(card.held), "after {:?}", step);
            let pending: i64 = world
                .holds
                .iter()
                .filter(|h| h.state == HoldState::Pending)
                .map(|h| h.amount)
                .sum();
            prop_assert_eq!(pending, card.held, "after {:?}", step);
            // Each recorded effect is what its entry does to the card's two accounts.
            for t in &world.transactions {
                let entry_held = t.entry.delta(&Account::CardHeld(card.id.clone()));
                let entry_available = t.entry.delta(&Account::CardAvailable(card.id.clone()));
                prop_assert_eq!(t.held_delta, entry_held);
                prop_assert_eq!(t.balance_delta, entry_available + entry_held);
            }
            Ok(())
        })?;
    }

    #[test]
    fn voiding_a_redemption_restores_the_balance_exactly(case in case()) {
        run_case(case, |world, step| {
            let Some(step) = step else { return Ok(()) };
            let Outcome::Applied(indices) = &step.outcome else { return Ok(()) };
            if let Operation::RedeemThenVoid { .. } = step.operation {
                prop_assert_eq!(indices.len(), 2);
                prop_assert_eq!(world.card.balance, step.before.balance, "after {:?}", step);
                prop_assert_eq!(world.card.held, step.before.held, "after {:?}", step);
                prop_assert_eq!(world.card.state, step.before.state);
            }
            for &index in indices {
                let void = &world.transactions[index];
                let Some(original) = void.void_of else { continue };
                let original = &world.transactions[original];
                prop_assert_eq!(void.transaction_type, TransactionType::Void);
                prop_assert_eq!(void.amount, original.amount);
                prop_assert!(original.voided);
                // Whatever happened in between, the void undoes exactly what the original
                // did to the card's balance, and puts nothing on hold.
                prop_assert_eq!(void.balance_delta, -original.balance_delta, "{:?}", step);
                prop_assert_eq!(void.held_delta, 0);
                if original.transaction_type != TransactionType::Capture {
                    // Not a capture (whose entry also released its hold): the void's entry is
                    // the original's, every posting negated.
                    let mut undone: Vec<(Account, i64)> = original
                        .entry
                        .postings()
                        .iter()
                        .map(|p| (p.account.clone(), -p.amount))
                        .collect();
                    let mut posted: Vec<(Account, i64)> = void
                        .entry
                        .postings()
                        .iter()
                        .map(|p| (p.account.clone(), p.amount))
                        .collect();
                    undone.sort();
                    posted.sort();
                    prop_assert_eq!(undone, posted);
                }
            }
            Ok(())
        })?;
    }

    #[test]
    fn refunds_never_sum_beyond_the_refunded_transaction(case in case()) {
        run_case(case, |world, step| {
            for (index, original) in world.transactions.iter().enumerate() {
                let refunded = world.refunded(index);
                prop_assert!(
                    refunded <= original.amount,
                    "refunds of {original:?} sum to {refunded} after {step:?}"
                );
                if refunded > 0 {
                    prop_assert!(matches!(
                        original.transaction_type,
                        TransactionType::Redemption | TransactionType::Capture
                    ));
                    prop_assert!(!original.voided, "voided yet refunded: {original:?}");
                }
            }
            Ok(())
        })?;
    }

    #[test]
    fn refused_operations_are_business_outcomes_and_change_nothing(case in case()) {
        run_case(case, |world, step| {
            let Some(step) = step else { return Ok(()) };
            match &step.outcome {
                Outcome::Refused { operation, error } => {
                    prop_assert!(
                        is_expected_refusal(operation, error),
                        "{operation} refused with {error:?}"
                    );
                    prop_assert!(!step.expected_ok, "{operation} refused with {error:?}: {step:?}");
                    prop_assert_eq!(&world.card, &step.before);
                    prop_assert_eq!(world.transactions.len(), step.journal_length_before);
                }
                Outcome::Applied(_) | Outcome::StateChanged => {
                    prop_assert!(step.expected_ok, "accepted against the rules: {step:?}");
                }
                Outcome::Skipped => {}
            }
            Ok(())
        })?;
    }

    #[test]
    fn money_is_conserved_across_all_accounts(case in case()) {
        run_case(case, |world, step| {
            let mut per_account: BTreeMap<&Account, i128> = BTreeMap::new();
            for posting in world.journal().flat_map(JournalEntry::postings) {
                *per_account.entry(&posting.account).or_default() += i128::from(posting.amount);
            }
            let total: i128 = per_account.values().sum();
            prop_assert_eq!(total, 0, "after {:?}", step);
            // The program's accounts keep their signs: funding only ever gives, redemption
            // and cashout only ever receive.
            let program = world.program.id.clone();
            let funding = sum_to(world, &Account::ProgramFunding(program.clone()));
            let redemption = sum_to(world, &Account::ProgramRedemption(program.clone()));
            let cashout = sum_to(world, &Account::ProgramCashout(program));
            prop_assert!(funding <= 0, "funding {funding} after {step:?}");
            prop_assert!(redemption >= 0, "redemption {redemption} after {step:?}");
            prop_assert!(cashout >= 0, "cashout {cashout} after {step:?}");
            Ok(())
        })?;
    }
}
