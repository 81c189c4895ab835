//! Property tests for the parsers in `giftd-domain` that read text straight off the wire:
//! decimal amounts in major units ([`MajorUnits`], the Adyen Terminal API's `10.50`), currency
//! codes, card numbers, security codes and the Luhn check.
//!
//! Two kinds of property: arbitrary text (any Unicode, and text that looks almost like a number
//! or a card number) never panics and is only accepted when it has the documented shape; and
//! well-formed text gives exactly the documented value (a decimal converts to its minor units,
//! formatting minor units and reading them back is the identity). Nothing here does IO.

use giftd_domain::card::{luhn_check_digit, luhn_valid};
use giftd_domain::major_units::{MAX_DIGITS, MajorUnits};
use giftd_domain::{CardNumber, Currency, SecurityCode};
use proptest::prelude::*;

/// Cases per property: the parsers are pure and fast, so this many stay well under a second
/// each in a debug build while still reaching the rare shapes (exponents, long digit runs).
const CASES: u32 = 2_000;
/// Currencies of every exponent the parsers must handle: 0 (JPY), 2 (EUR), 3 (BHD), 4 (CLF).
const CURRENCY_CODES: [&str; 4] = ["JPY", "EUR", "BHD", "CLF"];
/// Longest text the arbitrary-text strategies draw; long enough to pass every length limit.
const MAX_TEXT_CHARS: usize = 64;

fn currency(code: &str) -> Currency {
    Currency::parse(code).unwrap_or_else(|| panic!("{code} is a currency with an exponent"))
}

fn currencies() -> Vec<Currency> {
    CURRENCY_CODES.iter().map(|code| currency(code)).collect()
}

/// Any text, weighted towards what sits near the accepted shapes: the characters of numbers,
/// digit runs, non-ASCII digits (Arabic-Indic, full-width) and letters.
fn wire_text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..MAX_TEXT_CHARS).prop_map(|chars| chars.into_iter().collect()),
        "[0-9.eE+-]{0,40}",
        "[0-9]{0,40}(\\.[0-9]{0,40})?([eE][+-]?[0-9]{0,5})?",
        "[0-9٠-٩０-９a-zA-Z ]{0,25}",
        "[0-9]{0,25}",
    ]
}

