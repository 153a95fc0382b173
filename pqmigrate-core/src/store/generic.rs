//! Local disk, memory, Google Cloud Storage and Azure Blob behind the seam, through
//! `object_store`. Memory, GCS and Azure take conditional writes natively, one request a write
//! (`store::cloud` opens the two clouds); only Azure has tags (its blob index tags, read and set
//! beside `object_store` in `store::azure_tags`).
//!
//! Local disk has no conditional write, so a conditional write there is staged under
//! `_pqmigrate/staging/`, made durable (fsync), and checked and renamed over the object under an
//! exclusive lock of the root (`_pqmigrate/local.lock`), so no two pqmigrate processes can
//! interleave a check and a rename. The file replaced is kept as a hard link under
//! `_pqmigrate/versions/` (`store::local_versions`), and user metadata lives in extended
//! attributes (`store::local_files`). A key whose path leads outside the root through a symbolic
//! link is refused.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    Attributes, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    UpdateVersion,
};

use super::azure_tags::AzureTags;
use super::convert::{self, conflict_or, put_mode};
use super::io::{
    Capabilities, Condition, CopySource, Head, ListPage, Listed, ObjectVersion, ReadOptions, StoreIo, WriteOptions,
    Written,
};
use super::local_files::{
    self, LOCK_FILE, blocking, durable_and_locked, local_e_tag, open_for_append, sync_folder_now,
};
use super::local_versions::{self, VERSIONS_PREFIX};
use super::{INTERNAL_PREFIX, object_path};
use crate::error::{Error, Result};

/// Keys a listing page holds when the caller sets no size.
const PAGE: usize = 1000;

/// Which store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// In memory: conditional PUT and attributes, one request per write.
    Memory,
    /// Local disk: writes staged and renamed.
    Local,
    /// Google Cloud Storage: conditional single PUTs (generation preconditions), custom
    /// metadata.
    Gcs,
    /// Azure Blob Storage: conditional single PUTs (`If-Match` on the ETag), metadata, whose
    /// names must be C# identifiers (see [`azure_name`]).
    Azure,
}

struct Staged {
    upload: Staging,
    staged: Path,
    attributes: Attributes,
}

/// Where an upload's parts go until it completes.
enum Staging {
    /// object_store's own multipart upload (in memory).
    Store(Box<dyn MultipartUpload>),
    /// Local disk: a staged file that parts are appended to in order, uploaded ones written,
    /// copied ones copied by the kernel (`copy_file_range`, a reflink where the file system
    /// shares extents).
    File(PathBuf),
}

/// An `object_store` store: memory, local disk (keeping replaced versions), GCS or Azure Blob
/// (with its blob index tags as tags).
pub(crate) struct ObjectStoreIo {
    inner: Arc<dyn ObjectStore>,
    flavor: Flavor,
    uploads: Mutex<HashMap<String, Staged>>,
    /// Local disk: the file system beneath, and its root (resolved).
    local: Option<(Arc<LocalFileSystem>, PathBuf)>,
    /// Local disk: whether its file system keeps user metadata (as extended attributes).
    local_metadata: bool,
    /// Azure: the blob index tags, read and set beside `object_store`.
    azure_tags: Option<AzureTags>,
}

impl std::fmt::Debug for ObjectStoreIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStoreIo")
            .field("inner", &self.inner)
            .field("flavor", &self.flavor)
            .finish_non_exhaustive()
    }
}

