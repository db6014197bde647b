//! Time as a parameter.
//!
//! Library code takes a [`Clock`] instead of reading the wall clock, so every
//! expiry rule can be tested by moving time rather than by sleeping.
//! (clippy's `disallowed-methods` enforces this outside this module.)

use std::sync::Arc;
use std::sync::Mutex;

use time::OffsetDateTime;

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// The current instant, in UTC.
    fn now(&self) -> OffsetDateTime;

    /// The current instant as whole seconds since the Unix epoch.
    fn unix(&self) -> u64 {
        u64::try_from(self.now().unix_timestamp()).unwrap_or(0)
    }
}

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place that reads the wall clock
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that stands still until moved: for tests of expiry rules.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<OffsetDateTime>>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: time::Duration) {
        if let Ok(mut now) = self.now.lock() {
            *now += by;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        match self.now.lock() {
            Ok(now) => *now,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }
}

/// A shared clock handle, as services hold it.
pub type SharedClock = Arc<dyn Clock>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = time::macros::datetime!(2026-01-01 00:00 UTC);
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(time::Duration::minutes(15));
        assert_eq!(clock.now(), start + time::Duration::minutes(15));
        assert_eq!(clock.unix(), 1_767_225_600 + 900);
    }
}
