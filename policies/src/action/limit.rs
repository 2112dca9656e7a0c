//! Rate limits and token budgets: in-memory sliding-window counters, told
//! the time by the caller.
//!
//! Token budgets reserve before they charge: an LLM call admitted under a
//! budget holds a [`TokenReservation`] for its worst case (input bound plus
//! output cap) until the response reports what it used. A call is admitted
//! only while settled use plus the reservations in flight is below the
//! budget, so however many calls race, the budget is overrun by at most the
//! last admitted call's worth.
//!
//! A window keeps the count of the current fixed period and of the previous
//! one, and estimates the last `period` as `previous × (1 − elapsed/period) +
//! current` (the sliding-window counter): constant memory, no burst of twice
//! the limit at a period boundary, and deterministic for tests.

use std::sync::atomic::{AtomicU8, Ordering};
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
    /// Tokens held by calls in flight, not yet settled.
    reserved: u64,
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

    /// Whether the budget is used up (settled use plus reservations).
    #[cfg(test)]
    pub(crate) fn exhausted(&self, now: Instant) -> bool {
        let mut w = self.lock();
        self.roll(&mut w, now) + w.reserved as f64 >= self.limit as f64
    }

    /// Admits one call whose worst case is `worst_case` tokens (`None`:
    /// unbounded, which holds everything left) if the budget is not used up,
    /// and reserves that much until the returned reservation settles.
    pub(crate) fn try_reserve(
        self: &Arc<Self>,
        worst_case: Option<u64>,
        now: Instant,
    ) -> Option<TokenReservation> {
        let mut w = self.lock();
        let held = self.roll(&mut w, now) + w.reserved as f64;
        if held >= self.limit as f64 {
            return None;
        }
        let left = (self.limit as f64 - held).ceil() as u64;
        let amount = worst_case.unwrap_or(left.max(1));
        w.reserved = w.reserved.saturating_add(amount);
        Some(TokenReservation {
            limiter: Arc::clone(self),
            amount,
            state: AtomicU8::new(HELD),
        })
    }

    /// Ends a reservation of `reserved` tokens, charging `used`.
    fn settle(&self, reserved: u64, used: u64, now: Instant) {
        let mut w = self.lock();
        self.roll(&mut w, now);
        w.reserved = w.reserved.saturating_sub(reserved);
        w.current = w.current.saturating_add(used);
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

    /// Tokens held by calls in flight.
    #[cfg(test)]
    pub(crate) fn reserved(&self) -> u64 {
        self.lock().reserved
    }
}

/// The reservation was made; the call has not been sent.
const HELD: u8 = 0;
/// The call was sent: the provider may be generating.
const SENT: u8 = 1;
/// Settled or released.
const DONE: u8 = 2;

/// Tokens held against a budget for one LLM call in flight.
///
/// Dropped before [`TokenReservation::mark_sent`], it is released (the call
/// never reached the provider); dropped after, it is charged in full (the
/// provider may have generated up to the worst case and nobody learned how
/// much). [`TokenReservation::settle`] charges what the response reported.
#[derive(Debug)]
pub struct TokenReservation {
    limiter: Arc<Limiter>,
    amount: u64,
    state: AtomicU8,
}