impl ObjectStoreIo {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>, flavor: Flavor) -> Self {
        Self {
            inner,
            flavor,
            uploads: Mutex::default(),
            local: None,
            local_metadata: false,
            azure_tags: None,
        }
    }

    /// Azure with its blob index tags: written with each blob, read and set by `tags`.
    pub(crate) fn with_azure_tags(mut self, tags: AzureTags) -> Self {
        self.azure_tags = Some(tags);
        self
    }

    /// Local disk under `root`.
    pub(crate) fn local(root: &std::path::Path) -> Result<Self> {
        let root =
            std::fs::canonicalize(root).map_err(|e| Error::Config(format!("cannot open {}: {e}", root.display())))?;
        let fs = Arc::new(
            LocalFileSystem::new_with_prefix(&root)
                .map_err(|e| Error::Config(format!("cannot open {}: {e}", root.display())))?,
        );
        Ok(Self {
            local_metadata: local_files::metadata_supported(&root),
            local: Some((fs.clone(), root)),
            ..Self::new(fs, Flavor::Local)
        })
    }

    /// Refuses a key whose path on local disk leads outside the root through a symbolic link
    /// (of the object itself or of a folder on the way).
    fn inside_root(&self, key: &str) -> Result<()> {
        let Some((fs, root)) = &self.local else {
            return Ok(());
        };
        let path = fs
            .path_to_filesystem(&object_path(key)?)
            .map_err(|e| Error::store(key, "resolve path", e))?;
        if path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(Error::InvalidKey {
                key: key.to_string(),
                message: "it is a symbolic link; pqmigrate reads and replaces files, never links (rewriting it would replace the link with a file)".into(),
            });
        }
        let Some(existing) = path.ancestors().find(|p| p.symlink_metadata().is_ok()) else {
            return Ok(());
        };
        match std::fs::canonicalize(existing) {
            Ok(resolved) if resolved.starts_with(root) => Ok(()),
            Ok(resolved) => Err(Error::InvalidKey {
                key: key.to_string(),
                message: format!(
                    "its path leads outside the store's root through a symbolic link (to {})",
                    resolved.display()
                ),
            }),
            Err(e) => Err(Error::InvalidKey {
                key: key.to_string(),
                message: format!("its path cannot be resolved: {e}"),
            }),
        }
    }

    /// An object's metadata as the rest of the engine knows it: Azure's metadata names turned
    /// back; on GCS the generation as the "ETag" that conditions and pinned reads use (GCS
    /// preconditions are on the generation, and it names one content exactly).
    fn named_back(&self, mut head: Head) -> Head {
        match self.flavor {
            Flavor::Azure => head.attributes = renamed(&head.attributes, engine_name),
            Flavor::Gcs => head.e_tag = head.version_id.take().or(head.e_tag),
            Flavor::Local => head.version_id = head.e_tag.as_deref().map(local_versions::version_of),
            Flavor::Memory => {}
        }
        head
    }

    /// Version `version_id` of `key` on local disk: the current file if it is that version
    /// (read pinned to it), else the kept one.
    async fn get_local_version(&self, key: &str, version_id: &str, options: ReadOptions) -> Result<(Head, Bytes)> {
        let kept = local_versions::kept_key(key, version_id)?;
        let pinned = ReadOptions {
            if_match: Some(local_versions::e_tag_of(version_id)),
            version_id: None,
            ..options.clone()
        };
        match convert::get(self.inner.as_ref(), key, pinned).await {
            Ok((head, bytes)) => return Ok((self.named_back(head), bytes)),
            Err(Error::Conflict { .. }) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let options = ReadOptions {
            version_id: None,
            ..options
        };
        let (head, bytes) = convert::get(self.inner.as_ref(), &kept, options).await?;
        Ok((self.named_back(head), bytes))
    }

    /// The current head of `key`: on local disk read from the file itself, with its user
    /// metadata.
    async fn head_now(&self, key: &str) -> Result<Head> {
        match &self.local {
            Some((fs, _)) => {
                let file = fs
                    .path_to_filesystem(&object_path(key)?)
                    .map_err(|e| Error::store(key, "resolve path", e))?;
                local_files::head(key, &file, self.local_metadata).await
            }
            None => convert::head(self.inner.as_ref(), key, None).await,
        }
    }

    /// Whether a write to local disk carries user metadata it can keep.
    fn keeps_metadata(&self, attributes: &Attributes) -> bool {
        self.local_metadata
            && attributes
                .iter()
                .any(|(a, _)| matches!(a, object_store::Attribute::Metadata(_)))
    }

    fn no_versions(key: &str) -> Error {
        Error::Config(format!("{key}: this store keeps no object versions"))
    }

    /// Puts the staged object at `key` if `condition` holds, and removes the staged copy.
    async fn replace(
        &self,
        staged: &Path,
        key: &str,
        condition: &Condition,
        attributes: Attributes,
    ) -> Result<Written> {
        let path = object_path(key)?;
        let result = match self.flavor {
            Flavor::Memory | Flavor::Gcs | Flavor::Azure => {
                let data = self
                    .inner
                    .get(staged)
                    .await
                    .map_err(|e| Error::store(key, "get (staging)", e))?
                    .bytes()
                    .await
                    .map_err(|e| Error::store(key, "get (staging)", e))?;
                let options = WriteOptions {
                    condition: condition.clone(),
                    attributes,
                    ..WriteOptions::default()
                };
                self.put_native(key, data.into(), options).await
            }
            Flavor::Local => self.rename_if(staged, key, &path, condition, attributes).await,
        };
        let _ = self.inner.delete(staged).await;
        result
    }

    /// Renames the staged file over `key` if `condition` holds: the staged file is made durable
    /// first, and the check and the rename happen under the root's exclusive lock, then the
    /// folder is made durable.
    async fn rename_if(
        &self,
        staged: &Path,
        key: &str,
        path: &Path,
        condition: &Condition,
        attributes: Attributes,
    ) -> Result<Written> {
        self.inside_root(key)?;
        let files = match &self.local {
            Some((fs, root)) => Some((
                fs.path_to_filesystem(staged)
                    .map_err(|e| Error::store(key, "resolve path", e))?,
                fs.path_to_filesystem(path)
                    .map_err(|e| Error::store(key, "resolve path", e))?,
                root.join(LOCK_FILE),
            )),
            None => None,
        };
        let lock = match &files {
            Some((staged_file, _, lock_file)) => {
                let metadata = self.keeps_metadata(&attributes).then_some(attributes);
                Some(durable_and_locked(key, staged_file, lock_file, metadata).await?)
            }
            None => None,
        };
        let found = match self.inner.head(path).await {
            Ok(meta) => Some(meta),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => return Err(Error::store(key, "head", e)),
        };
        match (condition, &found) {
            (Condition::None, _) | (Condition::Create, None) => {}
            (Condition::Create, Some(_)) => return Err(already_exists(key)),
            (Condition::IfMatch(e_tag), Some(meta)) if meta.e_tag.as_deref() == Some(e_tag.as_str()) => {}
            (Condition::IfMatch(e_tag), _) => {
                return Err(Error::Conflict {
                    key: key.to_string(),
                    expected: e_tag.clone(),
                });
            }
        }
        if let (Some(ObjectMeta { e_tag: Some(e_tag), .. }), Some((_, target, _))) = (&found, &files) {
            self.keep_replaced(key, e_tag, target).await?;
        }
        match (condition, &files) {
            (Condition::Create, Some((staged_file, target, _))) => create_by_link(key, staged_file, target).await?,
            _ => {
                self.inner
                    .rename(staged, path)
                    .await
                    .map_err(|e| Error::store(key, "rename", e))?;
                if let Some((_, target, _)) = &files {
                    let target = target.clone();
                    blocking(key, move || sync_folder_now(&target).map_err(|e| ("fsync (folder)", e))).await?;
                }
            }
        }
        let meta = self.inner.head(path).await.map_err(|e| Error::store(key, "head", e))?;
        drop(lock);
        Ok(Written {
            version_id: meta.e_tag.as_deref().map(local_versions::version_of),
            e_tag: meta.e_tag,
        })
    }

    /// Keeps the file at `target` (the object `key`, at `e_tag`) as a version before it is
    /// replaced: a hard link under `_pqmigrate/versions/`, for data objects.
    async fn keep_replaced(&self, key: &str, e_tag: &str, target: &std::path::Path) -> Result<()> {
        let Some((fs, _)) = &self.local else {
            return Ok(());
        };
        if !local_versions::keeps_versions(key) {
            return Ok(());
        }
        let kept_key = local_versions::kept_key(key, &local_versions::version_of(e_tag))?;
        let kept = fs
            .path_to_filesystem(&object_path(&kept_key)?)
            .map_err(|e| Error::store(key, "resolve path", e))?;
        let target = target.to_path_buf();
        let linked = blocking(key, move || {
            local_versions::keep(&target, &kept).map_err(|e| ("keep the replaced version", e))
        })
        .await?;
        if !linked {
            tracing::warn!("{key}: the file system takes no hard links, so the replaced version is not kept");
        }
        Ok(())
    }

    async fn put_native(&self, key: &str, data: PutPayload, options: WriteOptions) -> Result<Written> {
        let attributes = match self.flavor {
            Flavor::Memory | Flavor::Gcs => options.attributes,
            Flavor::Azure => renamed(&options.attributes, azure_name),
            Flavor::Local => Attributes::new(),
        };
        let mode = match (self.flavor, put_mode(key, &options.condition)?) {
            // What is not a generation can never be this object's generation.
            (Flavor::Gcs, PutMode::Update(UpdateVersion { e_tag: Some(e_tag), .. }))
                if !e_tag.bytes().all(|b| b.is_ascii_digit()) =>
            {
                return Err(Error::Conflict {
                    key: key.to_string(),
                    expected: e_tag,
                });
            }
            (Flavor::Gcs, PutMode::Update(UpdateVersion { e_tag, .. })) => PutMode::Update(UpdateVersion {
                e_tag: None,
                version: e_tag,
            }),
            (_, mode) => mode,
        };
        let mut put = PutOptions {
            mode,
            attributes,
            ..PutOptions::default()
        };
        if self.azure_tags.is_some() {
            for (name, value) in &options.tags {
                put.tags.push(name, value);
            }
        }
        let result = self
            .inner
            .put_opts(&object_path(key)?, data, put)
            .await
            .map_err(|e| conflict_or(key, &options.condition, "put", e))?;
        Ok(match self.flavor {
            Flavor::Gcs => Written {
                e_tag: result.version.or(result.e_tag),
                version_id: None,
            },
            _ => Written {
                e_tag: result.e_tag,
                version_id: result.version,
            },
        })
    }
}

