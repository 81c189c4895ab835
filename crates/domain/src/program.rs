//! Programs: the rules of a family of cards (currency, denominations, load limits, maximum
//! balance, reloadability, expiry, number format, security code length) and whether the
//! program still puts new cards into circulation (`active`).

use crate::card::{GENERATED_NUMBER_LENGTH, MIN_RANDOM_DIGITS, SECURITY_CODE_LENGTH};
use crate::error::DomainError;
use crate::ids::ProgramId;
use crate::money::{Amount, Currency};
use crate::time::Timestamp;

/// The US CARD Act floor: funds may not expire within five years of issue or of the last load.
/// Only programs marked promotional may set a shorter expiry.
pub const MIN_NON_PROMOTIONAL_EXPIRY_MONTHS: u32 = 60;
/// A hundred years: past that an expiry is a typo.
pub const MAX_EXPIRY_MONTHS: u32 = 1200;
/// A program lists at most this many denominations.
pub const MAX_DENOMINATIONS: usize = 50;
pub const MAX_NAME_LENGTH: usize = 200;
/// The most one operation (issue, activation, load) may put on a card when its program sets no
/// `max_load`, in minor units: 999,999.99 in a two-decimal currency, the most Clover takes. A
/// request in the wrong units (major units read as minor, a number typed twice) is refused
/// rather than carried out; a program that needs more sets its own `max_load`.
pub const DEFAULT_MAX_LOAD: i64 = 99_999_999;
/// The most a card may hold when its program sets no `max_balance`, in minor units.
pub const DEFAULT_MAX_BALANCE: i64 = 99_999_999;
pub const MAX_PROMOTION_CODE_LENGTH: usize = 64;

/// A program as a client asks for it, already parsed into domain types.
#[derive(Debug, Clone)]
pub struct NewProgram {
    pub name: String,
    pub currency: Currency,
    pub denominations: Option<Vec<Amount>>,
    pub min_load: Option<Amount>,
    pub max_load: Option<Amount>,
    pub max_balance: Option<Amount>,
    pub reloadable: bool,
    pub expiry_months: Option<u32>,
    pub promotional: bool,
    pub number_prefix: String,
    pub number_length: u32,
    pub security_code_length: u32,
    pub promotion_code: Option<String>,
    /// Whether the program issues new cards (see [`Program::check_issuing`]).
    pub active: bool,
    /// Whether value left on an expired card moves to the program's breakage account
    /// (`operations::expire`). Off unless asked: many jurisdictions forbid taking it.
    pub breakage_on_expiry: bool,
}