impl TokenReservation {
    /// The tokens held.
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// Records that the call is on its way to the provider: from now on an
    /// unsettled reservation is charged in full.
    pub fn mark_sent(&self) {
        let _ = self
            .state
            .compare_exchange(HELD, SENT, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Records that the call never reached the provider after all (the
    /// connection could not be made): an unsettled reservation is released.
    pub fn mark_unsent(&self) {
        let _ = self
            .state
            .compare_exchange(SENT, HELD, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Ends the reservation, charging `used` tokens (once; later calls do
    /// nothing).
    pub fn settle(&self, used: u64, now: Instant) {
        if self.state.swap(DONE, Ordering::AcqRel) != DONE {
            self.limiter.settle(self.amount, used, now);
        }
    }

    /// Ends the reservation as its state says: released if unsent, charged
    /// in full if sent.
    pub fn finish(&self, now: Instant) {
        match self.state.swap(DONE, Ordering::AcqRel) {
            HELD => self.limiter.settle(self.amount, 0, now),
            SENT => self.limiter.settle(self.amount, self.amount, now),
            _ => {}
        }
    }
}

impl Drop for TokenReservation {
    fn drop(&mut self) {
        self.finish(Instant::now());
    }
}

impl PartialEq for TokenReservation {
    fn eq(&self, other: &TokenReservation) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for TokenReservation {}

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

    #[test]
    fn racing_calls_overrun_a_budget_by_at_most_one_reservation() {
        let t0 = Instant::now();
        let l = Arc::new(Limiter::new(
            LimitKind::Tokens,
            1000,
            Duration::from_secs(3600),
        ));
        l.add(900, t0);
        // Ten calls admitted at once, each worth up to 150 tokens: only the
        // first gets in; the rest see the budget held.
        let held: Vec<_> = (0..10)
            .filter_map(|_| l.try_reserve(Some(150), t0))
            .collect();
        assert_eq!(held.len(), 1);
        assert_eq!(l.reserved(), 150);
        // It settles on what it used; the room it left is usable again.
        held[0].settle(40, t0);
        assert_eq!(l.reserved(), 0);
        assert_eq!(l.used(t0), 940.0);
        assert!(l.try_reserve(Some(10), t0).is_some());
    }

    #[test]
    fn an_unbounded_call_holds_everything_left() {
        let t0 = Instant::now();
        let l = Arc::new(Limiter::new(
            LimitKind::Tokens,
            1000,
            Duration::from_secs(3600),
        ));
        l.add(300, t0);
        let r = l.try_reserve(None, t0).unwrap();
        assert_eq!(r.amount(), 700);
        assert!(l.try_reserve(Some(1), t0).is_none());
        drop(r);
        assert!(l.try_reserve(Some(1), t0).is_some());
    }

    #[test]
    fn dropped_reservations_release_unless_sent() {
        let t0 = Instant::now();
        let l = Arc::new(Limiter::new(
            LimitKind::Tokens,
            1000,
            Duration::from_secs(3600),
        ));
        drop(l.try_reserve(Some(200), t0).unwrap());
        assert_eq!((l.used(t0), l.reserved()), (0.0, 0));
        // Sent and never settled (a client that went away mid-stream): the
        // provider may have generated the worst case, so that is charged.
        let sent = l.try_reserve(Some(200), t0).unwrap();
        sent.mark_sent();
        drop(sent);
        assert_eq!((l.used(t0), l.reserved()), (200.0, 0));
        // Sent, then the connection failed to open: released.
        let unsent = l.try_reserve(Some(200), t0).unwrap();
        unsent.mark_sent();
        unsent.mark_unsent();
        drop(unsent);
        assert_eq!((l.used(t0), l.reserved()), (200.0, 0));
        // Settling twice charges once.
        let r = l.try_reserve(Some(200), t0).unwrap();
        r.settle(5, t0);
        r.settle(500, t0);
        drop(r);
        assert_eq!((l.used(t0), l.reserved()), (205.0, 0));
    }

    #[test]
    fn many_threads_never_hold_more_than_the_budget_plus_one_call() {
        let l = Arc::new(Limiter::new(
            LimitKind::Tokens,
            1000,
            Duration::from_secs(3600),
        ));
        let t0 = Instant::now();
        let admitted = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    for _ in 0..200 {
                        if let Some(r) = l.try_reserve(Some(90), t0) {
                            admitted.fetch_add(r.amount(), Ordering::Relaxed);
                            mine.push(r);
                        }
                    }
                    for r in &mine {
                        r.mark_sent();
                    }
                });
            }
        });
        let admitted = admitted.load(Ordering::Relaxed);
        assert!(admitted <= 1000 + 90, "admitted {admitted}");
        assert!(admitted >= 1000, "admitted only {admitted}");
    }
}