/// `10^exponent` as the `i64` scale of a currency.
fn unit(currency: Currency) -> i64 {
    10i64.pow(currency.exponent())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn any_text_reads_as_an_amount_only_if_it_is_an_ascii_decimal_and_never_panics(text in wire_text()) {
        let Some(parsed) = MajorUnits::parse(&text) else {
            return Ok(());
        };
        prop_assert!(text.starts_with(|c: char| c.is_ascii_digit()), "{text:?} starts with a digit");
        prop_assert!(
            text.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')),
            "{text:?} holds only the characters of a number"
        );
        for currency in currencies() {
            // Whatever converts is a non-negative amount that formats and reads back to itself.
            if let Ok(minor) = parsed.to_minor(currency) {
                prop_assert!(minor >= 0, "{text:?} is {minor} {currency}");
                let written = MajorUnits::format_minor(minor, currency);
                prop_assert_eq!(
                    MajorUnits::parse(&written).map(|again| again.to_minor(currency)),
                    Some(Ok(minor)),
                    "{:?} was written as {:?}", text, written
                );
            }
        }
    }

    #[test]
    fn a_decimal_with_at_most_the_currency_places_converts_to_exactly_its_minor_units(
        code in prop::sample::select(CURRENCY_CODES.to_vec()),
        whole in 0i64..=100_000_000_000_000,
        fraction_digits in prop::collection::vec(0u8..10, 0..=4),
        trailing_zeros in 0usize..=5,
        leading_zeros in 0usize..=3,
    ) {
        let currency = currency(code);
        let exponent = currency.exponent() as usize;
        let fraction_digits = &fraction_digits[..fraction_digits.len().min(exponent)];
        let fraction: String = fraction_digits.iter().map(|d| char::from(b'0' + d)).collect();
        // 12.5 EUR is 12 * 100 + 5 * 10.
        let fraction_minor = fraction_digits
            .iter()
            .enumerate()
            .map(|(place, &digit)| i64::from(digit) * 10i64.pow((exponent - 1 - place) as u32))
            .sum::<i64>();
        let Some(expected) = whole.checked_mul(unit(currency)).and_then(|m| m.checked_add(fraction_minor)) else {
            return Ok(());
        };
        let zeros = "0".repeat(trailing_zeros);
        let padded = format!("{}{whole}", "0".repeat(leading_zeros));
        let texts = if fraction.is_empty() && trailing_zeros == 0 {
            vec![padded.clone()]
        } else {
            vec![format!("{padded}.{fraction}{zeros}")]
        };
        // The same number in exponent form: 12.5 is 125e-1 and 1.25E1.
        let digits = format!("{whole}{fraction}");
        let exponent_form = format!("{digits}e-{}", fraction.len());
        let scientific = format!("{}.{}E{}", &digits[..1], &digits[1..], digits.len() - 1 - fraction.len());
        for text in texts.iter().chain([&exponent_form]).chain((digits.len() > 1).then_some(&scientific)) {
            let parsed = MajorUnits::parse(text);
            prop_assert!(parsed.is_some(), "{text:?} reads as a decimal");
            prop_assert_eq!(parsed.map(|p| p.to_minor(currency)), Some(Ok(expected)), "{} in {}", text, code);
        }
    }

    #[test]
    fn a_decimal_with_more_non_zero_places_than_the_currency_has_is_refused_not_rounded(
        code in prop::sample::select(CURRENCY_CODES.to_vec()),
        whole in 0u64..=1_000_000,
        extra in "[0-9]{0,4}[1-9]",
    ) {
        let currency = currency(code);
        let places = "5".repeat(currency.exponent() as usize);
        let text = format!("{whole}.{places}{extra}");
        let parsed = MajorUnits::parse(&text);
        prop_assert!(parsed.is_some(), "{text:?} reads as a decimal");
        prop_assert!(parsed.is_some_and(|p| p.to_minor(currency).is_err()), "{text} {code} is refused");
    }

    #[test]
    fn minor_units_written_as_major_units_read_back_to_the_same_minor_units(
        code in prop::sample::select(CURRENCY_CODES.to_vec()),
        minor in prop_oneof![0i64..=100_000, 0i64..=i64::MAX, Just(i64::MAX)],
    ) {
        let currency = currency(code);
        let text = MajorUnits::format_minor(minor, currency);
        // The shortest form: no trailing zero after a point, no leading zero before a digit.
        prop_assert!(!text.contains('.') || !text.ends_with('0'), "{text}");
        prop_assert!(!text.ends_with('.'), "{text}");
        prop_assert!(!(text.len() > 1 && text.starts_with('0') && !text.starts_with("0.")), "{text}");
        prop_assert_eq!(MajorUnits::parse(&text).map(|p| p.to_minor(currency)), Some(Ok(minor)), "{}", text);
        // Negative amounts are written with a sign, which the parser refuses: amounts on the
        // wire are never negative.
        if minor > 0 {
            let negative = MajorUnits::format_minor(-minor, currency);
            prop_assert_eq!(&negative, &format!("-{text}"));
            prop_assert_eq!(MajorUnits::parse(&negative), None);
        }
    }

    #[test]
    fn amounts_past_64_bit_minor_units_are_refused_instead_of_wrapping(
        code in prop::sample::select(CURRENCY_CODES.to_vec()),
        excess in 1u128..=u128::from(u64::MAX),
        extra_digits in 0u32..=8,
    ) {
        let currency = currency(code);
        let minor = (i64::MAX as u128 + excess) * 10u128.pow(extra_digits);
        let digits = minor.to_string();
        prop_assume!(digits.len() <= MAX_DIGITS);
        let exponent = currency.exponent() as usize;
        let text = if exponent == 0 {
            digits
        } else {
            let (whole, fraction) = digits.split_at(digits.len() - exponent);
            format!("{whole}.{fraction}")
        };
        let parsed = MajorUnits::parse(&text);
        prop_assert!(parsed.is_some(), "{text:?} reads as a decimal");
        prop_assert!(parsed.is_some_and(|p| p.to_minor(currency).is_err()), "{text} {code} does not fit");
    }

    #[test]
    fn any_text_is_a_currency_only_if_it_is_three_upper_case_letters(text in wire_text()) {
        if let Some(parsed) = Currency::parse(&text) {
            prop_assert_eq!(parsed.code(), text.as_str());
            prop_assert!(text.len() == 3 && text.bytes().all(|b| b.is_ascii_uppercase()), "{text:?}");
        }
    }

    #[test]
    fn any_text_is_a_card_number_exactly_when_it_is_6_to_21_ascii_digits(text in wire_text()) {
        let expected = (6..=21).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
        let parsed = CardNumber::parse(&text);
        prop_assert_eq!(parsed.is_some(), expected, "{:?}", text);
        if let Some(number) = parsed {
            prop_assert_eq!(number.expose(), text.as_str());
            let last4 = &text[text.len() - 4..];
            prop_assert_eq!(number.last4(), last4);
            // Debug shows the last four digits and nothing else of the number.
            prop_assert_eq!(format!("{number:?}"), format!("CardNumber(****{last4})"));
        }
    }

    #[test]
    fn any_text_is_a_security_code_exactly_when_it_is_3_to_16_ascii_letters_or_digits(text in wire_text()) {
        let expected = (3..=16).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric());
        let parsed = SecurityCode::parse(&text);
        prop_assert_eq!(parsed.is_some(), expected, "{:?}", text);
        if let Some(code) = parsed {
            prop_assert_eq!(code.expose(), text.as_str());
            prop_assert_eq!(format!("{code:?}"), "SecurityCode(redacted)");
        }
    }

    #[test]
    fn luhn_never_panics_and_passes_only_non_empty_ascii_digits(text in wire_text()) {
        if luhn_valid(&text) {
            prop_assert!(!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()), "{text:?}");
        }
    }

    #[test]
    fn a_check_digit_makes_any_digits_luhn_valid_and_any_one_changed_digit_breaks_it(
        digits in "[0-9]{0,24}",
        position in any::<prop::sample::Index>(),
        shift in 1u8..=9,
    ) {
        let number = format!("{digits}{}", luhn_check_digit(&digits));
        prop_assert!(luhn_valid(&number), "{number}");
        // Luhn catches every single-digit error, the check digit's own included.
        let mut changed = number.clone().into_bytes();
        let at = position.index(changed.len());
        changed[at] = b'0' + (changed[at] - b'0' + shift) % 10;
        let changed = String::from_utf8(changed).expect("ASCII digits");
        prop_assert!(!luhn_valid(&changed), "{number} changed to {changed}");
    }
}
