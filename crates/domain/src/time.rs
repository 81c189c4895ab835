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
        let days = self.0.div_euclid(MILLIS_PER_DAY);
        let millis_of_day = self.0.rem_euclid(MILLIS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let total = i64::from(year) * 12 + i64::from(month - 1) + i64::from(months);
        let new_year = total.div_euclid(12) as i32;
        let new_month = (total.rem_euclid(12) + 1) as u32;
        let new_day = day.min(days_in_month(new_year, new_month));
        let new_days = days_from_civil(new_year, new_month, new_day);
        Self(new_days * MILLIS_PER_DAY + millis_of_day)
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
    fn civil_round_trip_over_four_centuries() {
        for days in (-200_000..200_000).step_by(17) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
