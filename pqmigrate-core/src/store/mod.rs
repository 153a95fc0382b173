//! The object store a data set lives in, with what it can do (tags, conditional writes,
//! user metadata) and the conditional, versioned write the migration relies on.

mod reader;
mod retry;
mod s3api;
mod upload;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::client::{HttpConnector, ReqwestConnector};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, ClientOptions, GetOptions, ObjectMeta, ObjectStore, ObjectStoreExt, PutOptions, PutPayload,
    RetryConfig, TagSet,
};

pub use reader::ObjectReader;
pub(crate) use retry::{retry_transient, transient_store_error};
pub use s3api::{ObjectVersion, S3Api};
pub use upload::{ConditionalUpload, DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE};

use crate::error::{Error, Result};
use crate::scan::Candidate;

/// S3's limits on object tags, checked before every write.
pub const S3_MAX_TAGS: usize = 10;
/// Longest tag key S3 accepts.
pub const S3_MAX_TAG_KEY: usize = 128;
/// Longest tag value S3 accepts.
pub const S3_MAX_TAG_VALUE: usize = 256;

/// Prefix under which pqmigrate keeps its own objects (journals, leases, staging); never scanned.
pub const INTERNAL_PREFIX: &str = "_pqmigrate/";

/// The store path of a key, taken verbatim: keys are the store's own names, so they are never
/// re-encoded, and a key with an empty, `.` or `..` segment (which could step outside a local
/// root) is refused.
///
/// ```
/// assert_eq!(pqmigrate_core::object_path("a b/c%d#1.parquet").unwrap().as_ref(), "a b/c%d#1.parquet");
/// assert!(pqmigrate_core::object_path("../etc/passwd").is_err());
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

/// Which kind of store, and so which capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// S3 or an S3-compatible server: tags, conditional PUT, user metadata, versioning.
    S3,
    /// Local disk: no tags or user metadata; writes are staged and renamed.
    Local,
    /// In memory: conditional PUT and attributes, no tags. For tests.
    Memory,
}

/// Options for opening a store from a URL.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// S3 endpoint (`http://127.0.0.1:8333`); AWS when `None` (or `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// Region; `AWS_REGION`/`AWS_DEFAULT_REGION` or `us-east-1` when `None`.
    pub region: Option<String>,
    /// Retries done inside each store call before an error reaches the executor.
    pub max_retries: Option<usize>,
    /// Outputs larger than this are uploaded in parts (default 16 MiB).
    pub multipart_threshold: Option<usize>,
    /// Part size of multipart uploads (default 8 MiB, at least 5 MiB).
    pub part_size: Option<usize>,
}

/// An object store holding a data set, plus what it can do.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    kind: StoreKind,
    s3: Option<Arc<S3Api>>,
    paged: Option<Arc<AmazonS3>>,
    url: String,
    multipart_threshold: usize,
    part_size: usize,
    request_retries: Arc<AtomicU64>,
    limiter: Option<Arc<crate::RateLimiter>>,
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
}

/// The result of a successful write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// New ETag.
    pub e_tag: Option<String>,
    /// New version id, when the bucket is versioned.
    pub version_id: Option<String>,
}

impl Store {
    /// An in-memory store (tests, examples).
    pub fn memory() -> Self {
        Self::from_parts(Arc::new(InMemory::new()), StoreKind::Memory, None, "memory://".into())
    }

    /// A directory on local disk, created if missing.
    ///
    /// # Errors
    /// [`Error::Config`] when the directory cannot be created.
    pub fn local(root: impl AsRef<std::path::Path>) -> Result<Self> {
        let root = root.as_ref();
        std::fs::create_dir_all(root).map_err(|e| Error::Config(format!("cannot create {}: {e}", root.display())))?;
        let fs = LocalFileSystem::new_with_prefix(root)
            .map_err(|e| Error::Config(format!("cannot open {}: {e}", root.display())))?;
        Ok(Self::from_parts(
            Arc::new(fs),
            StoreKind::Local,
            None,
            format!("file://{}", root.display()),
        ))
    }