/// A change to a program (`PATCH /v1/programs/{id}`): a field left `None` stays as it is; for
/// an optional field, `Some(None)` clears it. The currency, the number format and whether the
/// program is promotional never change: cards were issued under them.
#[derive(Debug, Clone, Default)]
pub struct ProgramChanges {
    pub name: Option<String>,
    pub denominations: Option<Option<Vec<Amount>>>,
    pub min_load: Option<Option<Amount>>,
    pub max_load: Option<Option<Amount>>,
    pub max_balance: Option<Option<Amount>>,
    pub reloadable: Option<bool>,
    pub expiry_months: Option<Option<u32>>,
    pub promotion_code: Option<Option<String>>,
    pub active: Option<bool>,
    /// May be turned off, never on: cards were sold without it.
    pub breakage_on_expiry: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct Program {
    pub id: ProgramId,
    pub name: String,
    pub currency: Currency,
    pub denominations: Option<Vec<Amount>>,
    pub min_load: Option<Amount>,
    pub max_load: Option<Amount>,
    pub max_balance: Option<Amount>,
    pub reloadable: bool,
    pub expiry_months: Option<u32>,
    pub promotional: bool,
    pub number_prefix: String,
    pub number_length: u32,
    pub security_code_length: u32,
    pub promotion_code: Option<String>,
    /// An inactive program issues no new cards and activates no card stock; the cards it has
    /// already put into circulation keep working as before.
    pub active: bool,
    /// Value left on its cards when they expire moves to the program's breakage account.
    pub breakage_on_expiry: bool,
    pub created_at: Timestamp,
}

/// A program's `max_load`, or [`DEFAULT_MAX_LOAD`] when it sets none.
fn max_load_or_default(max_load: Option<Amount>) -> Amount {
    max_load.unwrap_or_else(|| Amount::new(DEFAULT_MAX_LOAD).expect("the default is positive"))
}

/// A program's `max_balance`, or [`DEFAULT_MAX_BALANCE`] when it sets none.
fn max_balance_or_default(max_balance: Option<Amount>) -> Amount {
    max_balance.unwrap_or_else(|| Amount::new(DEFAULT_MAX_BALANCE).expect("the default is positive"))
}

fn invalid(param: &'static str, reason: impl Into<String>) -> DomainError {
    DomainError::InvalidProgram {
        param,
        reason: reason.into(),
    }
}

impl NewProgram {
    /// Checks the rules that tie the fields together and gives the program its id.
    pub fn validate(self, id: ProgramId, now: Timestamp) -> Result<Program, DomainError> {
        let name = self.name.trim();
        if name.is_empty() || name.len() > MAX_NAME_LENGTH {
            return Err(invalid("name", "name must be 1 to 200 characters"));
        }
        if let Some(denominations) = &self.denominations
            && (denominations.is_empty() || denominations.len() > MAX_DENOMINATIONS)
        {
            return Err(invalid(
                "denominations",
                "denominations must list 1 to 50 amounts",
            ));
        }
        // Unset ceilings are the defaults, so that the rules hold for what is enforced.
        let max_balance = max_balance_or_default(self.max_balance);
        if let Some(max_load) = self.max_load
            && max_load > max_balance
        {
            return Err(invalid(
                "max_load",
                format!("max_load must not exceed max_balance ({DEFAULT_MAX_BALANCE} when not set)"),
            ));
        }
        let max_load = self
            .max_load
            .unwrap_or(max_load_or_default(None).min(max_balance));
        if let Some(min) = self.min_load
            && min > max_load
        {
            return Err(invalid(
                "min_load",
                format!("min_load must not exceed max_load or max_balance ({DEFAULT_MAX_LOAD} when not set)"),
            ));
        }
        if let Some(denominations) = &self.denominations
            && denominations.iter().any(|d| *d > max_load)
        {
            return Err(invalid(
                "denominations",
                format!(
                    "every denomination must fit within max_load and max_balance ({DEFAULT_MAX_LOAD} when not set)"
                ),
            ));
        }
        if let Some(months) = self.expiry_months {
            if months == 0 || months > MAX_EXPIRY_MONTHS {
                return Err(invalid("expiry_months", "expiry_months must be 1 to 1200"));
            }
            if !self.promotional && months < MIN_NON_PROMOTIONAL_EXPIRY_MONTHS {
                return Err(invalid(
                    "expiry_months",
                    "funds may not expire within 60 months of issue or last load unless the program is promotional",
                ));
            }
        }
        if !GENERATED_NUMBER_LENGTH.contains(&self.number_length) {
            return Err(invalid("number_length", "number_length must be 13 to 19"));
        }
        if !self.number_prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("number_prefix", "number_prefix must be digits"));
        }
        if self.number_prefix.len() as u32 + MIN_RANDOM_DIGITS + 1 > self.number_length {
            return Err(invalid(
                "number_prefix",
                "number_prefix leaves fewer than 6 random digits before the check digit",
            ));
        }
        if !SECURITY_CODE_LENGTH.contains(&self.security_code_length) {
            return Err(invalid(
                "security_code_length",
                "security_code_length must be 4 to 8",
            ));
        }
        if let Some(code) = &self.promotion_code {
            let printable = code.bytes().all(|b| b.is_ascii_graphic());
            if code.is_empty() || code.len() > MAX_PROMOTION_CODE_LENGTH || !printable {
                return Err(invalid(
                    "promotion_code",
                    "promotion_code must be 1 to 64 printable ASCII characters",
                ));
            }
        }
        if self.breakage_on_expiry && self.expiry_months.is_none() {
            return Err(invalid(
                "breakage_on_expiry",
                "breakage_on_expiry needs expiry_months: cards that never expire have no breakage",
            ));
        }
        Ok(Program {
            id,
            name: name.to_owned(),
            currency: self.currency,
            denominations: self.denominations,
            min_load: self.min_load,
            max_load: self.max_load,
            max_balance: self.max_balance,
            reloadable: self.reloadable,
            expiry_months: self.expiry_months,
            promotional: self.promotional,
            number_prefix: self.number_prefix,
            number_length: self.number_length,
            security_code_length: self.security_code_length,
            promotion_code: self.promotion_code,
            active: self.active,
            breakage_on_expiry: self.breakage_on_expiry,
            created_at: now,
        })
    }
}

