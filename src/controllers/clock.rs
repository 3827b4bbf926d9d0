//! The wall clock the time-driven controllers (node lifecycle, pod GC, disruption) read,
//! behind a trait so tests can move time forward instead of waiting for a grace period. It
//! only tells the time: sleeping and timers stay on tokio's clock.

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use std::sync::Mutex;
use std::time::Duration;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that stands still until told to move; starts at the system time.
#[derive(Debug)]
pub struct FakeClock(Mutex<Timestamp>);

impl Default for FakeClock {
    fn default() -> Self {
        FakeClock(Mutex::new(Timestamp::now()))
    }
}

impl FakeClock {
    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().expect("fake clock lock");
        *t += SignedDuration::try_from(by).unwrap_or(SignedDuration::MAX);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().expect("fake clock lock")
    }
}

/// How long from `now` until `at` (zero if already past).
pub fn until(now: Timestamp, at: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_clock_moves_only_when_told() {
        let c = FakeClock::default();
        let t0 = c.now();
        assert_eq!(c.now(), t0);
        c.advance(Duration::from_secs(41));
        assert_eq!(until(t0, c.now()), Duration::from_secs(41));
        assert_eq!(until(c.now(), t0), Duration::ZERO);
    }
}