    /// An S3 bucket. Credentials and defaults come from the standard `AWS_*` environment variables;
    /// `options` override endpoint and region. A custom endpoint is addressed path-style.
    ///
    /// # Errors
    /// [`Error::Config`] when the client cannot be built.
    pub fn s3(bucket: &str, options: &StoreOptions) -> Result<Self> {
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(endpoint) = &options.endpoint {
            builder = builder.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
        }
        if let Some(region) = &options.region {
            builder = builder.with_region(region);
        }
        let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
        let allow_http = endpoint.as_deref().is_some_and(|e| e.starts_with("http://"));
        builder = builder.with_allow_http(allow_http).with_retry(RetryConfig {
            max_retries: options.max_retries.unwrap_or(3),
            retry_timeout: Duration::from_secs(60),
            ..RetryConfig::default()
        });
        let region = builder
            .get_config_value(&AmazonS3ConfigKey::Region)
            .unwrap_or_else(|| "us-east-1".to_string());
        let virtual_hosted = builder
            .get_config_value(&AmazonS3ConfigKey::VirtualHostedStyleRequest)
            .is_some_and(|v| v == "true");
        let s3 = builder
            .build()
            .map_err(|e| Error::Config(format!("S3 bucket {bucket}: {e}")))?;
        let bucket_url = match (&endpoint, virtual_hosted) {
            (Some(endpoint), false) => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
            (Some(endpoint), true) => endpoint.trim_end_matches('/').to_string(),
            (None, _) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        };
        let client = ReqwestConnector::default()
            .connect(&ClientOptions::new().with_allow_http(allow_http))
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        let api = S3Api::new(client, s3.credentials().clone(), bucket_url, bucket.to_string(), region);
        let s3 = Arc::new(s3);
        let mut store = Self::from_parts(s3.clone(), StoreKind::S3, Some(Arc::new(api)), format!("s3://{bucket}"));
        store.paged = Some(s3);
        Ok(store.with_upload_sizes(options))
    }

