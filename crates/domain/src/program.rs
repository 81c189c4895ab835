//! Programs: the rules of a family of cards (currency, denominations, load limits, maximum
//! balance, reloadability, expiry, number format, security code length).

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
    pub created_at: Timestamp,
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
        if let (Some(min), Some(max)) = (self.min_load, self.max_load)
            && min > max
        {
            return Err(invalid("min_load", "min_load must not exceed max_load"));
        }
        if let (Some(max_load), Some(max_balance)) = (self.max_load, self.max_balance)
            && max_load > max_balance
        {
            return Err(invalid("max_load", "max_load must not exceed max_balance"));
        }
        if let (Some(denominations), Some(max_balance)) = (&self.denominations, self.max_balance)
            && denominations.iter().any(|d| *d > max_balance)
        {
            return Err(invalid(
                "denominations",
                "every denomination must fit within max_balance",
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
            created_at: now,
        })
    }
}

impl Program {
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
        if let Some(max) = self.max_load
            && amount > max
        {
            return Err(DomainError::LimitExceeded {
                reason: format!("{amount} is above the program's max_load of {max}"),
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
mod tests {
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
}
