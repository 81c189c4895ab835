//! Amounts written in major units as decimals (`10.50` euros), the way some vendor wire formats
//! write money (Adyen's Terminal API), and their exact conversion to and from integer minor
//! units with a currency's exponent.
//!
//! Integers only: a decimal is kept as its digits and a scale, so no float ever holds an amount
//! and `0.1 + 0.2` questions never arise. A decimal with more places than its currency has is
//! refused (unless the extra places are zeros) rather than rounded: rounding money is a
//! business decision, and nobody asked for it.

use crate::error::DomainError;
use crate::money::Currency;

/// Most significant digits a decimal may carry. Every amount that fits in `i64` minor units
/// has fewer; the bound keeps parsing free of overflow (`u128` holds 38 digits).
pub const MAX_DIGITS: usize = 30;

/// A non-negative decimal number: `digits / 10^scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MajorUnits {
    digits: u128,
    scale: u32,
}

fn pow10(exponent: u32) -> Option<u128> {
    10u128.checked_pow(exponent)
}

impl MajorUnits {
    /// Parses a non-negative decimal as JSON writes numbers: `61`, `98.75`, `10.00`, `0.5`, and
    /// the exponent forms `1.5E2` and `5e-1`. No sign, no spaces, no leading `.`. `None` when
    /// the text is not such a number or carries more than [`MAX_DIGITS`] digits.
    pub fn parse(text: &str) -> Option<Self> {
        let (mantissa, exponent) = match text.find(['e', 'E']) {
            Some(at) => (&text[..at], Some(&text[at + 1..])),
            None => (text, None),
        };
        let (whole, fraction) = match mantissa.split_once('.') {
            Some((whole, fraction)) => (whole, fraction),
            None => (mantissa, ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
            return None;
        }
        if mantissa.contains('.') && fraction.is_empty() {
            return None;
        }
        let significant = format!("{whole}{fraction}");
        let significant = significant.trim_start_matches('0');
        if significant.len() > MAX_DIGITS {
            return None;
        }
        let digits: u128 = if significant.is_empty() {
            0
        } else {
            significant.parse().ok()?
        };
        let exponent: i64 = match exponent {
            None => 0,
            Some(e) => {
                let unsigned = e.strip_prefix(['+', '-']).unwrap_or(e);
                if unsigned.is_empty() || unsigned.len() > 3 || !all_digits(unsigned) {
                    return None;
                }
                e.parse().ok()?
            }
        };
        // value = digits * 10^(exponent - fraction places)
        let shift = exponent - i64::try_from(fraction.len()).ok()?;
        if shift >= 0 {
            let factor = pow10(u32::try_from(shift).ok()?)?;
            let digits = digits.checked_mul(factor)?;
            (digits.to_string().len() <= MAX_DIGITS).then_some(Self { digits, scale: 0 })
        } else {
            let scale = u32::try_from(-shift).ok()?;
            // A scale past MAX_DIGITS only adds zeros no currency can use.
            (scale as usize <= MAX_DIGITS + 3).then_some(Self { digits, scale })
        }
    }

    pub fn is_zero(self) -> bool {
        self.digits == 0
    }

    /// The amount in minor units of `currency`: `10.5` EUR is 1050, `1000` JPY is 1000. More
    /// decimal places than the currency has are refused unless they are zeros (`10.500` EUR is
    /// 1050, `10.505` EUR is refused).
    pub fn to_minor(self, currency: Currency) -> Result<i64, DomainError> {
        let exponent = currency.exponent();
        let minor = if self.scale <= exponent {
            pow10(exponent - self.scale).and_then(|factor| self.digits.checked_mul(factor))
        } else {
            let divisor = pow10(self.scale - exponent).ok_or_else(|| too_precise(currency))?;
            if !self.digits.is_multiple_of(divisor) {
                return Err(too_precise(currency));
            }
            Some(self.digits / divisor)
        };
        minor
            .and_then(|minor| i64::try_from(minor).ok())
            .ok_or_else(|| DomainError::InvalidAmount {
                reason: format!("the amount does not fit in 64-bit minor units of {currency}"),
            })
    }

    /// Writes `minor` units of `currency` as the shortest decimal in major units: 9875 EUR is
    /// `98.75`, 6100 EUR is `61`, 1050 EUR is `10.5`, 5 EUR is `0.05`, 1000 JPY is `1000`.
    pub fn format_minor(minor: i64, currency: Currency) -> String {
        let exponent = currency.exponent();
        let sign = if minor < 0 { "-" } else { "" };
        let magnitude = minor.unsigned_abs();
        if exponent == 0 {
            return format!("{sign}{magnitude}");
        }
        let unit = 10u64.pow(exponent);
        let whole = magnitude / unit;
        let fraction = format!("{:0width$}", magnitude % unit, width = exponent as usize);
        let fraction = fraction.trim_end_matches('0');
        if fraction.is_empty() {
            format!("{sign}{whole}")
        } else {
            format!("{sign}{whole}.{fraction}")
        }
    }
}

fn too_precise(currency: Currency) -> DomainError {
    DomainError::InvalidAmount {
        reason: format!(
            "{currency} has {} decimal places; the amount has more",
            currency.exponent()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn currency(code: &str) -> Currency {
        Currency::parse(code).unwrap()
    }

    fn minor(text: &str, code: &str) -> Result<i64, DomainError> {
        MajorUnits::parse(text).expect(text).to_minor(currency(code))
    }

    #[test]
    fn decimals_convert_exactly_with_the_currency_exponent() {
        assert_eq!(minor("98.75", "GBP"), Ok(9875));
        assert_eq!(minor("10.00", "EUR"), Ok(1000));
        assert_eq!(minor("10", "EUR"), Ok(1000));
        assert_eq!(minor("10.5", "EUR"), Ok(1050));
        assert_eq!(minor("0.05", "USD"), Ok(5));
        assert_eq!(minor("1000", "JPY"), Ok(1000));
        assert_eq!(minor("1000.00", "JPY"), Ok(1000));
        assert_eq!(minor("1.234", "BHD"), Ok(1234));
        assert_eq!(minor("10.500", "EUR"), Ok(1050));
        assert_eq!(minor("0", "EUR"), Ok(0));
        assert_eq!(minor("1.5E2", "EUR"), Ok(15000));
        assert_eq!(minor("5e-1", "EUR"), Ok(50));
        assert_eq!(minor("25.99", "EUR"), Ok(2599));
    }

    #[test]
    fn more_places_than_the_currency_has_are_refused_not_rounded() {
        assert!(minor("10.505", "EUR").is_err());
        assert!(minor("0.5", "JPY").is_err());
        assert!(minor("92233720368547758.08", "EUR").is_err());
    }

    #[test]
    fn what_is_not_a_plain_non_negative_decimal_does_not_parse() {
        for text in [
            "", "-1", "+1", ".5", "5.", "1,00", "1.2.3", "0x10", "1e", "1e+", " 1", "NaN", "1e1000",
        ] {
            assert_eq!(MajorUnits::parse(text), None, "{text}");
        }
        assert_eq!(MajorUnits::parse(&"9".repeat(MAX_DIGITS + 1)), None);
        assert!(MajorUnits::parse("0000000000000000000000000000000000001").is_some());
    }

    #[test]
    fn minor_units_format_as_the_shortest_decimal() {
        let eur = currency("EUR");
        assert_eq!(MajorUnits::format_minor(9875, eur), "98.75");
        assert_eq!(MajorUnits::format_minor(6100, eur), "61");
        assert_eq!(MajorUnits::format_minor(1050, eur), "10.5");
        assert_eq!(MajorUnits::format_minor(5, eur), "0.05");
        assert_eq!(MajorUnits::format_minor(0, eur), "0");
        assert_eq!(MajorUnits::format_minor(-150, eur), "-1.5");
        assert_eq!(MajorUnits::format_minor(1000, currency("JPY")), "1000");
        assert_eq!(MajorUnits::format_minor(1234, currency("BHD")), "1.234");
        for minor in [0, 1, 99, 100, 101, 123_456_789, i64::MAX] {
            let text = MajorUnits::format_minor(minor, eur);
            assert_eq!(MajorUnits::parse(&text).unwrap().to_minor(eur), Ok(minor));
        }
    }
}
