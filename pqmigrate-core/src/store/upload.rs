//! The conditional write of a migrated object, streamed: one conditional PUT for small outputs,
//! or a multipart upload whose completion is conditional, so memory stays at a part or two
//! whatever the file size. Data, tags and metadata land together or not at all.

use bytes::Bytes;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    Attributes, MultipartUpload, ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, TagSet,
    UpdateVersion,
};

use super::retry::{retry_transient, transient_store_error};
use super::{INTERNAL_PREFIX, ObjectInfo, Store, StoreKind, Written, check_tag_limits, object_path, unique_suffix};
use crate::error::{Error, Result};

/// Outputs up to this size go out as one conditional PUT.
pub const DEFAULT_MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;
/// Part size of multipart uploads (S3 wants at least 5 MiB for all but the last).
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;

enum Multipart {
    /// S3: parts through `object_store`, completion signed with `If-Match`.
    S3 { id: String, parts: Vec<PartId> },
    /// Local disk: a staged file, checked and renamed at the end.
    Staged {
        upload: Box<dyn MultipartUpload>,
        staged: Path,
    },
}

/// A write of a new version of `previous.key`, conditional on its ETag.
pub struct ConditionalUpload {
    store: Store,
    key: String,
    e_tag: String,
    tags: Vec<(String, String)>,
    attributes: Attributes,
    /// Bytes not sent yet, as pushed: never concatenated, a part or the whole object is sent
    /// as a chain of them.
    pending: Vec<Bytes>,
    pending_len: usize,
    multipart: Option<Multipart>,
    threshold: usize,
    part_size: usize,
    bytes: u64,
}

impl std::fmt::Debug for ConditionalUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConditionalUpload")
            .field("key", &self.key)
            .field("bytes", &self.bytes)
            .field("multipart", &self.multipart.is_some())
            .finish_non_exhaustive()
    }
}

impl ConditionalUpload {
    /// Starts a write of `previous.key` conditional on `previous.e_tag`, carrying `tags` and
    /// `previous.attributes`.
    ///
    /// # Errors
    /// [`Error::Config`] when the store gave no ETag, [`Error::Limit`] for tags S3 would refuse.
    pub fn new(store: &Store, previous: &ObjectInfo, tags: &[(String, String)]) -> Result<Self> {
        let key = previous.key.clone();
        let e_tag = previous.e_tag.clone().ok_or_else(|| {
            Error::Config(format!(
                "{key}: the store gave no ETag, so a conditional write is impossible"
            ))
        })?;
        if store.has_tags() {
            check_tag_limits(&key, tags)?;
        }
        let attributes = if store.kind() == StoreKind::Local {
            Attributes::new()
        } else {
            previous.attributes.clone()
        };
        Ok(Self {
            store: store.clone(),
            key,
            e_tag,
            tags: if store.has_tags() { tags.to_vec() } else { Vec::new() },
            attributes,
            pending: Vec::new(),
            pending_len: 0,
            multipart: None,
            threshold: store.multipart_threshold,
            part_size: store.part_size.max(5 * 1024 * 1024),
            bytes: 0,
        })
    }

    fn conflict(&self) -> Error {
        Error::Conflict {
            key: self.key.clone(),
            expected: self.e_tag.clone(),
        }
    }

    fn tag_set(&self) -> TagSet {
        let mut set = TagSet::default();
        for (k, v) in &self.tags {
            set.push(k, v);
        }
        set
    }

    /// Adds bytes of the new object; parts go out as soon as there are enough.
    ///
    /// # Errors
    /// [`Error::Store`] when starting the upload or sending a part fails.
    pub async fn push(&mut self, data: Bytes) -> Result<()> {
        self.bytes += data.len() as u64;
        self.pending_len += data.len();
        self.pending.push(data);
        if self.multipart.is_none() && self.pending_len > self.threshold && self.store.kind() != StoreKind::Memory {
            self.start().await?;
        }
        if self.multipart.is_some() && self.pending_len >= self.part_size {
            // A part is what has gathered: at least `part_size`, at most one push more. S3 only
            // asks that every part but the last be at least 5 MiB.
            let part = self.take_pending();
            self.send_part(part).await?;
        }
        Ok(())
    }

