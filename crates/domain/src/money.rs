//! Money: integer minor units with an ISO 4217 currency. Never a float.
//!
//! [`Amount`] is a strictly positive number of minor units that fits in `i64`; zero and
//! negatives cannot be built. Signed quantities (balances, postings) are plain `i64` and every
//! sum is checked, so an overflow is an error and never a wrap.

use std::fmt;

use crate::error::DomainError;

/// An ISO 4217 currency that has minor units (so `XAU` and friends are refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    /// Parses a three-letter upper-case ISO 4217 code.
    pub fn parse(code: &str) -> Option<Self> {
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let currency = iso_currency::Currency::from_code(code)?;
        currency.exponent()?;
        Some(Self(currency))
    }

    pub fn code(self) -> &'static str {
        self.0.code()
    }

    /// Digits after the decimal point: 2 for USD, 0 for JPY, 3 for BHD.
    pub fn exponent(self) -> u32 {
        // `parse` refuses currencies without an exponent.
        u32::from(self.0.exponent().unwrap_or(0))
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Stored state names a currency by its code.
impl serde::Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> serde::Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Self::parse(&code).ok_or_else(|| serde::de::Error::custom(format!("unknown currency {code}")))
    }
}

/// A strictly positive amount of minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(i64);

impl Amount {
    pub fn new(minor: i64) -> Result<Self, DomainError> {
        if minor > 0 {
            Ok(Self(minor))
        } else {
            Err(DomainError::InvalidAmount {
                reason: "amount must be a positive integer of minor units".into(),
            })
        }
    }

    pub const fn minor(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `a + b`, or `limit_exceeded` when the sum does not fit in i64 minor units.
pub fn checked_add(a: i64, b: i64) -> Result<i64, DomainError> {
    a.checked_add(b).ok_or(DomainError::LimitExceeded {
        reason: "the resulting balance does not fit in 64-bit minor units".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_accepts_known_upper_case_codes_only() {
        assert_eq!(Currency::parse("USD").map(Currency::exponent), Some(2));
        assert_eq!(Currency::parse("JPY").map(Currency::exponent), Some(0));
        assert_eq!(Currency::parse("BHD").map(Currency::exponent), Some(3));
        assert!(Currency::parse("usd").is_none());
        assert!(Currency::parse("ZZZ").is_none());
        assert!(Currency::parse("XAU").is_none());
        assert!(Currency::parse("USDX").is_none());
    }

    #[test]
    fn amount_refuses_zero_and_negatives() {
        assert!(Amount::new(0).is_err());
        assert!(Amount::new(-1).is_err());
        assert_eq!(Amount::new(1).map(Amount::minor).ok(), Some(1));
        assert!(Amount::new(i64::MAX).is_ok());
    }
}
