//! Fault injection on the seam: throttling, timeouts, dropped connections, uploads cut off,
//! responses lost after the store applied a write, latency and a racing writer, deterministic
//! by seed. For tests and chaos runs (cargo feature `fault-injection`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;

use super::decorate::Hook;
use super::io::{Request, RequestCounts, SharedIo};
use crate::error::{Error, Result};

/// Called before a conditional write reaches the store, with the inner store and the key: lets a
/// test play "another writer" at the worst moment.
pub type BeforeConditionalPut = Arc<dyn Fn(SharedIo, String) -> BoxFuture<'static, ()> + Send + Sync>;

/// Probabilities (0.0 to 1.0) of each fault, per call.
#[derive(Clone, Default)]
pub struct FaultConfig {
    /// Seed of the deterministic fault sequence.
    pub seed: u64,
    /// `503 SlowDown` answers.
    pub throttle: f64,
    /// Calls that hang for `timeout_after` and then fail.
    pub timeout: f64,
    /// How long a timed-out call hangs.
    pub timeout_after: Duration,
    /// Connections reset before an answer.
    pub reset: f64,
    /// Uploads whose connection drops after part of the body was sent (nothing is committed).
    pub upload_fails_midway: f64,
    /// Writes (PUT, CompleteMultipartUpload) applied by the store whose response is then lost.
    pub lost_response: f64,
    /// Latency added to every call.
    pub latency: Duration,
    /// Runs before every conditional write.
    pub before_conditional_put: Option<BeforeConditionalPut>,
}

impl fmt::Debug for FaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultConfig")
            .field("seed", &self.seed)
            .field("throttle", &self.throttle)
            .field("timeout", &self.timeout)
            .field("reset", &self.reset)
            .field("upload_fails_midway", &self.upload_fails_midway)
            .field("lost_response", &self.lost_response)
            .field("latency", &self.latency)
            .field("before_conditional_put", &self.before_conditional_put.is_some())
            .finish()
    }
}

impl FaultConfig {
    /// Parses `throttle=0.2,timeout=0.01,reset=0.01,upload=0.01,lost=0.1,latency_ms=5,timeout_ms=2000,seed=7`
    /// (any subset).
    ///
    /// ```
    /// let c = pqmigrate_core::store::fault::FaultConfig::parse("throttle=0.2,seed=7").unwrap();
    /// assert_eq!((c.throttle, c.seed), (0.2, 7));
    /// ```
    ///
    /// # Errors
    /// [`crate::error::Error::Config`] for an unknown name or a bad number.
    pub fn parse(spec: &str) -> crate::error::Result<Self> {
        let mut config = FaultConfig {
            timeout_after: Duration::from_secs(2),
            ..FaultConfig::default()
        };
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || crate::error::Error::Config(format!("fault spec {part:?}: expected name=number"));
            let (name, value) = part.split_once('=').ok_or_else(bad)?;
            let number: f64 = value.trim().parse().map_err(|_| bad())?;
            match name.trim() {
                "throttle" => config.throttle = number,
                "timeout" => config.timeout = number,
                "reset" => config.reset = number,
                "upload" => config.upload_fails_midway = number,
                "lost" => config.lost_response = number,
                "latency_ms" => config.latency = Duration::from_secs_f64(number / 1000.0),
                "timeout_ms" => config.timeout_after = Duration::from_secs_f64(number / 1000.0),
                "seed" => config.seed = number as u64,
                _ => return Err(bad()),
            }
        }
        Ok(config)
    }
}

/// The [`Hook`] that injects faults by [`FaultConfig`], counting every request it saw.
#[derive(Debug)]
pub struct FaultInjector {
    config: FaultConfig,
    draws: AtomicU64,
    injected: Arc<RequestCounts>,
    counts: Arc<RequestCounts>,
}

impl FaultInjector {
    /// An injector of `config`'s faults.
    pub fn new(config: FaultConfig) -> Self {
        Self {
            config,
            draws: AtomicU64::new(0),
            injected: Arc::default(),
            counts: Arc::default(),
        }
    }

    /// The requests seen, per kind.
    pub fn counts(&self) -> Arc<RequestCounts> {
        self.counts.clone()
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.total()
    }

    /// Faults injected so far, per kind of request.
    pub fn injected_counts(&self) -> Arc<RequestCounts> {
        self.injected.clone()
    }

    /// A uniform draw in [0, 1) from the seed and the draw number (SplitMix64).
    fn draw(&self) -> f64 {
        let n = self.draws.fetch_add(1, Ordering::Relaxed);
        let mut z = self
            .config
            .seed
            .wrapping_add(n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn fault(&self, request: Request, key: &str, what: &str) -> Error {
        self.injected.add(request);
        Error::Store {
            key: key.to_string(),
            op: request.name(),
            source: object_store::Error::Generic {
                store: "fault-injection",
                source: format!("{key}: injected fault: {what}").into(),
            },
        }
    }
}

#[async_trait]
impl Hook for FaultInjector {
    async fn before(&self, request: Request, key: &str, conditional: bool, inner: &SharedIo) -> Result<()> {
        self.counts.add(request);
        if !self.config.latency.is_zero() {
            tokio::time::sleep(self.config.latency).await;
        }
        let c = &self.config;
        let upload = if request.sends_body() {
            c.upload_fails_midway
        } else {
            0.0
        };
        let r = self.draw();
        let fault = if r < c.throttle {
            "503 SlowDown: Please reduce your request rate"
        } else if r < c.throttle + c.timeout {
            tokio::time::sleep(c.timeout_after).await;
            "operation timed out"
        } else if r < c.throttle + c.timeout + c.reset {
            "connection reset by peer"
        } else if r < c.throttle + c.timeout + c.reset + upload {
            "connection dropped in the middle of the upload body"
        } else {
            if conditional && let Some(hook) = &c.before_conditional_put {
                hook(inner.clone(), key.to_string()).await;
            }
            return Ok(());
        };
        Err(self.fault(request, key, fault))
    }

    fn after(&self, request: Request, key: &str) -> Result<()> {
        let writes = matches!(request, Request::Put | Request::CompleteMultipart);
        if writes && self.config.lost_response > 0.0 && self.draw() < self.config.lost_response {
            return Err(self.fault(
                request,
                key,
                "connection reset after the request was sent; response lost",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use bytes::Bytes;

    #[tokio::test]
    async fn fault_rate_follows_config_and_seed() {
        let config = |seed| FaultConfig {
            seed,
            throttle: 0.2,
            ..FaultConfig::default()
        };
        let run = |config: FaultConfig| async move {
            let (store, injector) = Store::memory().with_faults(config);
            let mut failures = Vec::new();
            for i in 0..1000 {
                let key = format!("k{i}");
                let put = store.put(&key, Bytes::from_static(b"x"), &[], Default::default());
                failures.push(put.await.is_err());
            }
            (failures, injector.injected(), injector.counts().get(Request::Put))
        };
        let (a, injected, puts) = run(config(7)).await;
        let (b, ..) = run(config(7)).await;
        assert_eq!(a, b, "same seed, same faults");
        let rate = injected as f64 / puts as f64;
        assert!(
            (0.15..0.25).contains(&rate),
            "about 20% of {puts} requests fail, got {injected}"
        );
        assert!(
            a.iter().filter(|f| **f).count() < 10,
            "throttling is retried request by request"
        );
    }
}
