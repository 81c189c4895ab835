//! Points in time as the domain sees them: milliseconds since the Unix epoch, UTC.
//!
//! The domain never reads a clock; callers pass `now`. Calendar arithmetic (months for card
//! expiry) lives here so that every backend and front-end agrees on it.

use serde::{Deserialize, Serialize};

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(i64);

const MILLIS_PER_DAY: i64 = 86_400_000;

impl Timestamp {
    pub const fn from_unix_millis(millis: i64) -> Self {
        Self(millis)
    }

    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    pub fn plus_seconds(self, seconds: i64) -> Self {
        Self(self.0.saturating_add(seconds.saturating_mul(1000)))
    }

    pub fn plus_millis(self, millis: i64) -> Self {
        Self(self.0.saturating_add(millis))
    }

    /// The same wall-clock time `months` calendar months later; a day past the end of the
    /// target month is clamped to its last day (Jan 31 + 1 month = Feb 28 or 29).
    pub fn plus_months(self, months: u32) -> Self {
        self.shift_months(i64::from(months))
    }

    /// The same wall-clock time `months` calendar months earlier, clamped like
    /// [`Timestamp::plus_months`] (Mar 31 − 1 month = Feb 28 or 29). Dormancy reports count
    /// back from their as-of date with it.
    pub fn minus_months(self, months: u32) -> Self {
        self.shift_months(-i64::from(months))
    }

    fn shift_months(self, months: i64) -> Self {
        let days = self.0.div_euclid(MILLIS_PER_DAY);
        let millis_of_day = self.0.rem_euclid(MILLIS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let total = i64::from(year) * 12 + i64::from(month - 1) + months;
        let new_year = total.div_euclid(12) as i32;
        let new_month = (total.rem_euclid(12) + 1) as u32;
        let new_day = day.min(days_in_month(new_year, new_month));
        let new_days = days_from_civil(new_year, new_month, new_day);
        Self(new_days * MILLIS_PER_DAY + millis_of_day)
    }
}

/// A calendar day in UTC, as reports name them (`2026-12-31`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: i32,
    month: u32,
    day: u32,
}

impl Date {
    /// `YYYY-MM-DD`, a real day of the proleptic Gregorian calendar, years 1970 to 9999.
    pub fn parse(value: &str) -> Option<Self> {
        let bytes = value.as_bytes();
        if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return None;
        }
        let digits = |range: std::ops::Range<usize>| -> Option<u32> {
            let part = &value[range];
            part.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| part.parse().ok())?
        };
        let year = i32::try_from(digits(0..4)?).ok()?;
        let month = digits(5..7)?;
        let day = digits(8..10)?;
        if year < 1970 || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(Self { year, month, day })
    }

    /// The day a timestamp falls on, in UTC.
    pub fn of(at: Timestamp) -> Self {
        Self::from_days(at.0.div_euclid(MILLIS_PER_DAY))
    }

    /// Days since 1970-01-01 (day 0).
    pub fn from_days(days: i64) -> Self {
        let (year, month, day) = civil_from_days(days);
        Self { year, month, day }
    }

    pub fn days(self) -> i64 {
        days_from_civil(self.year, self.month, self.day)
    }

    /// 00:00:00.000 of the day.
    pub fn start(self) -> Timestamp {
        Timestamp(self.days() * MILLIS_PER_DAY)
    }

    /// The last millisecond of the day: "as of 2026-12-31" includes all of that day.
    pub fn end(self) -> Timestamp {
        Timestamp((self.days() + 1) * MILLIS_PER_DAY - 1)
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(year) => 29,
        _ => 28,
    }
}

// Howard Hinnant's civil-date algorithms: exact for the proleptic Gregorian calendar.
fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = i64::from(if month <= 2 { year - 1 } else { year });
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((if m <= 2 { y + 1 } else { y }) as i32, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2024-01-31T12:00:00Z
    const JAN_31_2024: i64 = 1_706_702_400_000;

    #[test]
    fn plus_months_clamps_to_the_end_of_a_short_month() {
        let feb = Timestamp::from_unix_millis(JAN_31_2024).plus_months(1);
        // 2024-02-29T12:00:00Z
        assert_eq!(feb.unix_millis(), 1_709_208_000_000);
    }

    #[test]
    fn plus_sixty_months_is_five_calendar_years() {
        let later = Timestamp::from_unix_millis(JAN_31_2024).plus_months(60);
        // 2029-01-31T12:00:00Z
        assert_eq!(later.unix_millis(), 1_864_555_200_000);
    }

    #[test]
    fn dates_parse_strictly_and_cover_their_whole_day() {
        let day = Date::parse("2024-02-29").expect("a leap day");
        assert_eq!(day.to_string(), "2024-02-29");
        assert_eq!(
            day.end().unix_millis() - day.start().unix_millis(),
            MILLIS_PER_DAY - 1
        );
        assert_eq!(Date::of(day.end()), day);
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-1-01",
            "24-01-01",
            "2024-01-00",
            "2024-01-01T",
            "+024-01-01",
        ] {
            assert_eq!(Date::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn minus_months_undoes_plus_months_on_safe_days() {
        let at = Date::parse("2024-01-15").unwrap().start().plus_seconds(3_600);
        assert_eq!(at.plus_months(13).minus_months(13), at);
        // 2024-03-31 minus one month clamps to 2024-02-29.
        let march = Date::parse("2024-03-31").unwrap().start();
        assert_eq!(Date::of(march.minus_months(1)).to_string(), "2024-02-29");
    }

    #[test]
    fn civil_round_trip_over_four_centuries() {
        for days in (-200_000..200_000).step_by(17) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