    /// Opens `s3://bucket/prefix`, `file:///dir/prefix` or `memory://`. Returns the store and
    /// the prefix inside it given by the URL's path.
    ///
    /// # Errors
    /// [`Error::Config`] for an unknown scheme or a bad URL.
    pub fn open(url: &str, options: &StoreOptions) -> Result<(Self, String)> {
        let parsed = url::Url::parse(url).map_err(|e| Error::Config(format!("bad store URL {url:?}: {e}")))?;
        match parsed.scheme() {
            "s3" => {
                let bucket = parsed
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| Error::Config(format!("{url}: no bucket")))?;
                let prefix = parsed.path().trim_start_matches('/').to_string();
                Ok((Self::s3(bucket, options)?, prefix))
            }
            "file" => {
                let path = parsed
                    .to_file_path()
                    .map_err(|()| Error::Config(format!("{url}: not a local path")))?;
                Ok((Self::local(path)?.with_upload_sizes(options), String::new()))
            }
            "memory" => Ok((Self::memory(), parsed.path().trim_start_matches('/').to_string())),
            other => Err(Error::Config(format!(
                "{url}: unsupported scheme {other:?} (use s3://, file:// or memory://)"
            ))),
        }
    }

    fn from_parts(inner: Arc<dyn ObjectStore>, kind: StoreKind, s3: Option<Arc<S3Api>>, url: String) -> Self {
        Self {
            inner,
            kind,
            s3,
            paged: None,
            url,
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_size: DEFAULT_PART_SIZE,
            request_retries: Arc::default(),
            limiter: None,
        }
    }

    /// Limits every request to this store (data, tags, listings) to `per_second`.
    pub fn with_rate_limit(self, per_second: f64) -> Self {
        let limiter = Arc::new(crate::RateLimiter::new(per_second));
        let mut store = self.map_inner(|inner| Arc::new(crate::RateLimitedStore::new(inner, limiter.clone())));
        store.limiter = Some(limiter);
        store
    }

    /// Applies the multipart threshold and part size of `options`.
    pub fn with_upload_sizes(mut self, options: &StoreOptions) -> Self {
        self.multipart_threshold = options.multipart_threshold.unwrap_or(DEFAULT_MULTIPART_THRESHOLD);
        self.part_size = options.part_size.unwrap_or(DEFAULT_PART_SIZE);
        self
    }

    /// Replaces the underlying `ObjectStore` (for example with a fault-injecting wrapper),
    /// keeping the kind and the signed S3 client.
    pub fn map_inner(self, f: impl FnOnce(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>) -> Self {
        Self {
            inner: f(self.inner),
            ..self
        }
    }

    /// The underlying `ObjectStore`.
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// The kind of store.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// The store's URL, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The signed S3 client, on S3 stores.
    pub fn s3_api(&self) -> Option<&S3Api> {
        self.s3.as_deref()
    }

    /// Lists the objects whose keys start with `prefix` (a raw string, not a directory), every
    /// page followed, `page_size` keys a request where the store takes one. Internal objects
    /// under [`INTERNAL_PREFIX`] are listed too; filtering is the caller's.
    pub fn list_prefix(&self, prefix: &str, page_size: Option<usize>) -> BoxStream<'static, Result<Candidate>> {
        let prefix = prefix.to_string();
        match &self.paged {
            Some(paged) => {
                let paged = paged.clone();
                let first = Some(None::<String>);
                stream::unfold(first, move |token| {
                    let paged = paged.clone();
                    let prefix = prefix.clone();
                    async move {
                        let token = token?;
                        let options = PaginatedListOptions {
                            page_token: token,
                            max_keys: page_size,
                            ..PaginatedListOptions::default()
                        };
                        let page = paged
                            .list_paginated(Some(&prefix).filter(|p| !p.is_empty()).map(|p| p.as_str()), options)
                            .await;
                        Some(match page {
                            Ok(page) => {
                                let next = page.page_token.map(Some);
                                let items: Vec<Result<Candidate>> =
                                    page.result.objects.into_iter().map(|m| Ok(candidate(m))).collect();
                                (stream::iter(items), next)
                            }
                            Err(e) => (stream::iter(vec![Err(Error::store(&prefix, "list", e))]), None),
                        })
                    }
                })
                .flatten()
                .boxed()
            }
            None => {
                // Path listing works on whole segments: list the prefix's directory and keep the keys
                // that start with the raw prefix.
                let dir = prefix.rfind('/').map(|i| &prefix[..i]).unwrap_or("");
                let dir = match (!dir.is_empty()).then(|| object_path(dir)).transpose() {
                    Ok(dir) => dir,
                    Err(e) => return stream::iter(vec![Err(e)]).boxed(),
                };
                let owned = prefix.clone();
                self.inner
                    .list(dir.as_ref())
                    .filter_map(move |item| {
                        let out = match item {
                            Ok(meta) if meta.location.as_ref().starts_with(owned.as_str()) => Some(Ok(candidate(meta))),
                            Ok(_) | Err(object_store::Error::NotFound { .. }) => None,
                            Err(e) => Some(Err(Error::store(&owned, "list", e))),
                        };
                        std::future::ready(out)
                    })
                    .boxed()
            }
        }
    }

    /// Requests repeated after a transient failure, since the store was opened (shared by its
    /// clones).
    pub fn request_retries(&self) -> u64 {
        self.request_retries.load(Ordering::Relaxed)
    }

    pub(crate) fn retry_counter(&self) -> &AtomicU64 {
        &self.request_retries
    }

    /// Whether objects carry tags here.
    pub fn has_tags(&self) -> bool {
        self.kind == StoreKind::S3
    }

    /// Reads an object's tags; `None` where the store has no tags.
    ///
    /// # Errors
    /// [`Error::S3Api`].
    pub async fn tags(&self, key: &str) -> Result<Option<Vec<(String, String)>>> {
        match &self.s3 {
            Some(api) => {
                let call = || async {
                    if let Some(limiter) = &self.limiter {
                        limiter.acquire().await;
                    }
                    api.get_tags(key).await
                };
                retry::retry_transient(&self.request_retries, Error::is_retryable, call)
                    .await
                    .map(Some)
            }
            None => Ok(None),
        }
    }

    /// The size of an object.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn head_size(&self, key: &str) -> Result<u64> {
        self.inner
            .head(&object_path(key)?)
            .await
            .map(|m| m.size)
            .map_err(|e| Error::store(key, "head", e))
    }

    /// Reads an object whole: its tags first, then content, ETag, version id and attributes in
    /// one GET.
    ///
    /// # Errors
    /// [`Error::Store`] or [`Error::S3Api`] naming the key.
    pub async fn read(&self, key: &str) -> Result<(ObjectInfo, Bytes)> {
        let tags = self.tags(key).await?;
        let path = object_path(key)?;
        let result = self
            .inner
            .get_opts(&path, GetOptions::default())
            .await
            .map_err(|e| Error::store(key, "get", e))?;
        let meta = result.meta.clone();
        let attributes = result.attributes.clone();
        let data = result.bytes().await.map_err(|e| Error::store(key, "get", e))?;
        Ok((
            ObjectInfo {
                key: key.to_string(),
                e_tag: meta.e_tag,
                version_id: meta.version,
                size: meta.size,
                attributes,
                tags,
            },
            data,
        ))
    }

    /// Writes `data` to `previous.key` only if the object still has `previous.e_tag`, with
    /// `tags` and `previous`'s attributes, in one request where the store allows it. Data, tags
    /// and attributes change together or not at all.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the object changed since it was read (nothing is written),
    /// [`Error::Limit`] for tags S3 would refuse, [`Error::Store`] for anything else.
    pub async fn write_if_unchanged(
        &self,
        previous: &ObjectInfo,
        data: Bytes,
        tags: &[(String, String)],
    ) -> Result<Written> {
        let mut upload = ConditionalUpload::new(self, previous, tags)?;
        upload.push(data).await?;
        upload.finish().await
    }

    /// What a migration needs to know before reading data: tags, then ETag, version id, size
    /// and attributes (one small request each).
    ///
    /// # Errors
    /// [`Error::Store`] or [`Error::S3Api`] naming the key.
    pub async fn head(&self, key: &str) -> Result<ObjectInfo> {
        let tags = self.tags(key).await?;
        let options = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        let path = object_path(key)?;
        let result = retry::retry_transient(&self.request_retries, retry::transient_store_error, || {
            self.inner.get_opts(&path, options.clone())
        })
        .await
        .map_err(|e| Error::store(key, "head", e))?;
        Ok(ObjectInfo {
            key: key.to_string(),
            e_tag: result.meta.e_tag,
            version_id: result.meta.version,
            size: result.meta.size,
            attributes: result.attributes,
            tags,
        })
    }

    /// Writes an object unconditionally, with tags and attributes where the store takes them
    /// (test fixtures, journals).
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn put(
        &self,
        key: &str,
        data: Bytes,
        tags: &[(String, String)],
        attributes: Attributes,
    ) -> Result<Written> {
        let mut tag_set = TagSet::default();
        if self.has_tags() {
            for (k, v) in tags {
                tag_set.push(k, v);
            }
        }
        let attributes = if self.kind == StoreKind::Local {
            Attributes::new()
        } else {
            attributes
        };
        let options = PutOptions {
            tags: tag_set,
            attributes,
            ..PutOptions::default()
        };
        let r = self
            .inner
            .put_opts(&object_path(key)?, PutPayload::from(data), options)
            .await
            .map_err(|e| Error::store(key, "put", e))?;
        Ok(Written {
            e_tag: r.e_tag,
            version_id: r.version,
        })
    }
}