#[async_trait]
impl StoreIo for ObjectStoreIo {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            tags: self.azure_tags.is_some(),
            user_metadata: self.flavor != Flavor::Local || self.local_metadata,
            multipart: self.flavor == Flavor::Local,
            versions: self.flavor == Flavor::Local,
            copy_parts: self.flavor == Flavor::Local,
            parts_in_any_order: false,
        }
    }

    /// Path listings work on whole segments: the prefix's directory is listed and the keys
    /// that start with the raw prefix kept. A page is the `max_keys` smallest keys after the
    /// token, whatever order the store lists in.
    async fn list(&self, prefix: &str, page: Option<String>, max_keys: Option<usize>) -> Result<ListPage> {
        let size = max_keys.unwrap_or(PAGE).max(1);
        let dir = prefix.rfind('/').map(|i| &prefix[..i]).unwrap_or("");
        let dir = (!dir.is_empty()).then(|| object_path(dir)).transpose()?;
        let mut listing = self.inner.list(dir.as_ref());
        let mut smallest: BTreeSet<(String, u64, Option<String>)> = BTreeSet::new();
        let mut more = false;
        while let Some(item) = listing.next().await {
            let meta: ObjectMeta = match item {
                Ok(meta) => meta,
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(Error::store(prefix, "list", e)),
            };
            let key = meta.location.to_string();
            if !key.starts_with(prefix) || page.as_deref().is_some_and(|after| key.as_str() <= after) {
                continue;
            }
            let e_tag = match self.flavor {
                Flavor::Gcs => meta.version.or(meta.e_tag),
                _ => meta.e_tag,
            };
            smallest.insert((key, meta.size, e_tag));
            if smallest.len() > size {
                smallest.pop_last();
                more = true;
            }
        }
        let objects: Vec<Listed> = smallest
            .into_iter()
            .map(|(key, size, e_tag)| Listed { key, size, e_tag })
            .collect();
        let next = more.then(|| objects.last().map(|l| l.key.clone())).flatten();
        Ok(ListPage { objects, next })
    }

    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        convert::list_dirs(self.inner.as_ref(), prefix).await
    }

    async fn head(&self, key: &str, version_id: Option<&str>) -> Result<Head> {
        self.inside_root(key)?;
        let Some(version_id) = version_id else {
            let head = self.head_now(key).await?;
            return Ok(self.named_back(head));
        };
        if self.flavor != Flavor::Local {
            return Err(Self::no_versions(key));
        }
        let kept = local_versions::kept_key(key, version_id)?;
        match self.head_now(key).await {
            Ok(head) if head.e_tag.as_deref() == Some(local_versions::e_tag_of(version_id).as_str()) => {
                return Ok(self.named_back(head));
            }
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let head = self.head_now(&kept).await?;
        Ok(self.named_back(head))
    }

    async fn get(&self, key: &str, options: ReadOptions) -> Result<(Head, Bytes)> {
        self.inside_root(key)?;
        if let Some(version_id) = options.version_id.clone() {
            if self.flavor != Flavor::Local {
                return Err(Self::no_versions(key));
            }
            return self.get_local_version(key, &version_id, options).await;
        }
        let mut options = options;
        if self.flavor == Flavor::Gcs {
            // A read pinned to what was seen is pinned to its generation.
            options.version_id = options.if_match.take();
        }
        let pinned = options.if_match.clone();
        let (head, bytes) = convert::get(self.inner.as_ref(), key, options).await?;
        if let (Some(expected), Flavor::Local) = (pinned, self.flavor) {
            // A file written over in place while it was read: its bytes may mix two contents.
            let now = self.head_now(key).await?;
            if now.e_tag.as_deref() != Some(expected.as_str()) {
                return Err(Error::Conflict {
                    key: key.to_string(),
                    expected,
                });
            }
        }
        Ok((self.named_back(head), bytes))
    }

    async fn put(&self, key: &str, data: PutPayload, options: WriteOptions) -> Result<Written> {
        self.inside_root(key)?;
        if self.flavor != Flavor::Local {
            return self.put_native(key, data, options).await;
        }
        if matches!(options.condition, Condition::None | Condition::Create) && !self.keeps_metadata(&options.attributes)
        {
            // Made durable like every other local write: the journal counts on it.
            let written = self.put_native(key, data, options).await?;
            if let Some((fs, _)) = &self.local {
                let file = fs
                    .path_to_filesystem(&object_path(key)?)
                    .map_err(|e| Error::store(key, "resolve path", e))?;
                local_files::sync_file_and_folder(key, &file).await?;
            }
            return Ok(written);
        }
        let staged = staging_path(key)?;
        self.inner
            .put(&staged, data)
            .await
            .map_err(|e| Error::store(key, "put (staging)", e))?;
        self.replace(&staged, key, &options.condition, options.attributes).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.inside_root(key)?;
        convert::delete(self.inner.as_ref(), key).await
    }

    async fn get_tags(&self, key: &str, _version_id: Option<&str>) -> Result<Vec<(String, String)>> {
        match &self.azure_tags {
            Some(tags) => tags.get(key).await,
            None => Ok(Vec::new()),
        }
    }

    async fn put_tags(&self, key: &str, _version_id: Option<&str>, tags: &[(String, String)]) -> Result<()> {
        match &self.azure_tags {
            Some(azure) => azure.put(key, tags).await,
            None => Err(Error::Config(format!("{key}: this store has no object tags"))),
        }
    }

    async fn create_multipart(&self, key: &str, options: &WriteOptions) -> Result<String> {
        self.inside_root(key)?;
        let staged = staging_path(key)?;
        let (upload, attributes) = match &self.local {
            Some((fs, _)) => {
                let file = fs
                    .path_to_filesystem(&staged)
                    .map_err(|e| Error::store(key, "resolve path", e))?;
                let created = file.clone();
                blocking(key, move || {
                    if let Some(folder) = created.parent() {
                        std::fs::create_dir_all(folder).map_err(|e| ("create multipart upload", e))?;
                    }
                    std::fs::File::create(&created)
                        .map(drop)
                        .map_err(|e| ("create multipart upload", e))
                })
                .await?;
                (Staging::File(file), options.attributes.clone())
            }
            None => (
                Staging::Store(
                    self.inner
                        .put_multipart(&staged)
                        .await
                        .map_err(|e| Error::store(key, "create multipart upload", e))?,
                ),
                options.attributes.clone(),
            ),
        };
        let id = staged.to_string();
        self.uploads.lock().expect("upload table").insert(
            id.clone(),
            Staged {
                upload,
                staged,
                attributes,
            },
        );
        Ok(id)
    }

    async fn upload_part(&self, key: &str, upload_id: &str, index: usize, data: PutPayload) -> Result<String> {
        let part = {
            let mut uploads = self.uploads.lock().expect("upload table");
            let staged = uploads
                .get_mut(upload_id)
                .ok_or_else(|| Error::Config(format!("{key}: no upload {upload_id}")))?;
            match &mut staged.upload {
                Staging::Store(upload) => Ok(upload.put_part(data)),
                Staging::File(file) => Err((file.clone(), data)),
            }
        };
        match part {
            Ok(part) => part.await.map_err(|e| Error::store(key, "upload part", e))?,
            Err((file, data)) => {
                blocking(key, move || {
                    let mut out = open_for_append(&file).map_err(|e| ("upload part", e))?;
                    for chunk in data.iter() {
                        std::io::Write::write_all(&mut out, chunk).map_err(|e| ("upload part", e))?;
                    }
                    Ok(())
                })
                .await?
            }
        }
        Ok(index.to_string())
    }

    async fn upload_part_copy(&self, key: &str, upload_id: &str, index: usize, source: &CopySource) -> Result<String> {
        let file = match self
            .uploads
            .lock()
            .expect("upload table")
            .get(upload_id)
            .map(|staged| &staged.upload)
        {
            Some(Staging::File(file)) => file.clone(),
            Some(Staging::Store(_)) => {
                return Err(Error::Config(format!("{key}: this store copies no parts")));
            }
            None => return Err(Error::Config(format!("{key}: no upload {upload_id}"))),
        };
        self.inside_root(&source.key)?;
        let from = match &self.local {
            Some((fs, _)) => fs
                .path_to_filesystem(&object_path(&source.key)?)
                .map_err(|e| Error::store(&source.key, "resolve path", e))?,
            None => return Err(Error::Config(format!("{key}: this store copies no parts"))),
        };
        let source = source.clone();
        let copied = blocking(key, move || {
            use std::io::{Read, Seek, SeekFrom};
            let mut input = std::fs::File::open(&from).map_err(|e| ("upload part copy (source)", e))?;
            let meta = input.metadata().map_err(|e| ("upload part copy (source)", e))?;
            if local_e_tag(&meta) != source.e_tag {
                return Ok(false);
            }
            input
                .seek(SeekFrom::Start(source.range.start))
                .map_err(|e| ("upload part copy (source)", e))?;
            let mut out = open_for_append(&file).map_err(|e| ("upload part copy", e))?;
            let want = source.range.end - source.range.start;
            let n = std::io::copy(&mut input.take(want), &mut out).map_err(|e| ("upload part copy", e))?;
            if n != want {
                return Err((
                    "upload part copy",
                    std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("copied {n} of {want} bytes: the source is shorter"),
                    ),
                ));
            }
            Ok(true)
        })
        .await?;
        if !copied {
            return Err(Error::Conflict {
                key: key.to_string(),
                expected: String::new(),
            });
        }
        Ok(index.to_string())
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        _parts: &[String],
        condition: &Condition,
    ) -> Result<Written> {
        let mut staged = self
            .uploads
            .lock()
            .expect("upload table")
            .remove(upload_id)
            .ok_or_else(|| Error::Config(format!("{key}: no upload {upload_id}")))?;
        if let Staging::Store(upload) = &mut staged.upload
            && let Err(e) = upload.complete().await
        {
            let _ = self.inner.delete(&staged.staged).await;
            return Err(Error::store(key, "complete multipart upload", e));
        }
        self.replace(&staged.staged, key, condition, staged.attributes).await
    }

    async fn abort_multipart(&self, _key: &str, upload_id: &str) -> Result<()> {
        let staged = self.uploads.lock().expect("upload table").remove(upload_id);
        if let Some(mut staged) = staged {
            if let Staging::Store(upload) = &mut staged.upload {
                let _ = upload.abort().await;
            }
            let _ = self.inner.delete(&staged.staged).await;
        }
        Ok(())
    }

    /// Local disk: the current files under `prefix` and the versions kept of them.
    async fn list_versions(&self, prefix: &str) -> Result<Vec<ObjectVersion>> {
        if self.flavor != Flavor::Local {
            return Err(Self::no_versions(prefix));
        }
        let mut versions = Vec::new();
        for (listed, kept) in [
            (prefix.to_string(), false),
            (format!("{VERSIONS_PREFIX}{prefix}"), true),
        ] {
            // One page holding every key: each page of a local listing walks the whole folder.
            let found = self.list(&listed, None, Some(usize::MAX)).await?;
            for object in found.objects {
                let e_tag = object.e_tag.unwrap_or_default();
                let (key, version_id) = match kept {
                    false if object.key.starts_with(INTERNAL_PREFIX) => continue,
                    false => (object.key.clone(), local_versions::version_of(&e_tag)),
                    true => match local_versions::parse_kept(&object.key) {
                        Some((key, version_id)) => (key.to_string(), version_id.to_string()),
                        None => continue,
                    },
                };
                versions.push(ObjectVersion {
                    key,
                    version_id,
                    is_latest: !kept,
                    e_tag,
                    delete_marker: false,
                });
            }
        }
        Ok(versions)
    }

    /// Local disk keeps versions where its file system takes hard links (checked, not assumed).
    async fn versioning_enabled(&self) -> Result<bool> {
        let Some((_, root)) = &self.local else {
            return Ok(false);
        };
        let root = root.clone();
        blocking(INTERNAL_PREFIX, move || {
            local_versions::links_work(&root).map_err(|e| ("check that hard links work", e))
        })
        .await
    }
}

