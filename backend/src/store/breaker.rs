//! A circuit breaker: after `threshold` consecutive failures (timeouts, lost connections) of a
//! dependency, calls fail at once for `open_for` instead of each waiting out its timeout. The
//! first call after that is a probe: one more failure opens the breaker again at once, a
//! success closes it. Error replies (a wrong command, `NOSCRIPT`) are answers, not failures.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::time::Duration;

use crate::clock::now_ms;

/// Consecutive failures that open a breaker (Redis and MariaDB alike).
pub const FAILURES: u32 = 5;
/// How long an open breaker fails calls at once before it lets a probe through.
pub const OPEN: Duration = Duration::from_millis(500);

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    open_for_ms: i64,
    failures: AtomicU32,
    open_until_ms: AtomicI64,
    /// Opened at least once since the last success: the next failure reopens it at once.
    tripped: AtomicBool,
}

impl Breaker {
    pub fn new(threshold: u32, open_for: Duration) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            open_for_ms: open_for.as_millis() as i64,
            failures: AtomicU32::new(0),
            open_until_ms: AtomicI64::new(0),
            tripped: AtomicBool::new(false),
        }
    }

    /// False while open: the caller fails fast without calling.
    pub fn allow(&self) -> bool {
        now_ms() >= self.open_until_ms.load(Ordering::Relaxed)
    }

    pub fn is_open(&self) -> bool {
        !self.allow()
    }

    pub fn success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        if self.tripped.load(Ordering::Relaxed) {
            self.tripped.store(false, Ordering::Relaxed);
        }
    }

    pub fn failure(&self) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.threshold || self.tripped.load(Ordering::Relaxed) {
            self.open_until_ms
                .store(now_ms() + self.open_for_ms, Ordering::Relaxed);
            self.failures.store(0, Ordering::Relaxed);
            self.tripped.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_a_failed_probe_reopens_it() {
        let b = Breaker::new(3, Duration::from_millis(30));
        b.failure();
        b.failure();
        assert!(b.allow(), "two failures are below the threshold");
        b.failure();
        assert!(!b.allow(), "the third opens it");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow(), "half open after the period");
        b.failure();
        assert!(!b.allow(), "one failed probe reopens it");
        std::thread::sleep(Duration::from_millis(40));
        b.success();
        b.failure();
        assert!(
            b.allow(),
            "a success closed it: one failure is not enough again"
        );
    }
}
