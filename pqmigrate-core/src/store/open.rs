//! Opening a store: from a URL (one place maps each scheme to its backend), or from a backend of
//! the seam, and the layers a store can be given (hooks, a rate limit, injected faults, upload
//! sizes).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(feature = "azure")]
use super::azure;
#[cfg(feature = "fault-injection")]
use super::fault;
#[cfg(feature = "gcs")]
use super::gcs;
#[cfg(feature = "s3")]
use super::s3::{self, S3Api};
use super::{
    DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE, Decorated, Hook, RateLimit, RateLimiter, SharedIo, Store,
    StoreOptions, local, memory,
};
use crate::error::{Error, Result};

impl Store {
    /// An in-memory store (tests, examples).
    pub fn memory() -> Self {
        static STORES: AtomicU64 = AtomicU64::new(0);
        let mut store = Self::from_io(Arc::new(memory::MemoryIo::default()), "memory://".into());
        store.identity = format!("memory://#{}", STORES.fetch_add(1, Ordering::Relaxed));
        store
    }

    /// A directory on local disk, created if missing.
    ///
    /// # Errors
    /// [`Error::Config`] when the directory cannot be created.
    pub fn local(root: impl AsRef<std::path::Path>) -> Result<Self> {
        let root = root.as_ref();
        std::fs::create_dir_all(root).map_err(|e| Error::Config(format!("cannot create {}: {e}", root.display())))?;
        Ok(Self::from_io(
            Arc::new(local::LocalIo::new(root)?),
            format!("file://{}", root.display()),
        ))
    }

    /// A store over any backend of the seam (an embedder's own, or a decorated one).
    pub fn from_io(io: SharedIo, url: String) -> Self {
        Self {
            capabilities: io.capabilities(),
            io,
            identity: url.clone(),
            url,
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_size: DEFAULT_PART_SIZE,
            request_retries: Arc::default(),
            copies_refused: Arc::default(),
            #[cfg(feature = "s3")]
            s3: None,
        }
    }

    /// An S3 bucket. Credentials and defaults come from the standard `AWS_*` environment variables;
    /// `options` override endpoint and region. A custom endpoint is addressed path-style.
    ///
    /// # Errors
    /// [`Error::Config`] when the client cannot be built.
    #[cfg(feature = "s3")]
    pub fn s3(bucket: &str, options: &StoreOptions) -> Result<Self> {
        Ok(s3::open(bucket, options)?.with_upload_sizes(options))
    }

    /// Keeps the S3 administration handle of an S3 store.
    #[cfg(feature = "s3")]
    pub(super) fn with_s3_api(mut self, api: Arc<S3Api>) -> Self {
        self.s3 = Some(api);
        self
    }

    /// Opens `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix` (or
    /// `abfss://container@account.dfs.core.windows.net/prefix`), `file:///dir` or
    /// `memory://`. Returns the store and the prefix inside it given by the URL's path.
    ///
    /// # Errors
    /// [`Error::Config`] for an unknown scheme, a scheme whose backend this build left out (the
    /// `s3`, `gcs` and `azure` features), a bad URL, or a `file://` folder that does not exist
    /// (it is never created here).
    pub fn open(url: &str, options: &StoreOptions) -> Result<(Self, String)> {
        let parsed = url::Url::parse(url).map_err(|e| Error::Config(format!("bad store URL {url:?}: {e}")))?;
        match parsed.scheme() {
            #[cfg(feature = "s3")]
            "s3" => Ok((Self::s3(bucket_of(&parsed, url)?, options)?, prefix_of(&parsed))),
            "file" => {
                let path = parsed
                    .to_file_path()
                    .map_err(|()| Error::Config(format!("{url}: not a local path")))?;
                Ok((local::open(url, &path)?.with_upload_sizes(options), String::new()))
            }
            "memory" => Ok((Self::memory().with_upload_sizes(options), prefix_of(&parsed))),
            #[cfg(feature = "gcs")]
            "gs" => Ok((gcs::open(bucket_of(&parsed, url)?, options)?, prefix_of(&parsed))),
            #[cfg(feature = "azure")]
            "az" | "azure" | "abfs" | "abfss" => {
                let (container, account) = azure::container_of(&parsed)?;
                Ok((
                    azure::open(&container, account.as_deref(), options)?,
                    prefix_of(&parsed),
                ))
            }
            // Where a backend was built in, its arm above took the scheme.
            #[allow(unreachable_patterns)]
            left_out @ ("s3" | "gs" | "az" | "azure" | "abfs" | "abfss") => Err(Error::Config(format!(
                "{url}: this build of pqmigrate has no {left_out}:// backend (pqmigrate-core's `{}` feature)",
                match left_out {
                    "s3" => "s3",
                    "gs" => "gcs",
                    _ => "azure",
                }
            ))),
            other => Err(Error::Config(format!(
                "{url}: unsupported scheme {other:?} (use s3://, gs://, az://, file:// or memory://)"
            ))),
        }
    }

    /// Every request of this store passes through `hook` too (outermost).
    pub fn with_hook(self, hook: impl Hook) -> Self {
        let io: SharedIo = Arc::new(Decorated::new(self.io.clone(), hook));
        Self { io, ..self }
    }

    /// Limits every request to this store (listings, heads, reads, writes, tags, every
    /// multipart call, version listings) to `per_second`.
    pub fn with_rate_limit(self, per_second: f64) -> Self {
        self.with_hook(RateLimit::new(Arc::new(RateLimiter::new(per_second))))
    }

    /// Injects `config`'s faults into every request of this store; the injector's counts tell
    /// what it saw.
    #[cfg(feature = "fault-injection")]
    pub fn with_faults(self, config: fault::FaultConfig) -> (Self, Arc<fault::FaultInjector>) {
        let injector = Arc::new(fault::FaultInjector::new(config));
        (self.with_hook(injector.clone()), injector)
    }

    /// Applies the multipart threshold and part size of `options`.
    pub fn with_upload_sizes(mut self, options: &StoreOptions) -> Self {
        self.multipart_threshold = options.multipart_threshold.unwrap_or(DEFAULT_MULTIPART_THRESHOLD);
        self.part_size = options.part_size.unwrap_or(DEFAULT_PART_SIZE);
        self
    }

    /// The same store, writing every output as one conditional PUT (up to S3's 5 GiB), never as
    /// a multipart upload.
    pub fn single_puts_only(mut self) -> Self {
        self.multipart_threshold = 5 * 1024 * 1024 * 1024;
        self.capabilities.copy_parts = false;
        self
    }

    /// The same store, never copying parts in place: every output streams whole (to compare
    /// the two paths, or for a server whose copies cannot be trusted).
    pub fn without_copied_parts(mut self) -> Self {
        self.capabilities.copy_parts = false;
        self
    }
}

/// The bucket a store URL names (its host).
#[cfg(any(feature = "s3", feature = "gcs"))]
fn bucket_of<'a>(parsed: &'a url::Url, url: &str) -> Result<&'a str> {
    parsed
        .host_str()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| Error::Config(format!("{url}: no bucket")))
}

/// The key prefix a store URL names (its path).
fn prefix_of(parsed: &url::Url) -> String {
    parsed.path().trim_start_matches('/').to_string()
}