    async fn start(&mut self) -> Result<()> {
        let path = object_path(&self.key)?;
        self.multipart = Some(match (self.store.kind(), &self.store.paged) {
            (StoreKind::S3, Some(s3)) => {
                let options = PutMultipartOptions {
                    tags: self.tag_set(),
                    attributes: self.attributes.clone(),
                    ..PutMultipartOptions::default()
                };
                let id = retry_transient(self.store.retry_counter(), transient_store_error, || {
                    s3.create_multipart_opts(&path, options.clone())
                })
                .await
                .map_err(|e| Error::store(&self.key, "create multipart upload", e))?;
                Multipart::S3 { id, parts: Vec::new() }
            }
            _ => {
                let staged = staging_path(&self.key)?;
                let upload = self
                    .store
                    .inner
                    .put_multipart(&staged)
                    .await
                    .map_err(|e| Error::store(&self.key, "put (staging)", e))?;
                Multipart::Staged { upload, staged }
            }
        });
        Ok(())
    }

    /// Everything pending, as one payload of the pushed buffers (no copy).
    fn take_pending(&mut self) -> PutPayload {
        self.pending_len = 0;
        std::mem::take(&mut self.pending).into_iter().collect()
    }

    async fn send_part(&mut self, payload: PutPayload) -> Result<()> {
        let path = object_path(&self.key)?;
        match (&mut self.multipart, &self.store.paged) {
            (Some(Multipart::S3 { id, parts }), Some(s3)) => {
                let index = parts.len();
                let part = retry_transient(self.store.retry_counter(), transient_store_error, || {
                    s3.put_part(&path, id, index, payload.clone())
                })
                .await
                .map_err(|e| Error::store(&self.key, "upload part", e))?;
                parts.push(part);
            }
            (Some(Multipart::Staged { upload, .. }), _) => {
                upload
                    .put_part(payload)
                    .await
                    .map_err(|e| Error::store(&self.key, "put (staging)", e))?;
            }
            _ => unreachable!("parts are only sent once a multipart upload started"),
        }
        Ok(())
    }

    /// The most bytes that may go out as one PUT, gathered in memory first; `None` when
    /// everything does (the in-memory store). A writer that fills buffers of this size hands
    /// over the whole object without it ever being concatenated.
    pub fn whole_object_limit(&self) -> Option<usize> {
        (self.store.kind() != StoreKind::Memory).then_some(self.threshold)
    }

    /// Bytes pushed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Finishes the write: the new object appears, with its tags and metadata, only if the old
    /// one still has the ETag it was read with.
    ///
    /// # Errors
    /// [`Error::Conflict`] when it changed (nothing is written), store errors otherwise. The
    /// upload is aborted on every error.
    pub async fn finish(mut self) -> Result<Written> {
        let result = self.complete().await;
        if result.is_err() {
            self.abort().await;
        }
        result
    }

    async fn complete(&mut self) -> Result<Written> {
        let path = object_path(&self.key)?;
        if self.multipart.is_none() {
            return self.put_whole(&path).await;
        }
        if !self.pending.is_empty() {
            let last = self.take_pending();
            self.send_part(last).await?;
        }
        match self.multipart.take() {
            Some(Multipart::S3 { id, parts }) => {
                let api = self.store.s3_api().expect("S3 stores have the signed client");
                let e_tags: Vec<String> = parts.iter().map(|p| p.content_id.clone()).collect();
                let answer = api
                    .complete_multipart_if_match(&self.key, &id, &e_tags, &self.e_tag)
                    .await;
                if answer.is_err() {
                    self.multipart = Some(Multipart::S3 { id, parts });
                }
                let (e_tag, version_id) = answer?;
                Ok(Written { e_tag, version_id })
            }
            Some(Multipart::Staged { mut upload, staged }) => {
                upload
                    .complete()
                    .await
                    .map_err(|e| Error::store(&self.key, "put (staging)", e))?;
                self.rename_if_unchanged(&staged, &path).await
            }
            None => unreachable!("checked above"),
        }
    }

