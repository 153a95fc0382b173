//! A request-rate limit beside the concurrency bound, so a run stays under a store's request
//! limits (S3 allows some thousands of requests per second per prefix). It wraps the seam, so
//! every request of a run waits its turn: listings, tags and multipart calls included.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::decorate::Hook;
use super::io::{Request, RequestCounts, SharedIo};
use crate::error::Result;

/// Spaces requests evenly at `per_second`, shared by every task of a run.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    next: Mutex<Instant>,
}

impl RateLimiter {
    /// A limiter of `per_second` requests (at least 0.001).
    pub fn new(per_second: f64) -> Self {
        Self {
            interval: Duration::from_secs_f64(1.0 / per_second.max(0.001)),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for this request's turn.
    pub async fn acquire(&self) {
        let turn = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let turn = (*next).max(now);
            *next = turn + self.interval;
            turn
        };
        tokio::time::sleep_until(turn.into()).await;
    }
}

/// The [`Hook`] that makes every request wait for a [`RateLimiter`], counting what it saw.
#[derive(Debug)]
pub struct RateLimit {
    limiter: Arc<RateLimiter>,
    counts: Arc<RequestCounts>,
}

impl RateLimit {
    /// Requests wait for `limiter`.
    pub fn new(limiter: Arc<RateLimiter>) -> Self {
        Self {
            limiter,
            counts: Arc::default(),
        }
    }

    /// The requests that waited, per kind.
    pub fn counts(&self) -> Arc<RequestCounts> {
        self.counts.clone()
    }
}

#[async_trait]
impl Hook for RateLimit {
    async fn before(&self, request: Request, _key: &str, _conditional: bool, _inner: &SharedIo) -> Result<()> {
        self.counts.add(request);
        self.limiter.acquire().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_are_spaced_at_the_rate() {
        let limiter = Arc::new(RateLimiter::new(200.0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..41)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move { limiter.acquire().await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(195),
            "41 requests at 200/s take 200 ms, took {elapsed:?}"
        );
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    }
}
