//! The one I/O seam: every request pqmigrate sends to a store is a method of [`StoreIo`]. Each
//! backend implements it once; the rate limiter and the fault injector wrap it, so a limit or a
//! fault applies to listings, tags and multipart calls as much as to reads and writes.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use object_store::{Attributes, PutPayload};

use crate::error::{Error, Result};

/// One kind of request to a store, for limits, fault injection and counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Request {
    /// One page of a listing.
    List,
    /// The "directories" under a prefix.
    ListDirs,
    /// An object's metadata.
    Head,
    /// An object's bytes, or a range of them.
    Get,
    /// A whole object written in one request.
    Put,
    /// An object deleted.
    Delete,
    /// An object's tags read.
    GetTags,
    /// An object's tags replaced.
    PutTags,
    /// A multipart upload started.
    CreateMultipart,
    /// One part of a multipart upload.
    UploadPart,
    /// One part of a multipart upload copied server-side from a range of an existing object.
    UploadPartCopy,
    /// A multipart upload completed.
    CompleteMultipart,
    /// A multipart upload abandoned.
    AbortMultipart,
    /// The versions of objects listed.
    ListVersions,
    /// Whether the bucket keeps versions.
    GetVersioning,
    /// The store's clock read.
    Clock,
}

impl Request {
    /// Every kind of request.
    pub const ALL: [Request; 16] = [
        Request::List,
        Request::ListDirs,
        Request::Head,
        Request::Get,
        Request::Put,
        Request::Delete,
        Request::GetTags,
        Request::PutTags,
        Request::CreateMultipart,
        Request::UploadPart,
        Request::UploadPartCopy,
        Request::CompleteMultipart,
        Request::AbortMultipart,
        Request::ListVersions,
        Request::GetVersioning,
        Request::Clock,
    ];

    /// A short name for messages (`list`, `upload part`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Request::List => "list",
            Request::ListDirs => "list directories",
            Request::Head => "head",
            Request::Get => "get",
            Request::Put => "put",
            Request::Delete => "delete",
            Request::GetTags => "get tags",
            Request::PutTags => "put tags",
            Request::CreateMultipart => "create multipart upload",
            Request::UploadPart => "upload part",
            Request::UploadPartCopy => "upload part copy",
            Request::CompleteMultipart => "complete multipart upload",
            Request::AbortMultipart => "abort multipart upload",
            Request::ListVersions => "list versions",
            Request::GetVersioning => "get versioning",
            Request::Clock => "clock",
        }
    }

    /// Whether the request sends an object's body (where an upload can break off midway).
    pub fn sends_body(self) -> bool {
        matches!(self, Request::Put | Request::UploadPart)
    }
}

/// Requests seen, per kind; shared by a decorator and whoever watches it.
#[derive(Debug, Default)]
pub struct RequestCounts([AtomicU64; 16]);

impl RequestCounts {
    /// Counts one request.
    pub fn add(&self, request: Request) {
        self.0[request as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests of one kind seen so far.
    pub fn get(&self, request: Request) -> u64 {
        self.0[request as usize].load(Ordering::Relaxed)
    }

    /// Requests of every kind seen so far.
    pub fn total(&self) -> u64 {
        Request::ALL.iter().map(|r| self.get(*r)).sum()
    }
}

/// What a backend can do, so callers ask instead of matching on a kind of store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Objects carry tags (S3).
    pub tags: bool,
    /// Objects carry user metadata that round-trips.
    pub user_metadata: bool,
    /// Large outputs go out as multipart uploads; otherwise every write is one request.
    pub multipart: bool,
    /// The store keeps earlier versions of objects that can be listed and read (S3 with bucket
    /// versioning on, which [`StoreIo::versioning_enabled`] tells; local disk, which keeps each
    /// replaced file as a hard link).
    pub versions: bool,
    /// A part of a multipart upload can be copied from a range of an existing object without
    /// its bytes passing through this process ([`StoreIo::upload_part_copy`]: S3's
    /// `UploadPartCopy`, Azure's Put Block From URL, the kernel's `copy_file_range` on local
    /// disk).
    pub copy_parts: bool,
    /// The largest part copied in one request ([`crate::store::MAX_PART`] on S3, 4000 MiB on
    /// Azure); a larger region is copied as several parts.
    pub largest_copied_part: u64,
    /// Parts of a multipart upload may be sent in any order and at once (S3); otherwise they
    /// are sent one after the other, in order (local disk appends them to a staged file).
    pub parts_in_any_order: bool,
    /// How many ranged reads of one object are worth having in flight at once when a large
    /// region is read in windows (the default mode's check of copied chunks): 2 on local disk
    /// and in memory, where a read waits on nothing and the cores are the limit; 4 where each
    /// read waits on the network.
    pub reads_in_flight: usize,
}

/// A byte range of an existing object, pinned to the ETag (and version) it was read with, as the
/// source of a copied part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySource {
    /// The object copied from.
    pub key: String,
    /// Its ETag when read: the copy fails with [`crate::Error::Conflict`] if it changed.
    pub e_tag: String,
    /// Its version, where the store keeps versions.
    pub version_id: Option<String>,
    /// The bytes copied.
    pub range: std::ops::Range<u64>,
}

