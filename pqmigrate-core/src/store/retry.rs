//! Retrying single store requests that failed transiently (throttling, dropped connections),
//! before a failure costs the whole object another attempt.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::executor::{RetryPolicy, jitter_unit};

/// Attempts per request.
const ATTEMPTS: u32 = 4;

const POLICY: RetryPolicy = RetryPolicy {
    interval: Duration::from_millis(50),
    max_attempts: ATTEMPTS,
    backoff_rate: 2.0,
    max_delay: Duration::from_secs(1),
};

/// Runs `call` until it succeeds, fails with an error `transient` rejects, or [`ATTEMPTS`] are
/// used; waits with exponential backoff and full jitter in between.
/// Each repeat is counted in `retries`.
pub(crate) async fn retry_transient<T, E, F, Fut>(
    retries: &AtomicU64,
    transient: impl Fn(&E) -> bool,
    mut call: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match call().await {
            Err(e) if attempt < ATTEMPTS && transient(&e) => {
                retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(POLICY.delay(attempt, jitter_unit())).await;
            }
            result => return result,
        }
    }
}

/// Whether a store error is worth repeating the same request for. A precondition failure is
/// not: the object changed, and only a fresh read helps.
pub(crate) fn transient_store_error(e: &object_store::Error) -> bool {
    !matches!(e, object_store::Error::Precondition { .. }) && crate::error::is_transient_store_error(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

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
        assert_eq!((exhausted, calls.get()), (Err("busy"), ATTEMPTS));
    }
}