/// The error of a create that found the key taken.
fn already_exists(key: &str) -> Error {
    Error::store(
        key,
        "put",
        object_store::Error::AlreadyExists {
            path: key.to_string(),
            source: "the object exists".into(),
        },
    )
}

/// Creates the object at `target` from the staged file by a hard link, which fails if a file
/// is there (even one another program wrote after the check), and makes the name durable.
async fn create_by_link(key: &str, staged: &std::path::Path, target: &std::path::Path) -> Result<()> {
    let (staged, target) = (staged.to_path_buf(), target.to_path_buf());
    let created = blocking(key, move || {
        if let Some(folder) = target.parent() {
            std::fs::create_dir_all(folder).map_err(|e| ("create", e))?;
        }
        match std::fs::hard_link(&staged, &target) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(("create", e)),
        }
        sync_folder_now(&target).map_err(|e| ("fsync (folder)", e))?;
        Ok(true)
    })
    .await?;
    if created { Ok(()) } else { Err(already_exists(key)) }
}

fn staging_path(key: &str) -> Result<Path> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let unique = format!(
        "{}-{nanos}-{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    object_path(&format!("{INTERNAL_PREFIX}staging/{key}.{unique}"))
}

/// The engine's metadata names (`pqm-run`) as Azure takes them: metadata names there must be C#
/// identifiers, so `-` becomes `_` in the engine's own names.
fn azure_name(name: &str) -> String {
    match name.strip_prefix("pqm-") {
        Some(rest) => format!("pqm_{}", rest.replace('-', "_")),
        None => name.to_string(),
    }
}

