//! Storage: the [`Store`] facade a data set lives behind, over one I/O seam ([`StoreIo`]) that
//! each backend implements (S3, GCS, Azure Blob, local disk, memory) and that decorators wrap
//! (the rate limiter, the fault injector). Retries of single requests live here; what a backend can do is a
//! [`Capabilities`] value. Nothing here knows about scans, plans, journals or executors.

mod azure;
mod backoff;
mod decorate;
#[cfg(feature = "fault-injection")]
pub mod fault;
mod gcs;
mod io;
mod local;
mod memory;
mod plumbing;
mod ratelimit;
mod s3;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{Attribute, Attributes, RetryConfig};

pub(crate) use backoff::{REQUEST_ATTEMPTS, in_rounds};
pub use backoff::{RetryPolicy, jitter_unit};
pub use decorate::{Decorated, Hook};
pub use io::{
    Capabilities, Condition, CopySource, Encryption, Head, ListPage, Listed, ObjectVersion, ReadOptions, Request,
    RequestCounts, SharedIo, StoreIo, WriteOptions, Written,
};
pub use object_store::Error as StoreError;
pub use ratelimit::{RateLimit, RateLimiter};
pub use s3::S3Api;

use crate::error::{Error, Result};

/// S3's limits on object tags, checked before every write.
pub const S3_MAX_TAGS: usize = 10;
/// Longest tag key S3 accepts.
pub const S3_MAX_TAG_KEY: usize = 128;
/// Longest tag value S3 accepts.
pub const S3_MAX_TAG_VALUE: usize = 256;

/// Outputs up to this size go out as one conditional PUT.
pub const DEFAULT_MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;
/// Part size of multipart uploads (S3 wants at least 5 MiB for all but the last).
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
/// The smallest part S3 takes, but for the last.
pub const MIN_PART: u64 = 5 * 1024 * 1024;
/// The largest part S3 takes, copied or uploaded.
pub const MAX_PART: u64 = 5 * 1024 * 1024 * 1024;

/// Prefix under which pqmigrate keeps its own objects (journals, leases, staging); never scanned.
pub const INTERNAL_PREFIX: &str = "_pqmigrate/";

/// The store path of a key, taken verbatim: keys are the store's own names, so they are never
/// re-encoded, and a key with an empty, `.` or `..` segment (which could step outside a local
/// root) is refused.
///
/// ```
/// assert_eq!(pqmigrate_core::store::object_path("a b/c%d#1.parquet").unwrap().as_ref(), "a b/c%d#1.parquet");
/// assert!(pqmigrate_core::store::object_path("../etc/passwd").is_err());
/// ```
///
/// # Errors
/// [`Error::InvalidKey`].
pub fn object_path(key: &str) -> Result<Path> {
    Path::parse(key).map_err(|e| Error::InvalidKey {
        key: key.to_string(),
        message: e.to_string(),
    })
}

/// A key as S3 form-encodes it (listings with `encoding-type=url`, S3 Inventory manifests):
/// `+` is a space, `%2B` a plus; `None` when it does not decode to UTF-8.
///
/// ```
/// assert_eq!(pqmigrate_core::store::form_decode("a+b%2Bc%09.parquet").as_deref(), Some("a b+c\t.parquet"));
/// ```
pub fn form_decode(key: &str) -> Option<String> {
    percent_encoding::percent_decode_str(&key.replace('+', " "))
        .decode_utf8()
        .ok()
        .map(|k| k.into_owned())
}