/// One object of a listing page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Object key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag, when the listing gives it.
    pub e_tag: Option<String>,
}

/// A page of a listing and the token of the next.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    /// Objects, in the order of the listing.
    pub objects: Vec<Listed>,
    /// Token of the next page; `None` on the last.
    pub next: Option<String>,
}

/// An object's metadata.
#[derive(Debug, Clone, Default)]
pub struct Head {
    /// ETag.
    pub e_tag: Option<String>,
    /// Version id, when the bucket is versioned.
    pub version_id: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// Last modified, as the server's clock says.
    pub last_modified: Option<chrono::DateTime<chrono::Utc>>,
    /// Content type, user metadata...
    pub attributes: Attributes,
    /// Server-side encryption, where the store reports it.
    pub encryption: Option<Encryption>,
}

/// How an object is encrypted at rest by the store (S3's `x-amz-server-side-encryption` and
/// its KMS key id), so a rewrite can encrypt the new version the same way.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Encryption {
    /// `AES256`, `aws:kms` or `aws:kms:dsse`.
    pub algorithm: String,
    /// The KMS key, for the KMS algorithms.
    pub kms_key_id: Option<String>,
}

/// Which bytes of which object a read wants.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// A byte range; the whole object when `None`.
    pub range: Option<Range<u64>>,
    /// Fail with [`crate::error::Error::Conflict`] unless the object still has this ETag.
    pub if_match: Option<String>,
    /// One version of the object; the current one when `None`.
    pub version_id: Option<String>,
}

/// The precondition of a write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Condition {
    /// Write whatever is there.
    #[default]
    None,
    /// Only if no object has the key (`If-None-Match: *`).
    Create,
    /// Only if the object still has this ETag (`If-Match`).
    IfMatch(String),
}

/// How an object is written.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// The precondition; for a multipart upload it applies at completion.
    pub condition: Condition,
    /// Tags written with the data, where the store has tags.
    pub tags: Vec<(String, String)>,
    /// Content type and user metadata written with the data.
    pub attributes: Attributes,
    /// Encrypt as this (the object's previous version's encryption); the store's own setting
    /// when `None`.
    pub encryption: Option<Encryption>,
}

/// The result of a successful write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// New ETag.
    pub e_tag: Option<String>,
    /// New version id, when the bucket is versioned.
    pub version_id: Option<String>,
}

/// One version of an object, from a version listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    /// Object key.
    pub key: String,
    /// Version id.
    pub version_id: String,
    /// Whether this is the current version.
    pub is_latest: bool,
    /// ETag of this version.
    pub e_tag: String,
    /// Whether this entry is a delete marker.
    pub delete_marker: bool,
}

