//! Rate limits and token budgets: in-memory sliding-window counters, told
//! the time by the caller.
//!
//! A window keeps the count of the current fixed period and of the previous
//! one, and estimates the last `period` as `previous × (1 − elapsed/period) +
//! current` (the sliding-window counter): constant memory, no burst of twice
//! the limit at a period boundary, and deterministic for tests.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitKind {
    /// Requests (a rule's `rateLimit`).
    Requests,
    /// LLM tokens (a rule's `tokenBudget`).
    Tokens,
}

impl LimitKind {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Requests => "requests",
            LimitKind::Tokens => "tokens",
        }
    }
}

/// How much of a limit is used, for metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimitUsage {
    /// The rule that carries the limit.
    pub rule: Arc<str>,
    /// What is counted.
    pub kind: LimitKind,
    /// The estimated use over the last window.
    pub used: f64,
    /// The limit per window.
    pub limit: u64,
    /// The window.
    pub per: Duration,
}

#[derive(Debug, Default)]
struct Window {
    start: Option<Instant>,
    current: u64,
    previous: u64,
}

/// One counter with its limit and window.
#[derive(Debug)]
pub(crate) struct Limiter {
    pub(crate) kind: LimitKind,
    pub(crate) limit: u64,
    pub(crate) per: Duration,
    window: Mutex<Window>,
}

impl Limiter {
    pub(crate) fn new(kind: LimitKind, limit: u64, per: Duration) -> Limiter {
        Limiter {
            kind,
            limit,
            per,
            window: Mutex::new(Window::default()),
        }
    }

    /// Whether `other` counts the same thing the same way, so its state can
    /// carry over a policy reload.
    pub(crate) fn same_config(&self, other: &Limiter) -> bool {
        self.kind == other.kind && self.limit == other.limit && self.per == other.per
    }

    fn lock(&self) -> MutexGuard<'_, Window> {
        // A panic while holding this lock cannot leave the counters
        // inconsistent (they are plain integers), so a poisoned lock is used.
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the window forward to `now` and returns the estimate.
    fn roll(&self, w: &mut Window, now: Instant) -> f64 {
        let start = *w.start.get_or_insert(now);
        let mut elapsed = now.saturating_duration_since(start);
        if elapsed >= self.per.saturating_mul(2) {
            w.previous = 0;
            w.current = 0;
            w.start = Some(now);
            elapsed = Duration::ZERO;
        } else if elapsed >= self.per {
            w.previous = w.current;
            w.current = 0;
            w.start = Some(start + self.per);
            elapsed = elapsed.saturating_sub(self.per);
        }
        let weight = 1.0 - elapsed.as_secs_f64() / self.per.as_secs_f64().max(f64::MIN_POSITIVE);
        w.previous as f64 * weight.clamp(0.0, 1.0) + w.current as f64
    }

    /// Counts one request if the limit allows it.
    pub(crate) fn try_acquire(&self, now: Instant) -> bool {
        let mut w = self.lock();
        let used = self.roll(&mut w, now);
        if used + 1.0 > self.limit as f64 {
            return false;
        }
        w.current = w.current.saturating_add(1);
        true
    }

    /// Whether the budget is used up.
    pub(crate) fn exhausted(&self, now: Instant) -> bool {
        let mut w = self.lock();
        self.roll(&mut w, now) >= self.limit as f64
    }

    /// Adds `amount` (tokens reported after the fact).
    pub(crate) fn add(&self, amount: u64, now: Instant) {
        let mut w = self.lock();
        self.roll(&mut w, now);
        w.current = w.current.saturating_add(amount);
    }

    /// How long until the estimate drops below the limit again (whole
    /// seconds, at least one).
    pub(crate) fn retry_after(&self, now: Instant) -> Duration {
        let mut w = self.lock();
        self.roll(&mut w, now);
        let per = self.per.as_secs_f64();
        // The estimate must come down to this: room for one request, or
        // below the budget.
        let target = match self.kind {
            LimitKind::Requests => self.limit as f64 - 1.0,
            LimitKind::Tokens => self.limit as f64,
        };
        let elapsed = w
            .start
            .map_or(0.0, |s| now.saturating_duration_since(s).as_secs_f64());
        let (prev, cur) = (w.previous as f64, w.current as f64);
        let wait = if cur > target {
            // This window alone is over: wait for it to become the previous
            // one, then for its weight to decay to the target.
            (per - elapsed) + per * (1.0 - target / cur).max(0.0)
        } else if prev > 0.0 {
            (per * (1.0 - (target - cur) / prev) - elapsed).max(0.0)
        } else {
            0.0
        };
        Duration::from_secs(wait.ceil().max(1.0) as u64)
    }

    /// The estimated use over the last window.
    pub(crate) fn used(&self, now: Instant) -> f64 {
        let mut w = self.lock();
        self.roll(&mut w, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_limited_per_window_and_slide() {
        let t0 = Instant::now();
        let l = Limiter::new(LimitKind::Requests, 2, Duration::from_secs(10));
        assert!(l.try_acquire(t0));
        assert!(l.try_acquire(t0 + Duration::from_secs(1)));
        assert!(!l.try_acquire(t0 + Duration::from_secs(2)));
        // Half-way through the next window, half of the previous count
        // still weighs: 2 × 0.5 = 1 used, so one more fits.
        assert!(l.try_acquire(t0 + Duration::from_secs(15)));
        assert!(!l.try_acquire(t0 + Duration::from_secs(15)));
        // Two windows later everything is forgotten.
        assert!(l.try_acquire(t0 + Duration::from_secs(40)));
        assert!(l.try_acquire(t0 + Duration::from_secs(40)));
        assert!(!l.try_acquire(t0 + Duration::from_secs(40)));
    }

    #[test]
    fn retry_after_says_when_a_slot_frees() {
        let t0 = Instant::now();
        let l = Limiter::new(LimitKind::Requests, 2, Duration::from_secs(10));
        assert!(l.try_acquire(t0));
        assert!(l.try_acquire(t0));
        // Full now: the window must pass, and its count decay to one.
        let wait = l.retry_after(t0 + Duration::from_secs(4));
        assert_eq!(wait, Duration::from_secs(11));
        assert!(!l.try_acquire(t0 + Duration::from_secs(4) + wait - Duration::from_millis(1)));
        assert!(l.try_acquire(t0 + Duration::from_secs(4) + wait + Duration::from_millis(1)));
    }

    #[test]
    fn token_budget_is_exhausted_by_reported_usage() {
        let t0 = Instant::now();
        let l = Limiter::new(LimitKind::Tokens, 100, Duration::from_secs(60));
        assert!(!l.exhausted(t0));
        l.add(60, t0);
        assert!(!l.exhausted(t0));
        l.add(40, t0);
        assert!(l.exhausted(t0));
        assert!(l.exhausted(t0 + Duration::from_secs(59)));
        assert!(!l.exhausted(t0 + Duration::from_secs(121)));
        assert_eq!(l.used(t0 + Duration::from_secs(121)), 0.0);
    }
}
