//! Storage: the [`Store`] facade a data set lives behind, over one I/O seam ([`StoreIo`]) that
//! each backend implements (S3, GCS, Azure Blob, local disk, memory) and that decorators wrap
//! (the rate limiter, the fault injector). Retries of single requests live here; what a backend can do is a
//! [`Capabilities`] value. Nothing here knows about scans, plans, journals or executors.

mod attributes;
#[cfg(feature = "azure")]
mod azure;
mod backoff;
mod decorate;
#[cfg(feature = "fault-injection")]
pub mod fault;
#[cfg(feature = "gcs")]
mod gcs;
mod io;
mod local;
mod memory;
mod open;
mod options;
mod plumbing;
mod ratelimit;
#[cfg(feature = "s3")]
pub(crate) mod s3;
#[cfg(test)]
mod tagged_memory;
#[cfg(any(feature = "s3", feature = "azure"))]
mod tagging;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::Attributes;
use object_store::path::Path;

pub use attributes::{S3_MAX_TAG_KEY, S3_MAX_TAG_VALUE, S3_MAX_TAGS, check_tag_limits, metadata, user_metadata};
pub use backoff::RetryPolicy;
pub(crate) use backoff::{REQUEST_ATTEMPTS, in_rounds, jitter_unit};
pub use decorate::{Decorated, Hook};
pub use io::{
    Capabilities, Condition, CopySource, Encryption, Head, ListPage, Listed, ObjectVersion, ReadOptions, Request,
    RequestCounts, SharedIo, StoreIo, WriteOptions, Written,
};
pub use object_store::Error as StoreError;
pub use options::StoreOptions;
pub use ratelimit::{RateLimit, RateLimiter};
#[cfg(feature = "s3")]
use s3::S3Api;

use crate::error::{Error, Result};

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
    #[cfg(feature = "s3")]
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

    /// Direct S3 calls for the tests' checks (read tags and versions, list open uploads), on S3
    /// stores. They do not pass through the seam's decorators; nothing in a run uses them.
    #[cfg(all(feature = "s3", feature = "test-support"))]
    pub fn s3_api(&self) -> Option<&S3Api> {
        self.s3.as_deref()
    }

    /// Creates the store's bucket if it does not exist, with versioning switched on when
    /// `versioned` (so runs in it can be rolled back): for a fresh bucket on a test or
    /// development server. Only S3 stores have a bucket to create.
    ///
    /// # Errors
    /// [`Error::Unsupported`] on other stores; the server's refusal on S3.
    pub async fn create_bucket(&self, versioned: bool) -> Result<()> {
        #[cfg(feature = "s3")]
        if let Some(api) = &self.s3 {
            api.create_bucket().await?;
            return if versioned {
                api.set_versioning(true).await
            } else {
                Ok(())
            };
        }
        let _ = versioned;
        Err(Error::Unsupported {
            key: self.url.clone(),
            what: "create buckets",
            message: "only S3 stores have a bucket to create".to_string(),
        })
    }

    /// The bucket of an S3 store (what an S3 Inventory manifest names), `None` for others.
    pub fn s3_bucket(&self) -> Option<&str> {
        #[cfg(feature = "s3")]
        return self.s3.as_deref().map(S3Api::bucket);
        #[cfg(not(feature = "s3"))]
        None
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

#[cfg(test)]
mod tests;
