//! Cards: numbers (PAN/GAN), security codes, kinds and states, and the rules for generating
//! numbers (prefix, length, Luhn check digit).
//!
//! [`CardNumber`] and [`SecurityCode`] are secrets: their `Debug` shows at most the last four
//! digits, and there is no `Display`. Code that needs the clear value calls `expose()` and is
//! easy to find.

use std::fmt;

use rand::{Rng, RngExt};

/// Shortest and longest number giftd accepts for an imported card.
pub const IMPORTED_NUMBER_LENGTH: std::ops::RangeInclusive<usize> = 6..=21;
/// Shortest and longest number giftd generates.
pub const GENERATED_NUMBER_LENGTH: std::ops::RangeInclusive<u32> = 13..=19;
/// Fewest random digits in a generated number, so a prefix cannot make numbers guessable.
pub const MIN_RANDOM_DIGITS: u32 = 6;
/// Security code lengths a program may choose.
pub const SECURITY_CODE_LENGTH: std::ops::RangeInclusive<u32> = 4..=8;

#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber(String);

impl CardNumber {
    /// Parses a number given by a client: digits only, 6 to 21 of them. No Luhn check: imported
    /// stock from other processors does not always carry one.
    pub fn parse(value: &str) -> Option<Self> {
        let ok = IMPORTED_NUMBER_LENGTH.contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| Self(value.to_owned()))
    }

    /// Generates a Luhn-valid number: `prefix`, random digits, check digit; `length` in all.
    pub fn generate(prefix: &str, length: u32, rng: &mut impl Rng) -> Self {
        let random_digits = length as usize - prefix.len() - 1;
        let mut digits = String::with_capacity(length as usize);
        digits.push_str(prefix);
        for _ in 0..random_digits {
            digits.push(char::from(b'0' + rng.random_range(0..10u8)));
        }
        digits.push(char::from(b'0' + luhn_check_digit(&digits)));
        Self(digits)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn last4(&self) -> String {
        self.0[self.0.len().saturating_sub(4)..].to_owned()
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber(****{})", self.last4())
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct SecurityCode(String);

impl SecurityCode {
    /// Parses a code given by a client: 3 to 16 digits or letters (imported stock varies).
    pub fn parse(value: &str) -> Option<Self> {
        let ok = (3..=16).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric());
        ok.then(|| Self(value.to_owned()))
    }

    /// A code as presented to be checked against a card's: the code when it is well-formed,
    /// otherwise one no card has (empty), so that a malformed code (`!`) is checked, fails and
    /// counts toward the number's lockout exactly like a wrong one. Never for issuing a card.
    pub fn presented(value: &str) -> Self {
        Self::parse(value).unwrap_or_else(|| Self(String::new()))
    }

    pub fn generate(length: u32, rng: &mut impl Rng) -> Self {
        Self(
            (0..length)
                .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
                .collect(),
        )
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecurityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecurityCode(redacted)")
    }
}

/// The Luhn check digit that makes `digits` followed by it pass the Luhn test.
pub fn luhn_check_digit(digits: &str) -> u8 {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

pub fn luhn_valid(number: &str) -> bool {
    match number.len().checked_sub(1) {
        Some(last) if number.bytes().all(|b| b.is_ascii_digit()) => {
            luhn_check_digit(&number[..last]) == number.as_bytes()[last] - b'0'
        }
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardKind {
    Virtual,
    Physical,
}

impl CardKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Virtual => "virtual",
            Self::Physical => "physical",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "virtual" => Some(Self::Virtual),
            "physical" => Some(Self::Physical),
            _ => None,
        }
    }
}

/// Why a card was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Deactivated on request.
    Deactivated,
    /// Its balance was combined into another card.
    Combined,
    /// Its balance was transferred to another card and it was closed on request.
    Transferred,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deactivated => "deactivated",
            Self::Combined => "combined",
            Self::Transferred => "transferred",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "deactivated" => Some(Self::Deactivated),
            "combined" => Some(Self::Combined),
            "transferred" => Some(Self::Transferred),
            _ => None,
        }
    }
}

/// `inactive` → `active` ⇄ `frozen`; any of them → `closed`, for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardState {
    Inactive,
    Active,
    Frozen,
    Closed,
}

impl CardState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inactive => "inactive",
            Self::Active => "active",
            Self::Frozen => "frozen",
            Self::Closed => "closed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "inactive" => Some(Self::Inactive),
            "active" => Some(Self::Active),
            "frozen" => Some(Self::Frozen),
            "closed" => Some(Self::Closed),
            _ => None,
        }
    }
}

impl fmt::Display for CardState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_matches_known_numbers() {
        assert!(luhn_valid("4111111111111111"));
        assert!(luhn_valid("79927398713"));
        assert!(!luhn_valid("4111111111111112"));
        assert!(!luhn_valid(""));
    }

    #[test]
    fn generated_numbers_have_the_prefix_length_and_a_valid_check_digit() {
        let mut rng = rand::rng();
        for length in GENERATED_NUMBER_LENGTH {
            let number = CardNumber::generate("6036", length, &mut rng);
            assert_eq!(number.expose().len(), length as usize);
            assert!(number.expose().starts_with("6036"));
            assert!(luhn_valid(number.expose()));
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let number = CardNumber::parse("6036123412341234").unwrap();
        assert_eq!(format!("{number:?}"), "CardNumber(****1234)");
        let code = SecurityCode::parse("12345678").unwrap();
        assert!(!format!("{code:?}").contains("1234"));
    }
}