/// Every request pqmigrate makes to a store. Errors name the key and the request; a failed
/// precondition is [`crate::error::Error::Conflict`] (or [`crate::error::Error::Store`] with
/// `AlreadyExists` for [`Condition::Create`]). A backend implements what it does; the defaults
/// are those of a store with no tags, no versions and one request a write, on this machine's
/// clock, and say [`crate::error::Error::Unsupported`] where that is asked of it.
///
/// Decorators implement every method and forward it (clippy's `missing_trait_methods` keeps
/// them so), so nothing reaches a backend around them.
#[async_trait]
pub trait StoreIo: fmt::Debug + Send + Sync + 'static {
    /// What the backend can do.
    fn capabilities(&self) -> Capabilities;

    /// One page of the keys starting with `prefix` (a raw string, not a directory).
    async fn list(&self, prefix: &str, page: Option<String>, max_keys: Option<usize>) -> Result<ListPage>;

    /// The keys of the "directories" directly under `prefix` (a directory), without the
    /// trailing `/`.
    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>>;

    /// An object's metadata, of one version when `version_id` is given.
    async fn head(&self, key: &str, version_id: Option<&str>) -> Result<Head>;

    /// An object's bytes (or a range) with its metadata.
    async fn get(&self, key: &str, options: ReadOptions) -> Result<(Head, Bytes)>;

    /// Writes a whole object in one request.
    async fn put(&self, key: &str, data: PutPayload, options: WriteOptions) -> Result<Written>;

    /// Deletes an object; a missing one is not an error.
    async fn delete(&self, key: &str) -> Result<()>;

    /// An object's tags (of one version when `version_id` is given); empty where the store
    /// has no tags (the default).
    async fn get_tags(&self, _key: &str, _version_id: Option<&str>) -> Result<Vec<(String, String)>> {
        Ok(Vec::new())
    }

    /// Replaces the tags of an object (of one version when `version_id` is given).
    /// The default: the store keeps no tags.
    async fn put_tags(&self, key: &str, _version_id: Option<&str>, _tags: &[(String, String)]) -> Result<()> {
        Err(no_tags(key))
    }

    /// Starts a multipart upload carrying `options`' tags and attributes; returns its id. The
    /// condition is checked at [`StoreIo::complete_multipart`].
    /// The default: every write is one request.
    async fn create_multipart(&self, key: &str, _options: &WriteOptions) -> Result<String> {
        Err(no_multipart(key))
    }

    /// Sends part `index` (0-based); returns the part's ETag.
    async fn upload_part(&self, key: &str, _upload_id: &str, _index: usize, _data: PutPayload) -> Result<String> {
        Err(no_multipart(key))
    }

    /// Sends part `index` (0-based) as a copy of `source`'s range, pinned to its ETag (and
    /// version); returns the part's ETag. Parts are copied and uploaded in index order.
    async fn upload_part_copy(
        &self,
        key: &str,
        _upload_id: &str,
        _index: usize,
        _source: &CopySource,
    ) -> Result<String> {
        Err(no_multipart(key))
    }

    /// Completes an upload from its parts' ETags, only if `condition` holds.
    async fn complete_multipart(
        &self,
        key: &str,
        _upload_id: &str,
        _parts: &[String],
        _condition: &Condition,
    ) -> Result<Written> {
        Err(no_multipart(key))
    }

    /// Abandons an upload; nothing of it becomes visible.
    async fn abort_multipart(&self, _key: &str, _upload_id: &str) -> Result<()> {
        Ok(())
    }

    /// Every version of the objects under `prefix`.
    /// The default: the store keeps no versions.
    async fn list_versions(&self, prefix: &str) -> Result<Vec<ObjectVersion>> {
        Err(no_versions(prefix))
    }

    /// Whether the store keeps earlier versions of objects now.
    async fn versioning_enabled(&self) -> Result<bool> {
        Ok(false)
    }

    /// The store's clock, which leases are judged by: a server's `Date` (S3, Azure), this
    /// machine's for a store on it (local disk, memory) or whose clock cannot be read (GCS).
    async fn server_time(&self) -> Result<chrono::DateTime<chrono::Utc>> {
        Ok(chrono::Utc::now())
    }
}

/// The error of a version request on a store that keeps no versions.
pub(crate) fn no_versions(key: &str) -> Error {
    Error::Unsupported {
        key: key.to_string(),
        what: "keep object versions",
        message: "earlier versions cannot be listed or read here".into(),
    }
}

/// The error of a multipart request on a store whose every write is one request.
pub(crate) fn no_multipart(key: &str) -> Error {
    Error::Unsupported {
        key: key.to_string(),
        what: "take a write in parts",
        message: "every write is one request".into(),
    }
}

/// The error of a tag request on a store without object tags.
pub(crate) fn no_tags(key: &str) -> Error {
    Error::Unsupported {
        key: key.to_string(),
        what: "keep object tags",
        message: "it has none".into(),
    }
}

/// A shared [`StoreIo`].
pub type SharedIo = Arc<dyn StoreIo>;
