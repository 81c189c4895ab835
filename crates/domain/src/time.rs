//! Points in time as the domain sees them: milliseconds since the Unix epoch, UTC.
//!
//! The domain never reads a clock; callers pass `now`. Calendar arithmetic (months for card
//! expiry, days for reports) lives here, on the `time` crate, so that every backend and
//! front-end agrees on it. The calendar covers the years 1 to 9999; a time outside it (only a
//! sentinel or a corrupt value could be) is clamped to its nearest end.

use serde::{Deserialize, Serialize};
use time::Month;
use time::macros::format_description;

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(i64);

const MILLIS_PER_DAY: i64 = 86_400_000;

/// The Julian day number of 1970-01-01: days since the epoch are Julian days less this.
const EPOCH_JULIAN_DAY: i64 = 2_440_588;

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
        let millis_of_day = self.0.rem_euclid(MILLIS_PER_DAY);
        let date = Date::of(self).0;
        let total = i64::from(date.year()) * 12 + i64::from(u8::from(date.month())) - 1 + months;
        let year = i32::try_from(total.div_euclid(12)).unwrap_or(i32::MAX);
        let month = Month::try_from(u8::try_from(total.rem_euclid(12) + 1).expect("1 to 12"))
            .expect("a month from 1 to 12");
        let year = year.clamp(time::Date::MIN.year(), time::Date::MAX.year());
        let day = date.day().min(month.length(year));
        let shifted = time::Date::from_calendar_date(year, month, day).expect("a day within its month");
        Self(Date(shifted).start().0 + millis_of_day)
    }
}

/// A calendar day in UTC, as reports name them (`2026-12-31`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(time::Date);

impl Date {
    /// `YYYY-MM-DD`, a real day of the proleptic Gregorian calendar, years 1970 to 9999.
    pub fn parse(value: &str) -> Option<Self> {
        let day = time::Date::parse(
            value,
            format_description!("[year repr:full padding:zero]-[month]-[day]"),
        )
        .ok()?;
        (value.len() == 10 && day.year() >= 1970).then_some(Self(day))
    }

    /// The day a timestamp falls on, in UTC.
    pub fn of(at: Timestamp) -> Self {
        Self::from_days(at.0.div_euclid(MILLIS_PER_DAY))
    }

    /// Days since 1970-01-01 (day 0).
    pub fn from_days(days: i64) -> Self {
        let julian = days.saturating_add(EPOCH_JULIAN_DAY).clamp(
            i64::from(time::Date::MIN.to_julian_day()),
            i64::from(time::Date::MAX.to_julian_day()),
        );
        Self(
            time::Date::from_julian_day(i32::try_from(julian).expect("clamped to the calendar"))
                .expect("clamped to the calendar"),
        )
    }

    pub fn days(self) -> i64 {
        i64::from(self.0.to_julian_day()) - EPOCH_JULIAN_DAY
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
        write!(
            f,
            "{:04}-{:02}-{:02}",
            self.0.year(),
            u8::from(self.0.month()),
            self.0.day()
        )
    }
}

#[cfg(test)]
mod tests {
    use time::{OffsetDateTime, UtcOffset};

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
    fn days_round_trip_and_agree_with_the_time_crate_on_timestamps() {
        for days in (-200_000..200_000).step_by(17) {
            assert_eq!(Date::from_days(days).days(), days);
            let at = OffsetDateTime::from_unix_timestamp(days * 86_400)
                .expect("in range")
                .to_offset(UtcOffset::UTC);
            assert_eq!(Date::of(Timestamp(days * MILLIS_PER_DAY)).0, at.date());
        }
    }

    #[test]
    fn times_past_the_calendar_are_clamped_not_a_panic() {
        assert_eq!(Date::of(Timestamp(i64::MAX)).to_string(), "9999-12-31");
        assert_eq!(Date::of(Timestamp(i64::MIN)).0, time::Date::MIN);
        let far = Timestamp(i64::MAX).plus_months(1200);
        assert_eq!(Date::of(far).to_string(), "9999-12-31");
    }
}