fn candidate(meta: ObjectMeta) -> Candidate {
    Candidate {
        key: meta.location.to_string(),
        size: Some(meta.size),
        e_tag: meta.e_tag,
    }
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

fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{}-{nanos}-{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_limits_table() {
        let t = |n: usize| (0..n).map(|i| (format!("k{i}"), "v".to_string())).collect::<Vec<_>>();
        assert!(check_tag_limits("o", &t(10)).is_ok());
        let e = check_tag_limits("o", &t(11)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "o: writing the version tag would give the object 11 tags; S3 allows 10"
        );
        assert!(check_tag_limits("o", &[("k".repeat(128), "v".into())]).is_ok());
        assert!(check_tag_limits("o", &[("k".repeat(129), "v".into())]).is_err());
        assert!(check_tag_limits("o", &[("k".into(), "v".repeat(256))]).is_ok());
        assert!(check_tag_limits("o", &[("k".into(), "v".repeat(257))]).is_err());
    }

    #[test]
    fn open_parses_urls() {
        let (s, prefix) = Store::open("memory:///data/x", &StoreOptions::default()).unwrap();
        assert_eq!((s.kind(), prefix.as_str()), (StoreKind::Memory, "data/x"));
        let e = Store::open("ftp://x/y", &StoreOptions::default()).unwrap_err();
        assert!(e.to_string().contains("unsupported scheme \"ftp\""), "{e}");
        let (s, prefix) = Store::open(
            "s3://bucket/parquet/year=2019/",
            &StoreOptions {
                endpoint: Some("http://127.0.0.1:1".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((s.kind(), prefix.as_str()), (StoreKind::S3, "parquet/year=2019/"));
    }
}