impl Program {
    /// The program with `changes` applied, under every rule a new program meets, and one more:
    /// a change may not break a promise made to cards already issued. Their funds were promised
    /// to last `expiry_months` from issue or last load (or forever), so expiry may be lengthened
    /// or dropped, never shortened or introduced. Limits and reloadability may change: they
    /// govern what is loaded from now on, never value already on a card. A program may be made
    /// inactive and active again: that governs new cards only (see [`Program::check_issuing`]).
    pub fn amend(&self, changes: &ProgramChanges) -> Result<Program, DomainError> {
        if let Some(expiry) = changes.expiry_months {
            match (self.expiry_months, expiry) {
                (None, Some(_)) => {
                    return Err(invalid(
                        "expiry_months",
                        "this program's cards never expire, and a change may not make them expire",
                    ));
                }
                (Some(now), Some(asked)) if asked < now => {
                    return Err(invalid(
                        "expiry_months",
                        format!("expiry may only be lengthened: cards were promised {now} months"),
                    ));
                }
                (_, _) => {}
            }
        }
        if changes.breakage_on_expiry == Some(true) && !self.breakage_on_expiry {
            return Err(invalid(
                "breakage_on_expiry",
                "breakage may not be turned on: this program's cards were sold without it",
            ));
        }
        fn pick<T: Clone>(change: &Option<T>, current: &T) -> T {
            change.as_ref().unwrap_or(current).clone()
        }
        let amended = NewProgram {
            name: pick(&changes.name, &self.name),
            currency: self.currency,
            denominations: pick(&changes.denominations, &self.denominations),
            min_load: pick(&changes.min_load, &self.min_load),
            max_load: pick(&changes.max_load, &self.max_load),
            max_balance: pick(&changes.max_balance, &self.max_balance),
            reloadable: pick(&changes.reloadable, &self.reloadable),
            expiry_months: pick(&changes.expiry_months, &self.expiry_months),
            promotional: self.promotional,
            number_prefix: self.number_prefix.clone(),
            number_length: self.number_length,
            security_code_length: self.security_code_length,
            promotion_code: pick(&changes.promotion_code, &self.promotion_code),
            active: pick(&changes.active, &self.active),
            breakage_on_expiry: pick(&changes.breakage_on_expiry, &self.breakage_on_expiry),
        };
        amended.validate(self.id.clone(), self.created_at)
    }

    /// Checks that the program may put a new card into circulation: issue one (virtual or
    /// physical, drawn or imported, one at a time or as card stock) or activate card stock
    /// already printed, which is when such a card first takes value. An inactive program does
    /// neither. Everything else a card does (loads, redemptions, holds, refunds, voids,
    /// transfers between existing cards, closing) is a promise already made, and does not ask.
    pub fn check_issuing(&self) -> Result<(), DomainError> {
        if self.active {
            Ok(())
        } else {
            Err(DomainError::ProgramInactive)
        }
    }

    /// Checks an amount that puts value on a card: the first value (issue, activation) must be
    /// one of the denominations when the program has them; every value respects the load limits.
    pub fn check_value_amount(&self, amount: Amount, first_value: bool) -> Result<(), DomainError> {
        if first_value
            && let Some(denominations) = &self.denominations
            && !denominations.contains(&amount)
        {
            return Err(DomainError::InvalidAmount {
                reason: format!("{amount} is not one of the program's denominations"),
            });
        }
        if let Some(min) = self.min_load
            && amount < min
        {
            return Err(DomainError::LimitExceeded {
                reason: format!("{amount} is below the program's min_load of {min}"),
            });
        }
        let max = max_load_or_default(self.max_load);
        if amount > max {
            let reason = if self.max_load.is_some() {
                format!("{amount} is above the program's max_load of {max}")
            } else {
                format!(
                    "{amount} is above {max}, the most one operation may put on a card unless the program sets max_load (is the amount in minor units?)"
                )
            };
            return Err(DomainError::LimitExceeded { reason });
        }
        Ok(())
    }

    /// Checks that a card may hold `after` (its balance once value is put on it).
    pub fn check_balance_after(&self, after: i64) -> Result<(), DomainError> {
        let max = max_balance_or_default(self.max_balance);
        if after > max.minor() {
            let whose = if self.max_balance.is_some() {
                "the program's max_balance"
            } else {
                "the most a card may hold unless the program sets max_balance,"
            };
            return Err(DomainError::LimitExceeded {
                reason: format!("the balance would be {after}, above {whose} {max}"),
            });
        }
        Ok(())
    }

