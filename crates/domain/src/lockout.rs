//! Brute-force protection for security codes: after [`MAX_FAILURES`] wrong codes for one card
//! number within [`WINDOW_MILLIS`], the number is locked for [`LOCK_MILLIS`], even for the right
//! code. Failures are counted per number whether or not a card has it, so the lockout tells a
//! guesser nothing about which numbers exist.

use crate::time::Timestamp;

pub const MAX_FAILURES: u32 = 10;
/// Failures older than this (counted from the first failure of a window) are forgotten.
pub const WINDOW_MILLIS: i64 = 30 * 60 * 1000;
pub const LOCK_MILLIS: i64 = 30 * 60 * 1000;

/// The failure record kept for one card-number fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attempts {
    pub failures: u32,
    pub window_started_at: Option<Timestamp>,
    pub locked_until: Option<Timestamp>,
}

impl Attempts {
    /// `Some(until)` while the number is locked.
    pub fn locked_until(&self, now: Timestamp) -> Option<Timestamp> {
        self.locked_until.filter(|until| *until > now)
    }

    /// The record after one more failure at `now`.
    pub fn after_failure(self, now: Timestamp) -> Self {
        let window_open = self
            .window_started_at
            .is_some_and(|start| now.unix_millis() - start.unix_millis() < WINDOW_MILLIS);
        let (failures, window_started_at) = if window_open {
            (self.failures.saturating_add(1), self.window_started_at)
        } else {
            (1, Some(now))
        };
        if failures >= MAX_FAILURES {
            Self {
                failures: 0,
                window_started_at: None,
                locked_until: Some(now.plus_millis(LOCK_MILLIS)),
            }
        } else {
            Self {
                failures,
                window_started_at,
                locked_until: self.locked_until,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_failures_in_the_window_lock_for_thirty_minutes() {
        let start = Timestamp::from_unix_millis(1_000_000);
        let mut attempts = Attempts::default();
        for i in 0..9 {
            attempts = attempts.after_failure(start.plus_seconds(i));
            assert_eq!(attempts.locked_until(start.plus_seconds(i)), None);
        }
        attempts = attempts.after_failure(start.plus_seconds(60));
        let until = attempts.locked_until(start.plus_seconds(60)).unwrap();
        assert_eq!(until, start.plus_seconds(60).plus_millis(LOCK_MILLIS));
        assert_eq!(attempts.locked_until(until), None);
    }

    #[test]
    fn failures_outside_the_window_start_a_new_count() {
        let start = Timestamp::from_unix_millis(0);
        let mut attempts = Attempts::default();
        for i in 0..9 {
            attempts = attempts.after_failure(start.plus_seconds(i));
        }
        let later = start.plus_millis(WINDOW_MILLIS + 1);
        attempts = attempts.after_failure(later);
        assert_eq!(attempts.failures, 1);
        assert_eq!(attempts.locked_until(later), None);
    }
}