/// Options for opening a store from a URL.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// S3 endpoint (`http://127.0.0.1:8333`); AWS when `None` (or `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// GCS endpoint for an emulator (fake-gcs-server), addressed without credentials; Google's
    /// when `None`.
    pub gcs_endpoint: Option<String>,
    /// Azure Blob endpoint including the account (Azurite:
    /// `http://127.0.0.1:10000/devstoreaccount1`); the account's own when `None`.
    pub azure_endpoint: Option<String>,
    /// Region; `AWS_REGION`/`AWS_DEFAULT_REGION` or `us-east-1` when `None`.
    pub region: Option<String>,
    /// Retries done inside each store call before an error reaches the executor.
    pub max_retries: Option<usize>,
    /// Outputs larger than this are uploaded in parts (default 16 MiB).
    pub multipart_threshold: Option<usize>,
    /// Part size of multipart uploads (default 8 MiB, at least 5 MiB).
    pub part_size: Option<usize>,
}

impl StoreOptions {
    /// The retries object_store's own client does inside each request.
    fn retry_config(&self) -> RetryConfig {
        RetryConfig {
            max_retries: self.max_retries.unwrap_or(3),
            retry_timeout: Duration::from_secs(60),
            ..RetryConfig::default()
        }
    }
}

/// An object store holding a data set: every request goes through one [`StoreIo`], with
/// transient failures retried request by request. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    io: SharedIo,
    capabilities: Capabilities,
    url: String,
    multipart_threshold: usize,
    part_size: usize,
    request_retries: Arc<AtomicU64>,
    /// Set when the store refused a copied part: later writes stream the whole file.
    copies_refused: Arc<std::sync::atomic::AtomicBool>,
    s3: Option<Arc<S3Api>>,
    /// What the store is, for caches: its URL, made unique for stores that share one.
    identity: String,
}