    /// The expiry a card gets when value is put on it at `now`: never earlier than it had.
    pub fn expiry_after_value(&self, now: Timestamp, current: Option<Timestamp>) -> Option<Timestamp> {
        let months = self.expiry_months?;
        let pushed = now.plus_months(months);
        Some(current.map_or(pushed, |c| c.max(pushed)))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn usd_program() -> NewProgram {
        NewProgram {
            name: "Holiday".into(),
            currency: Currency::parse("USD").unwrap(),
            denominations: None,
            min_load: None,
            max_load: None,
            max_balance: None,
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
    }

    fn validate(program: NewProgram) -> Result<Program, DomainError> {
        program.validate(ProgramId::new("prog_1"), Timestamp::from_unix_millis(0))
    }

    #[test]
    fn non_promotional_expiry_under_sixty_months_is_refused() {
        let mut program = usd_program();
        program.expiry_months = Some(12);
        assert!(matches!(
            validate(program.clone()),
            Err(DomainError::InvalidProgram {
                param: "expiry_months",
                ..
            })
        ));
        program.promotional = true;
        assert!(validate(program).is_ok());
    }

    #[test]
    fn without_ceilings_of_its_own_a_program_takes_at_most_the_default_per_operation_and_per_card() {
        let program = validate(usd_program()).unwrap();
        let amount = |minor| Amount::new(minor).unwrap();
        assert!(program.check_value_amount(amount(DEFAULT_MAX_LOAD), true).is_ok());
        let Err(DomainError::LimitExceeded { reason }) =
            program.check_value_amount(amount(DEFAULT_MAX_LOAD + 1), true)
        else {
            panic!("a load above the default ceiling is refused");
        };
        assert!(reason.contains("minor units"), "{reason}");
        assert!(program.check_balance_after(DEFAULT_MAX_BALANCE).is_ok());
        assert!(matches!(
            program.check_balance_after(DEFAULT_MAX_BALANCE + 1),
            Err(DomainError::LimitExceeded { .. })
        ));
    }

    #[test]
    fn a_program_may_raise_its_ceilings_as_far_as_64_bits_go_but_not_a_load_above_its_balance() {
        let mut program = usd_program();
        program.max_load = Some(Amount::new(i64::MAX).unwrap());
        assert!(matches!(
            validate(program.clone()),
            Err(DomainError::InvalidProgram {
                param: "max_load",
                ..
            })
        ));
        program.max_balance = Some(Amount::new(i64::MAX).unwrap());
        let program = validate(program).unwrap();
        assert!(
            program
                .check_value_amount(Amount::new(i64::MAX).unwrap(), true)
                .is_ok()
        );
        assert!(program.check_balance_after(i64::MAX).is_ok());
    }

    #[test]
    fn a_max_balance_alone_lowers_what_min_load_and_denominations_may_be() {
        let mut program = usd_program();
        program.max_balance = Some(Amount::new(500).unwrap());
        assert!(validate(program.clone()).is_ok());
        program.denominations = Some(vec![Amount::new(600).unwrap()]);
        assert!(validate(program.clone()).is_err());
        program.denominations = None;
        program.min_load = Some(Amount::new(600).unwrap());
        assert!(validate(program).is_err());
    }

    #[test]
    fn prefix_must_leave_room_for_random_digits() {
        let mut program = usd_program();
        program.number_prefix = "123456789".into();
        program.number_length = 16;
        assert!(validate(program.clone()).is_ok());
        program.number_prefix = "1234567890".into();
        assert!(validate(program).is_err());
    }

    #[test]
    fn denominations_bind_only_the_first_value() {
        let mut program = usd_program();
        program.denominations = Some(vec![Amount::new(2500).unwrap(), Amount::new(5000).unwrap()]);
        let program = validate(program).unwrap();
        assert!(
            program
                .check_value_amount(Amount::new(2500).unwrap(), true)
                .is_ok()
        );
        assert!(
            program
                .check_value_amount(Amount::new(1000).unwrap(), true)
                .is_err()
        );
        assert!(
            program
                .check_value_amount(Amount::new(1000).unwrap(), false)
                .is_ok()
        );
    }

    #[test]
    fn an_amended_program_keeps_what_was_not_changed_and_meets_every_rule() {
        let mut new = usd_program();
        new.expiry_months = Some(60);
        new.max_load = Some(Amount::new(10_000).unwrap());
        let program = validate(new).unwrap();
        let changes = ProgramChanges {
            name: Some("Spring".into()),
            max_load: Some(None),
            promotion_code: Some(Some("SPRING".into())),
            ..ProgramChanges::default()
        };
        let amended = program.amend(&changes).unwrap();
        assert_eq!(amended.name, "Spring");
        assert_eq!(amended.max_load, None);
        assert_eq!(amended.promotion_code.as_deref(), Some("SPRING"));
        assert_eq!((amended.expiry_months, amended.reloadable), (Some(60), true));
        assert_eq!(
            (amended.id, amended.created_at),
            (program.id.clone(), program.created_at)
        );
        // The rules of a new program hold for an amended one.
        let too_low = ProgramChanges {
            min_load: Some(Some(Amount::new(20_000).unwrap())),
            max_load: Some(Some(Amount::new(10_000).unwrap())),
            ..ProgramChanges::default()
        };
        assert!(matches!(
            program.amend(&too_low),
            Err(DomainError::InvalidProgram {
                param: "min_load",
                ..
            })
        ));
    }

    #[test]
    fn expiry_may_be_lengthened_or_dropped_but_never_shortened_or_introduced() {
        let mut new = usd_program();
        new.expiry_months = Some(72);
        let expiring = validate(new).unwrap();
        let expiry = |months: Option<u32>| ProgramChanges {
            expiry_months: Some(months),
            ..ProgramChanges::default()
        };
        assert_eq!(expiring.amend(&expiry(Some(84))).unwrap().expiry_months, Some(84));
        assert_eq!(expiring.amend(&expiry(None)).unwrap().expiry_months, None);
        assert!(matches!(
            expiring.amend(&expiry(Some(60))),
            Err(DomainError::InvalidProgram {
                param: "expiry_months",
                ..
            })
        ));
        let forever = validate(usd_program()).unwrap();
        assert!(matches!(
            forever.amend(&expiry(Some(120))),
            Err(DomainError::InvalidProgram {
                param: "expiry_months",
                ..
            })
        ));
    }

    #[test]
    fn an_inactive_program_issues_and_activates_nothing_while_its_cards_keep_working() {
        use crate::card::{CardKind, CardState};
        use crate::ids::CardId;
        use crate::operations;

        let now = Timestamp::from_unix_millis(0);
        let amount = |minor| Amount::new(minor).unwrap();
        let program = validate(usd_program()).unwrap();
        let issued = operations::issue(
            &program,
            &CardId::new("card_1"),
            CardKind::Virtual,
            Some(amount(5000)),
            now,
        )
        .unwrap();
        let mut card = operations::CardSnapshot {
            id: CardId::new("card_1"),
            program_id: program.id.clone(),
            kind: CardKind::Virtual,
            state: issued.state,
            currency: program.currency,
            balance: 0,
            held: 0,
            expires_at: issued.expires_at,
        };
        card.apply(&issued.value.unwrap().card);
        let stock = operations::CardSnapshot {
            id: CardId::new("card_2"),
            kind: CardKind::Physical,
            state: CardState::Inactive,
            balance: 0,
            ..card.clone()
        };

        let deactivate = ProgramChanges {
            active: Some(false),
            ..ProgramChanges::default()
        };
        let inactive = program.amend(&deactivate).unwrap();
        assert!(!inactive.active);
        assert_eq!(inactive.check_issuing(), Err(DomainError::ProgramInactive));
        for kind in [CardKind::Virtual, CardKind::Physical] {
            assert_eq!(
                operations::issue(&inactive, &CardId::new("card_3"), kind, None, now),
                Err(DomainError::ProgramInactive),
                "{kind:?}"
            );
        }
        assert_eq!(
            operations::activate(&inactive, &stock, Some(amount(1000)), now),
            Err(DomainError::ProgramInactive)
        );
        assert_eq!(
            crate::stock::import(
                &inactive,
                &CardId::new("card_4"),
                CardKind::Physical,
                CardState::Active,
                Some(amount(100)),
                None,
                now
            ),
            Err(DomainError::ProgramInactive)
        );
        // A card already issued loads and redeems as before.
        assert!(operations::load(&inactive, &card, amount(1000), None, now).is_ok());
        assert!(operations::redeem(&card, amount(1000), false, None, now).is_ok());

        let reactivate = ProgramChanges {
            active: Some(true),
            ..ProgramChanges::default()
        };
        let active = inactive.amend(&reactivate).unwrap();
        assert!(operations::issue(&active, &CardId::new("card_3"), CardKind::Physical, None, now).is_ok());
        assert!(operations::activate(&active, &stock, None, now).is_ok());
        // Leaving `active` out of a change keeps it.
        let renamed = ProgramChanges {
            name: Some("Retired".into()),
            ..ProgramChanges::default()
        };
        assert!(!inactive.amend(&renamed).unwrap().active);
    }
}
