//! Backoff: retry schedules with exponential growth and full jitter, and the retry of single
//! requests that failed transiently (throttling, dropped connections) before a failure costs
//! the whole object another attempt.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Retry settings, named as AWS Step Functions names them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Delay before the first retry (before jitter).
    pub interval: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Factor by which the delay grows per retry.
    pub backoff_rate: f64,
    /// Largest delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(500),
            max_attempts: 6,
            backoff_rate: 2.0,
            max_delay: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (1 for the first retry), given a uniform random
    /// `unit` in [0, 1): full jitter, `unit * min(max_delay, interval * backoff_rate^(retry-1))`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let p = pqmigrate_core::store::RetryPolicy::default();
    /// assert_eq!(p.delay(1, 0.5), Duration::from_millis(250));
    /// assert_eq!(p.delay(3, 0.5), Duration::from_millis(1000));
    /// assert_eq!(p.delay(30, 0.5), Duration::from_secs(10));
    /// ```
    pub fn delay(&self, retry: u32, unit: f64) -> Duration {
        let exponent = retry.saturating_sub(1).min(64) as i32;
        let ceiling =
            (self.interval.as_secs_f64() * self.backoff_rate.max(1.0).powi(exponent)).min(self.max_delay.as_secs_f64());
        Duration::from_secs_f64(ceiling * unit.clamp(0.0, 1.0))
    }
}

/// Attempts per request.
pub(crate) const REQUEST_ATTEMPTS: u32 = 4;

/// The schedule of single-request retries.
pub(crate) const REQUEST_POLICY: RetryPolicy = RetryPolicy {
    interval: Duration::from_millis(50),
    max_attempts: REQUEST_ATTEMPTS,
    backoff_rate: 2.0,
    max_delay: Duration::from_secs(1),
};

/// Runs `call` until it succeeds, fails with an error `transient` rejects, or [`REQUEST_ATTEMPTS`] are
/// used; waits with exponential backoff and full jitter in between.
/// Each repeat is counted in `retries`.
pub(crate) async fn retry_transient<T, E, F, Fut>(
    retries: &AtomicU64,
    transient: impl Fn(&E) -> bool,
    call: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    repeat(REQUEST_ATTEMPTS, transient, call, |attempt| {
        retries.fetch_add(1, Ordering::Relaxed);
        REQUEST_POLICY.delay(attempt, jitter_unit())
    })
    .await
}

/// Runs `call` up to `attempts` times while it fails with an error `transient` accepts, waiting
/// `pause(attempt)` after each failed attempt.
async fn repeat<T, E, F, Fut>(
    attempts: u32,
    transient: impl Fn(&E) -> bool,
    mut call: F,
    mut pause: impl FnMut(u32) -> Duration,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match call().await {
            Err(e) if attempt < attempts && transient(&e) => tokio::time::sleep(pause(attempt)).await,
            result => return result,
        }
    }
}

/// Rounds of a run's own bookkeeping calls (journal objects, the lease): each round is one store
/// call with its own request retries, so a burst of throttling longer than those does not cost
/// the run its record or its lease.
pub(crate) const BOOKKEEPING_ROUNDS: u32 = 5;

/// The pause between rounds of a bookkeeping call.
pub(crate) const BOOKKEEPING_PAUSE: Duration = Duration::from_secs(1);

/// Runs a bookkeeping call until it succeeds, fails with an error that is not transient, or
/// [`BOOKKEEPING_ROUNDS`] are used.
pub(crate) async fn in_rounds<T, F, Fut>(call: F) -> crate::error::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = crate::error::Result<T>>,
{
    repeat(BOOKKEEPING_ROUNDS, crate::Error::is_transient, call, |_| {
        BOOKKEEPING_PAUSE
    })
    .await
}

/// A uniform draw in [0, 1) for retry jitter.
pub(crate) fn jitter_unit() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0x2545_F491_4F6C_DD1D);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    let mut x = STATE.fetch_add(0x9E37_79B9_7F4A_7C15 ^ nanos, Ordering::Relaxed);
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn retry_delays_table() {
        let p = RetryPolicy {
            interval: Duration::from_secs(1),
            max_attempts: 5,
            backoff_rate: 2.0,
            max_delay: Duration::from_secs(5),
        };
        let cases = [
            (1, 1.0, 1.0),
            (2, 1.0, 2.0),
            (3, 1.0, 4.0),
            (4, 1.0, 5.0),
            (9, 1.0, 5.0),
            (3, 0.25, 1.0),
            (2, 0.0, 0.0),
        ];
        for (retry, unit, seconds) in cases {
            assert_eq!(
                p.delay(retry, unit),
                Duration::from_secs_f64(seconds),
                "retry {retry} unit {unit}"
            );
        }
        let flat = RetryPolicy { backoff_rate: 0.5, ..p };
        assert_eq!(
            flat.delay(4, 1.0),
            Duration::from_secs(1),
            "a rate below 1 does not shrink delays"
        );
    }

    #[test]
    fn jitter_stays_in_the_unit_interval() {
        let draws: Vec<f64> = (0..1000).map(|_| jitter_unit()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((0.4..0.6).contains(&mean), "mean {mean}");
    }

    #[tokio::test]
    async fn retries_transient_errors_only() {
        let retries = AtomicU64::new(0);
        let calls = Cell::new(0);
        let ok: Result<u32, &str> = retry_transient(
            &retries,
            |e: &&str| *e == "busy",
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move { if n < 3 { Err("busy") } else { Ok(n) } }
            },
        )
        .await;
        assert_eq!((ok, calls.get(), retries.load(Ordering::Relaxed)), (Ok(3), 3, 2));

        calls.set(0);
        let permanent: Result<u32, &str> = retry_transient(
            &retries,
            |e: &&str| *e == "busy",
            || {
                calls.set(calls.get() + 1);
                async { Err("gone") }
            },
        )
        .await;
        assert_eq!((permanent, calls.get()), (Err("gone"), 1));

        calls.set(0);
        let exhausted: Result<u32, &str> = retry_transient(
            &retries,
            |e: &&str| *e == "busy",
            || {
                calls.set(calls.get() + 1);
                async { Err("busy") }
            },
        )
        .await;
        assert_eq!((exhausted, calls.get()), (Err("busy"), REQUEST_ATTEMPTS));
    }
}