    async fn put_whole(&mut self, path: &Path) -> Result<Written> {
        let payload = self.take_pending();
        match self.store.kind() {
            StoreKind::S3 | StoreKind::Memory => {
                let options = PutOptions {
                    mode: PutMode::Update(UpdateVersion {
                        e_tag: Some(self.e_tag.clone()),
                        version: None,
                    }),
                    tags: self.tag_set(),
                    attributes: self.attributes.clone(),
                    ..PutOptions::default()
                };
                let put = || self.store.inner.put_opts(path, payload.clone(), options.clone());
                match retry_transient(self.store.retry_counter(), transient_store_error, put).await {
                    Ok(r) => Ok(Written {
                        e_tag: r.e_tag,
                        version_id: r.version,
                    }),
                    Err(object_store::Error::Precondition { .. }) => Err(self.conflict()),
                    Err(e) => Err(Error::store(&self.key, "put", e)),
                }
            }
            StoreKind::Local => {
                // The filesystem has no conditional write: stage, re-check the ETag, then
                // rename, which replaces the file atomically.
                let staged = staging_path(&self.key)?;
                self.store
                    .inner
                    .put(&staged, payload)
                    .await
                    .map_err(|e| Error::store(&self.key, "put (staging)", e))?;
                self.rename_if_unchanged(&staged, path).await
            }
        }
    }

    async fn rename_if_unchanged(&mut self, staged: &Path, path: &Path) -> Result<Written> {
        let store = self.store.inner.clone();
        let current = store.head(path).await;
        let unchanged = matches!(&current, Ok(meta) if meta.e_tag.as_deref() == Some(self.e_tag.as_str()));
        if !unchanged {
            let _ = store.delete(staged).await;
            return match current {
                Ok(_) => Err(self.conflict()),
                Err(e) => Err(Error::store(&self.key, "head", e)),
            };
        }
        if let Err(e) = store.rename(staged, path).await {
            let _ = store.delete(staged).await;
            return Err(Error::store(&self.key, "rename", e));
        }
        let meta = store.head(path).await.map_err(|e| Error::store(&self.key, "head", e))?;
        Ok(Written {
            e_tag: meta.e_tag,
            version_id: meta.version,
        })
    }

    /// Abandons the write; nothing becomes visible. Best effort: a failure to abort is logged.
    pub async fn abort(&mut self) {
        let Ok(path) = object_path(&self.key) else {
            return;
        };
        match (self.multipart.take(), &self.store.paged) {
            (Some(Multipart::S3 { id, .. }), Some(s3)) => {
                if let Err(e) = s3.abort_multipart(&path, &id).await {
                    tracing::warn!("{}: aborting multipart upload {id} failed: {e}", self.key);
                }
            }
            (Some(Multipart::Staged { mut upload, staged }), _) => {
                let _ = upload.abort().await;
                let _ = self.store.inner.delete(&staged).await;
            }
            _ => {}
        }
    }
}

impl Drop for ConditionalUpload {
    /// An upload dropped mid-way (a timeout, a cancelled task) is aborted in the background so
    /// no orphaned multipart upload is left behind.
    fn drop(&mut self) {
        if self.multipart.is_none() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut orphan = ConditionalUpload {
            store: self.store.clone(),
            key: self.key.clone(),
            e_tag: self.e_tag.clone(),
            tags: Vec::new(),
            attributes: Attributes::new(),
            pending: Vec::new(),
            pending_len: 0,
            multipart: self.multipart.take(),
            threshold: 0,
            part_size: 0,
            bytes: 0,
        };
        runtime.spawn(async move { orphan.abort().await });
    }
}

fn staging_path(key: &str) -> Result<Path> {
    object_path(&format!("{INTERNAL_PREFIX}staging/{key}.{}", unique_suffix()))
}
