//! Per-provider rate limits (requests and tokens per minute) shared by every agent of a process.
//!
//! The limiter is governor's GCRA on tokio's clock, so waits are `tokio::time::sleep`s and
//! tests can run it on paused time.

use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;
use std::ops::Add;
use std::time::Duration;

/// An instant of tokio's clock, as governor wants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct TokioInstant(tokio::time::Instant);

impl Add<Nanos> for TokioInstant {
    type Output = Self;

    fn add(self, d: Nanos) -> Self {
        TokioInstant(self.0 + Duration::from_nanos(d.as_u64()))
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> Nanos {
        self.0.saturating_duration_since(earlier.0).into()
    }

    fn saturating_sub(&self, d: Nanos) -> Self {
        TokioInstant(self.0.checked_sub(Duration::from_nanos(d.as_u64())).unwrap_or(self.0))
    }
}

/// tokio's clock (pausable in tests).
#[derive(Debug, Clone, Copy, Default)]
struct TokioClock;

impl Clock for TokioClock {
    type Instant = TokioInstant;

    fn now(&self) -> TokioInstant {
        TokioInstant(tokio::time::Instant::now())
    }
}

type Gcra = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<TokioInstant>>;

/// The limits of one provider; cloning a [`super::Models`] shares them.
pub(crate) struct Limits {
    requests: Option<Gcra>,
    tokens: Option<(Gcra, NonZeroU32)>,
}

impl Limits {
    /// Limits of `requests_per_minute` and `tokens_per_minute` (0: unlimited).
    pub(crate) fn new(requests_per_minute: u32, tokens_per_minute: u32) -> Self {
        let gcra = |n: NonZeroU32| RateLimiter::direct_with_clock(Quota::per_minute(n), TokioClock);
        Limits {
            requests: NonZeroU32::new(requests_per_minute).map(gcra),
            tokens: NonZeroU32::new(tokens_per_minute).map(|n| (gcra(n), n)),
        }
    }

    /// Waits until one request of about `tokens` tokens fits both limits; returns the time waited.
    ///
    /// A request larger than the whole per-minute token budget waits for the whole budget.
    pub(crate) async fn acquire(&self, tokens: u64) -> Duration {
        let start = tokio::time::Instant::now();
        if let Some(r) = &self.requests {
            wait_for(r, NonZeroU32::MIN).await;
        }
        if let Some((t, burst)) = &self.tokens {
            let n = u32::try_from(tokens).unwrap_or(u32::MAX).clamp(1, burst.get());
            wait_for(t, NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)).await;
        }
        start.elapsed()
    }
}

async fn wait_for(gcra: &Gcra, n: NonZeroU32) {
    loop {
        match gcra.check_n(n) {
            Ok(Ok(())) => return,
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(TokioClock.now());
                tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
            }
            // `n` is clamped to the burst size by the caller, so this cannot happen; never spin.
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_per_minute_spread_calls_after_the_burst() {
        let l = Limits::new(2, 0);
        let start = tokio::time::Instant::now();
        for _ in 0..5 {
            l.acquire(10).await;
        }
        // A burst of 2, then one every 30 s.
        let secs = start.elapsed().as_secs_f64();
        assert!((89.0..=91.0).contains(&secs), "{secs}");
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_per_minute_bound_large_requests() {
        let l = Limits::new(0, 600);
        let start = tokio::time::Instant::now();
        l.acquire(600).await;
        l.acquire(300).await;
        // The second request waits until half the minute's budget is back.
        let secs = start.elapsed().as_secs_f64();
        assert!((29.0..=31.0).contains(&secs), "{secs}");
        // Bigger than the budget: waits for the whole budget, never forever.
        l.acquire(10_000).await;
        assert!(start.elapsed() <= Duration::from_secs(95));
    }

    #[tokio::test(start_paused = true)]
    async fn no_limits_never_wait() {
        let l = Limits::new(0, 0);
        assert_eq!(l.acquire(1_000_000).await, Duration::ZERO);
    }
}