/// What was read about an object before migrating it.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    /// Object key.
    pub key: String,
    /// ETag of the content read.
    pub e_tag: Option<String>,
    /// Version id, when the bucket is versioned.
    pub version_id: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// Content type, encoding, user metadata...
    pub attributes: Attributes,
    /// Object tags; `None` where the store has no tags.
    pub tags: Option<Vec<(String, String)>>,
    /// Server-side encryption, where the store reports it.
    pub encryption: Option<Encryption>,
}

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
            s3: None,
        }
    }

    /// An S3 bucket. Credentials and defaults come from the standard `AWS_*` environment variables;
    /// `options` override endpoint and region. A custom endpoint is addressed path-style.
    ///
    /// # Errors
    /// [`Error::Config`] when the client cannot be built.
    pub fn s3(bucket: &str, options: &StoreOptions) -> Result<Self> {
        Ok(s3::open(bucket, options)?.with_upload_sizes(options))
    }

    /// Keeps the S3 administration handle of an S3 store.
    fn with_s3_api(mut self, api: Arc<S3Api>) -> Self {
        self.s3 = Some(api);
        self
    }

    /// Opens `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix` (or
    /// `abfss://container@account.dfs.core.windows.net/prefix`), `file:///dir` or
    /// `memory://`. Returns the store and the prefix inside it given by the URL's path.
    ///
    /// # Errors
    /// [`Error::Config`] for an unknown scheme, a bad URL, or a `file://` folder that does not
    /// exist (it is never created here).
    pub fn open(url: &str, options: &StoreOptions) -> Result<(Self, String)> {
        let parsed = url::Url::parse(url).map_err(|e| Error::Config(format!("bad store URL {url:?}: {e}")))?;
        match parsed.scheme() {
            "s3" => Ok((Self::s3(bucket_of(&parsed, url)?, options)?, prefix_of(&parsed))),
            "file" => {
                let path = parsed
                    .to_file_path()
                    .map_err(|()| Error::Config(format!("{url}: not a local path")))?;
                Ok((local::open(url, &path)?.with_upload_sizes(options), String::new()))
            }
            "memory" => Ok((Self::memory().with_upload_sizes(options), prefix_of(&parsed))),
            "gs" => Ok((gcs::open(bucket_of(&parsed, url)?, options)?, prefix_of(&parsed))),
            "az" | "azure" | "abfs" | "abfss" => {
                let (container, account) = azure::container_of(&parsed)?;
                Ok((
                    azure::open(&container, account.as_deref(), options)?,
                    prefix_of(&parsed),
                ))
            }
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

    /// Whether writes may copy parts in place now: the store can, and has not refused one.
    pub fn copies_parts(&self) -> bool {
        self.capabilities.copy_parts && !self.copies_refused.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records that the store refused a copied part: later writes stream the whole file.
    pub(crate) fn refuse_copies(&self, why: &Error) {
        if !self.copies_refused.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                "{}: the store refused a copied part ({}); files are streamed whole from now on",
                self.url,
                why.report()
            );
        }
    }

    /// What the store can do.
    pub fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    /// The store's URL, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Direct S3 calls for bucket administration and checks (create a bucket, switch
    /// versioning, list open uploads, read tags), on S3 stores. They do not pass through the
    /// seam's decorators; nothing in a run uses them.
    pub fn s3_api(&self) -> Option<&S3Api> {
        self.s3.as_deref()
    }

    /// Requests repeated after a transient failure, since the store was opened (shared by its
    /// clones).
    pub fn request_retries(&self) -> u64 {
        self.request_retries.load(Ordering::Relaxed)
    }

    /// The store's URL, or for stores that share one (memory), a unique name.
    pub(crate) fn identity(&self) -> &str {
        &self.identity
    }

    pub(crate) fn multipart_threshold(&self) -> usize {
        self.multipart_threshold
    }

    pub(crate) fn part_size(&self) -> usize {
        self.part_size
    }

    /// One request, repeated while it fails transiently.
    async fn retry<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        backoff::retry_transient(&self.request_retries, Error::is_transient, call).await
    }

    /// The store's clock, through the seam (so rate limits and injected faults apply to it): a
    /// server's `Date` (S3, Azure); this machine's clock for local disk and memory, which are on
    /// it, and for GCS, whose clock is not read.
    ///
    /// # Errors
    /// Store errors of the request that reads it.
    pub async fn server_time(&self) -> Result<chrono::DateTime<chrono::Utc>> {
        self.retry(|| self.io.server_time()).await
    }

    /// Lists the objects whose keys start with `prefix` (a raw string, not a directory), every
    /// page followed, `page_size` keys a request where the store takes one. Internal objects
    /// under [`INTERNAL_PREFIX`] are listed too; filtering is the caller's. A page that keeps
    /// failing ends the stream with its error.
    pub fn list_prefix(&self, prefix: &str, page_size: Option<usize>) -> BoxStream<'static, Result<Listed>> {
        let store = self.clone();
        let prefix = prefix.to_string();
        stream::unfold(Some(None::<String>), move |token| {
            let store = store.clone();
            let prefix = prefix.clone();
            async move {
                let token = token?;
                let page = store.retry(|| store.io.list(&prefix, token.clone(), page_size)).await;
                Some(match page {
                    Ok(page) => {
                        let next = page.next.map(Some);
                        let items: Vec<Result<Listed>> = page.objects.into_iter().map(Ok).collect();
                        (stream::iter(items), next)
                    }
                    Err(e) => (stream::iter(vec![Err(e)]), None),
                })
            }
        })
        .flatten()
        .boxed()
    }

    /// The "directories" directly under `prefix`, without their trailing `/`.
    ///
    /// # Errors
    /// Store errors naming the prefix.
    pub async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        self.retry(|| self.io.list_dirs(prefix)).await
    }

    /// An object's metadata: ETag, version id, size, last modified, attributes.
    ///
    /// # Errors
    /// Store errors naming the key ([`Error::is_not_found`] for a missing one).
    pub async fn head(&self, key: &str) -> Result<Head> {
        self.retry(|| self.io.head(key, None)).await
    }

    /// The metadata of one version of an object.
    ///
    /// # Errors
    /// As [`Store::head`].
    pub async fn head_version(&self, key: &str, version_id: &str) -> Result<Head> {
        self.retry(|| self.io.head(key, Some(version_id))).await
    }

    /// What a migration needs to know before reading data: the head (ETag, version id, size,
    /// attributes), then the tags of exactly the version the head names.
    ///
    /// # Errors
    /// Store errors naming the key.
    pub async fn object_info(&self, key: &str) -> Result<ObjectInfo> {
        let head = self.head(key).await?;
        let tags = self.tags_at(key, head.version_id.as_deref()).await?;
        Ok(ObjectInfo {
            key: key.to_string(),
            e_tag: head.e_tag,
            version_id: head.version_id,
            size: head.size,
            attributes: head.attributes,
            tags,
            encryption: head.encryption,
        })
    }

    /// An object's current tags; `None` where the store has no tags.
    ///
    /// # Errors
    /// Store errors naming the key.
    pub async fn tags(&self, key: &str) -> Result<Option<Vec<(String, String)>>> {
        self.tags_at(key, None).await
    }

    /// The tags of one version of an object (the current one when `version_id` is `None`);
    /// `None` where the store has no tags.
    ///
    /// # Errors
    /// Store errors naming the key.
    pub async fn tags_at(&self, key: &str, version_id: Option<&str>) -> Result<Option<Vec<(String, String)>>> {
        if !self.capabilities.tags {
            return Ok(None);
        }
        self.retry(|| self.io.get_tags(key, version_id)).await.map(Some)
    }

    /// Replaces an object's tags.
    ///
    /// # Errors
    /// [`Error::Config`] where the store has no tags, store errors otherwise.
    pub async fn put_tags(&self, key: &str, tags: &[(String, String)]) -> Result<()> {
        self.retry(|| self.io.put_tags(key, None, tags)).await
    }

    /// Replaces the tags of one version of an object (the current one when `version_id` is
    /// `None`).
    ///
    /// # Errors
    /// As [`Store::put_tags`].
    pub async fn put_tags_at(&self, key: &str, version_id: Option<&str>, tags: &[(String, String)]) -> Result<()> {
        self.retry(|| self.io.put_tags(key, version_id, tags)).await
    }

    /// An object's bytes (or a range of them) and metadata.
    ///
    /// # Errors
    /// [`Error::Conflict`] when `options.if_match` no longer holds; store errors otherwise.
    pub async fn get(&self, key: &str, options: ReadOptions) -> Result<(Head, Bytes)> {
        self.retry(|| self.io.get(key, options.clone())).await
    }

    /// An object's bytes, or `None` when it does not exist.
    ///
    /// # Errors
    /// Store errors other than a missing object.
    pub async fn get_if_exists(&self, key: &str) -> Result<Option<(Head, Bytes)>> {
        match self.get(key, ReadOptions::default()).await {
            Ok(got) => Ok(Some(got)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes an object unconditionally, with tags and attributes where the store takes them
    /// (test fixtures, manifests).
    ///
    /// # Errors
    /// Store errors naming the key.
    pub async fn put(
        &self,
        key: &str,
        data: Bytes,
        tags: &[(String, String)],
        attributes: Attributes,
    ) -> Result<Written> {
        self.write(
            key,
            data,
            WriteOptions {
                condition: Condition::None,
                tags: tags.to_vec(),
                attributes,
                encryption: None,
            },
        )
        .await
    }

    /// Writes an object in one request under `options`' condition; tags and attributes the
    /// store cannot keep are left out.
    ///
    /// # Errors
    /// [`Error::Conflict`] when an `If-Match` fails, [`Error::Store`] with `AlreadyExists` when
    /// a create finds the key taken, store errors otherwise.
    pub async fn write(&self, key: &str, data: Bytes, mut options: WriteOptions) -> Result<Written> {
        if !self.capabilities.tags {
            options.tags.clear();
        }
        if !self.capabilities.user_metadata {
            options.attributes = Attributes::new();
        }
        self.retry_write(key, data.into(), &options).await
    }

    /// One write of a payload built from several buffers, without concatenating them.
    pub(crate) async fn retry_write(
        &self,
        key: &str,
        data: object_store::PutPayload,
        options: &WriteOptions,
    ) -> Result<Written> {
        self.retry(|| self.io.put(key, data.clone(), options.clone())).await
    }

    /// Deletes an object; a missing one is not an error.
    ///
    /// # Errors
    /// Store errors naming the key.
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.retry(|| self.io.delete(key)).await
    }

    /// Every version of the objects under `prefix`.
    ///
    /// # Errors
    /// [`Error::Config`] where the store keeps no versions, store errors otherwise.
    pub async fn list_versions(&self, prefix: &str) -> Result<Vec<ObjectVersion>> {
        self.retry(|| self.io.list_versions(prefix)).await
    }

    /// Whether the store keeps earlier versions of objects now.
    ///
    /// # Errors
    /// Store errors.
    pub async fn versioning_enabled(&self) -> Result<bool> {
        if !self.capabilities.versions {
            return Ok(false);
        }
        self.retry(|| self.io.versioning_enabled()).await
    }

    pub(crate) async fn create_multipart(&self, key: &str, options: &WriteOptions) -> Result<String> {
        self.retry(|| self.io.create_multipart(key, options)).await
    }

    pub(crate) async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        index: usize,
        data: object_store::PutPayload,
    ) -> Result<String> {
        self.retry(|| self.io.upload_part(key, upload_id, index, data.clone()))
            .await
    }

    pub(crate) async fn upload_part_copy(
        &self,
        key: &str,
        upload_id: &str,
        index: usize,
        source: &CopySource,
    ) -> Result<String> {
        self.retry(|| self.io.upload_part_copy(key, upload_id, index, source))
            .await
    }

    /// Completed once, not retried: a repeat after a lost answer would fail its own condition.
    pub(crate) async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[String],
        condition: &Condition,
    ) -> Result<Written> {
        self.io.complete_multipart(key, upload_id, parts, condition).await
    }

    /// Retried: an abort that fails transiently would leave an open upload behind.
    pub(crate) async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()> {
        self.retry(|| self.io.abort_multipart(key, upload_id)).await
    }
}

