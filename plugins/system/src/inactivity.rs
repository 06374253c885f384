//! The user-inactivity clock behind System.UserInactivityReport.

use std::time::{Duration, Instant};

/// AVS expects a UserInactivityReport every hour (the AVS Device SDK's UserInactivityMonitor uses the
/// same 3600 s period).
pub const REPORT_PERIOD: Duration = Duration::from_secs(3600);

/// When the user last interacted with the device. Times are passed in so that tests need no sleeping.
#[derive(Debug, Clone, Copy)]
pub struct InactivityClock {
    last_activity: Instant,
}

impl InactivityClock {
    pub fn new(now: Instant) -> Self {
        InactivityClock { last_activity: now }
    }

    /// A clock whose user was last active `seconds` before `now` (restored after an OTA swap).
    pub fn inactive_for(seconds: u64, now: Instant) -> Self {
        let last_activity = now.checked_sub(Duration::from_secs(seconds)).unwrap_or(now);
        InactivityClock { last_activity }
    }

    /// `user.activity` from the host, or ResetUserInactivity from AVS.
    pub fn reset(&mut self, now: Instant) {
        self.last_activity = now;
    }

    pub fn inactive_seconds(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.last_activity).as_secs()
    }

    /// The UserInactivityReport payload.
    pub fn report(&self, now: Instant) -> serde_json::Value {
        serde_json::json!({"inactiveTimeInSeconds": self.inactive_seconds(now)})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_whole_seconds_since_the_last_activity() {
        let start = Instant::now();
        let mut clock = InactivityClock::new(start);
        let later = start + Duration::from_millis(7_300_900);
        assert_eq!(clock.report(later), serde_json::json!({"inactiveTimeInSeconds": 7300}));
        clock.reset(later);
        assert_eq!(clock.inactive_seconds(later + Duration::from_secs(5)), 5);
    }

    #[test]
    fn a_clock_restored_from_an_export_keeps_counting() {
        let now = Instant::now() + Duration::from_secs(10_000);
        let clock = InactivityClock::inactive_for(600, now);
        assert_eq!(clock.inactive_seconds(now + Duration::from_secs(60)), 660);
    }

    #[test]
    fn an_activity_in_the_future_never_gives_negative_time() {
        let now = Instant::now();
        let clock = InactivityClock::new(now + Duration::from_secs(30));
        assert_eq!(clock.inactive_seconds(now), 0);
    }
}