/// The inverse of [`azure_name`] for the engine's own names.
fn engine_name(name: &str) -> String {
    match name.strip_prefix("pqm_") {
        Some(rest) => format!("pqm-{}", rest.replace('_', "-")),
        None => name.to_string(),
    }
}

/// `attributes` with every metadata name passed through `rename`.
fn renamed(attributes: &Attributes, rename: fn(&str) -> String) -> Attributes {
    attributes
        .iter()
        .map(|(attribute, value)| match attribute {
            object_store::Attribute::Metadata(name) => {
                (object_store::Attribute::Metadata(rename(name).into()), value.clone())
            }
            other => (other.clone(), value.clone()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn payload(text: &str) -> PutPayload {
        Bytes::from(text.to_string()).into()
    }

    /// Two stores on one root stand for two processes: of two conditional writes on the same
    /// ETag, exactly one lands, every time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_writers_on_one_root_never_both_win_a_conditional_write() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            Arc::new(ObjectStoreIo::local(dir.path()).unwrap()),
            Arc::new(ObjectStoreIo::local(dir.path()).unwrap()),
        );
        for round in 0..100 {
            let key = format!("k/{round}.parquet");
            let first = a.put(&key, payload("v0"), WriteOptions::default()).await.unwrap();
            let condition = Condition::IfMatch(first.e_tag.unwrap());
            let write = |io: Arc<ObjectStoreIo>, text: &'static str| {
                let (key, condition) = (key.clone(), condition.clone());
                tokio::spawn(async move {
                    let options = WriteOptions {
                        condition,
                        ..WriteOptions::default()
                    };
                    io.put(&key, payload(text), options).await
                })
            };
            let (x, y) = (write(a.clone(), "from-a"), write(b.clone(), "from-b"));
            let (x, y) = (x.await.unwrap(), y.await.unwrap());
            assert!(x.is_ok() != y.is_ok(), "round {round}: exactly one wins: {x:?} {y:?}");
            let (winner, loser) = if x.is_ok() { ("from-a", y) } else { ("from-b", x) };
            assert!(matches!(loser, Err(Error::Conflict { .. })), "{loser:?}");
            let (_, data) = a.get(&key, ReadOptions::default()).await.unwrap();
            assert_eq!(data, Bytes::from(winner), "round {round}");
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn paths_that_leave_the_root_through_a_symlink_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (root, outside) = (dir.path().join("root"), dir.path().join("outside"));
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("f.parquet"), b"theirs").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("d/linked")).unwrap();
        std::os::unix::fs::symlink(outside.join("f.parquet"), root.join("d/file.parquet")).unwrap();
        std::fs::create_dir_all(root.join("d/inner")).unwrap();
        std::os::unix::fs::symlink(root.join("d/inner"), root.join("d/within")).unwrap();
        let store = Store::local(&root).unwrap();
        for key in ["d/linked/f.parquet", "d/file.parquet", "d/linked/new.parquet"] {
            let err = store.head(key).await.unwrap_err();
            assert!(
                err.to_string().contains("leads outside the store's root"),
                "{key}: {err}"
            );
            let err = store
                .write(key, Bytes::from_static(b"ours"), WriteOptions::default())
                .await
                .unwrap_err();
            assert!(matches!(err, Error::InvalidKey { .. }), "{key}: {err}");
        }
        assert_eq!(std::fs::read(outside.join("f.parquet")).unwrap(), b"theirs");
        assert!(!outside.join("new.parquet").exists());
        // A link that stays inside the root is followed.
        store
            .put("d/within/a.parquet", Bytes::from_static(b"x"), &[], Default::default())
            .await
            .unwrap();
        assert_eq!(std::fs::read(root.join("d/inner/a.parquet")).unwrap(), b"x");
    }

    #[test]
    fn the_engines_metadata_names_round_trip_through_azures_rules() {
        for name in ["pqm-run", "pqm-attempt", "pqm-v-schema-sensordata-version"] {
            let azure = azure_name(name);
            assert!(azure.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{azure}");
            assert_eq!(engine_name(&azure), name);
        }
        assert_eq!(azure_name("owner"), "owner", "a user's own names are theirs");
    }
}