/// The value of a user metadata entry (`x-amz-meta-<name>` on S3).
pub fn metadata<'a>(attributes: &'a Attributes, name: &str) -> Option<&'a str> {
    attributes
        .get(&Attribute::Metadata(name.to_string().into()))
        .map(|v| v.as_ref())
}

/// Attributes holding one user metadata entry (`x-amz-meta-<name>` on S3).
pub fn user_metadata(pairs: &[(&str, &str)]) -> Attributes {
    let mut attributes = Attributes::new();
    for (k, v) in pairs {
        attributes.insert(Attribute::Metadata(k.to_string().into()), v.to_string().into());
    }
    attributes
}

/// Checks tags against S3's limits (10 tags, keys up to 128 and values up to 256 characters).
///
/// # Errors
/// [`Error::Limit`] naming the key and the limit.
pub fn check_tag_limits(key: &str, tags: &[(String, String)]) -> Result<()> {
    let limit = |message: String| {
        Err(Error::Limit {
            key: key.to_string(),
            message,
        })
    };
    if tags.len() > S3_MAX_TAGS {
        return limit(format!(
            "writing the version tag would give the object {} tags; S3 allows {S3_MAX_TAGS}",
            tags.len()
        ));
    }
    for (k, v) in tags {
        if k.chars().count() > S3_MAX_TAG_KEY {
            return limit(format!("tag key {k:?} is longer than S3's {S3_MAX_TAG_KEY} characters"));
        }
        if v.chars().count() > S3_MAX_TAG_VALUE {
            return limit(format!(
                "value of tag {k:?} is longer than S3's {S3_MAX_TAG_VALUE} characters"
            ));
        }
    }
    Ok(())
}

/// The bucket a store URL names (its host).
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

#[cfg(test)]
mod tests;
