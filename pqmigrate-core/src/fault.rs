//! A fault-injecting [`ObjectStore`] wrapper: throttling, timeouts, dropped connections, latency
//! and a concurrent writer, deterministic by seed. For tests and chaos runs.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// Called before a conditional write reaches the store, with the inner store and the key: lets a
/// test play "another writer" at the worst moment.
pub type BeforeConditionalPut = Arc<dyn Fn(Arc<dyn ObjectStore>, Path) -> BoxFuture<'static, ()> + Send + Sync>;

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
            .field("latency", &self.latency)
            .field("before_conditional_put", &self.before_conditional_put.is_some())
            .finish()
    }
}

impl FaultConfig {
    /// Parses `throttle=0.2,timeout=0.01,reset=0.01,upload=0.01,latency_ms=5,timeout_ms=2000,seed=7`
    /// (any subset).
    ///
    /// ```
    /// let c = pqmigrate_core::fault::FaultConfig::parse("throttle=0.2,seed=7").unwrap();
    /// assert_eq!((c.throttle, c.seed), (0.2, 7));
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::Config`] for an unknown name or a bad number.
    pub fn parse(spec: &str) -> crate::Result<Self> {
        let mut config = FaultConfig {
            timeout_after: Duration::from_secs(2),
            ..FaultConfig::default()
        };
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || crate::Error::Config(format!("fault spec {part:?}: expected name=number"));
            let (name, value) = part.split_once('=').ok_or_else(bad)?;
            let number: f64 = value.trim().parse().map_err(|_| bad())?;
            match name.trim() {
                "throttle" => config.throttle = number,
                "timeout" => config.timeout = number,
                "reset" => config.reset = number,
                "upload" => config.upload_fails_midway = number,
                "latency_ms" => config.latency = Duration::from_secs_f64(number / 1000.0),
                "timeout_ms" => config.timeout_after = Duration::from_secs_f64(number / 1000.0),
                "seed" => config.seed = number as u64,
                _ => return Err(bad()),
            }
        }
        Ok(config)
    }
}

/// Counts of faults injected so far.
#[derive(Debug, Default)]
pub struct FaultCounts {
    /// Calls made through the wrapper.
    pub calls: AtomicU64,
    /// Faults injected.
    pub injected: AtomicU64,
}

/// Wraps a store and injects faults by [`FaultConfig`].
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    config: FaultConfig,
    counts: Arc<FaultCounts>,
}

#[derive(Clone, Copy)]
enum Op {
    Read,
    Write,
}

impl FaultyStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ObjectStore>, config: FaultConfig) -> Self {
        Self {
            inner,
            config,
            counts: Arc::default(),
        }
    }

    /// The live fault counters.
    pub fn counts(&self) -> Arc<FaultCounts> {
        self.counts.clone()
    }

    /// A uniform draw in [0, 1) from the seed and the call number (SplitMix64).
    fn draw(&self) -> f64 {
        let n = self.counts.calls.fetch_add(1, Ordering::Relaxed);
        let mut z = self
            .config
            .seed
            .wrapping_add(n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    async fn maybe_fail(&self, op: Op, location: &Path) -> Result<()> {
        if !self.config.latency.is_zero() {
            tokio::time::sleep(self.config.latency).await;
        }
        let c = &self.config;
        let upload = match op {
            Op::Write => c.upload_fails_midway,
            Op::Read => 0.0,
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
            return Ok(());
        };
        self.counts.injected.fetch_add(1, Ordering::Relaxed);
        Err(object_store::Error::Generic {
            store: "fault-injection",
            source: format!("{location}: injected fault: {fault}").into(),
        })
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.maybe_fail(Op::Write, location).await?;
        if let (PutMode::Update(_), Some(hook)) = (&opts.mode, &self.config.before_conditional_put) {
            hook(self.inner.clone(), location.clone()).await;
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.maybe_fail(Op::Write, location).await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.maybe_fail(Op::Read, location).await?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.maybe_fail(Op::Read, location).await?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.maybe_fail(Op::Write, to).await?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.maybe_fail(Op::Write, to).await?;
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn fault_rate_follows_config_and_seed() {
        let make = |seed| {
            FaultyStore::new(
                Arc::new(InMemory::new()),
                FaultConfig {
                    seed,
                    throttle: 0.2,
                    ..FaultConfig::default()
                },
            )
        };
        let run = |store: FaultyStore| async move {
            let mut failures = Vec::new();
            for i in 0..1000 {
                failures.push(
                    store
                        .put(&Path::from(format!("k{i}")), PutPayload::from_static(b"x"))
                        .await
                        .is_err(),
                );
            }
            failures
        };
        let a = run(make(7)).await;
        let b = run(make(7)).await;
        assert_eq!(a, b, "same seed, same faults");
        let rate = a.iter().filter(|f| **f).count();
        assert!((150..250).contains(&rate), "about 20% of 1000 calls fail, got {rate}");
        let err = make(1).put(&Path::from("x"), PutPayload::from_static(b"x")).await;
        if let Err(e) = err {
            assert!(e.to_string().contains("503 SlowDown"), "{e}");
        }
    }
}
