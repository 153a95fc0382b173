//! Local disk behind the seam. It has no conditional write, so a conditional write is staged
//! under `_pqmigrate/staging/`, made durable (fsync), and checked and renamed over the object
//! under an exclusive lock of the root (`_pqmigrate/local.lock`), so no two pqmigrate processes
//! can interleave a check and a rename. The file replaced is kept as a hard link under
//! `_pqmigrate/versions/` ([`versions`]), and user metadata lives in extended attributes
//! ([`files`]). A key that is a symbolic link, or whose path leads outside the root through one,
//! is refused; a file written over in place while it is read is a conflict.

mod files;
mod versions;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{Attributes, ObjectMeta, ObjectStore, ObjectStoreExt, PutOptions, PutPayload};

use super::io::{
    Capabilities, Condition, CopySource, Head, ListPage, ObjectVersion, ReadOptions, StoreIo, WriteOptions, Written,
};
use super::plumbing::{self, already_exists, conflict_or, put_mode};
use super::{INTERNAL_PREFIX, Store, object_path};
use crate::error::{Error, Result};
use files::{
    LOCK_FILE, blocking, create_by_link, durable_and_locked, local_e_tag, open_for_append, staging_path,
    start_writeback, sync_folder_now,
};
use versions::VERSIONS_PREFIX;

/// An upload being staged: a file that parts are appended to in order, uploaded ones written,
/// copied ones copied by the kernel (`copy_file_range`, a reflink where the file system shares
/// extents).
struct Staged {
    file: PathBuf,
    staged: Path,
    attributes: Attributes,
}

/// A folder on local disk, keeping replaced versions.
pub(crate) struct LocalIo {
    fs: Arc<LocalFileSystem>,
    /// The root, resolved.
    root: PathBuf,
    uploads: Mutex<HashMap<String, Staged>>,
    /// Whether its file system keeps user metadata (as extended attributes).
    metadata: bool,
}

impl std::fmt::Debug for LocalIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIo")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// The store of an existing folder (`file://` URLs): a data set's root is never created here.
///
/// # Errors
/// [`Error::Config`] naming the URL when the folder does not exist.
pub(crate) fn open(url: &str, path: &std::path::Path) -> Result<Store> {
    // A mistyped path must not become a new, empty data set.
    if !path.is_dir() {
        return Err(Error::Config(format!(
            "{url}: {} is not an existing folder (a data set's root is never created; make it first)",
            path.display()
        )));
    }
    Ok(Store::from_io(
        Arc::new(LocalIo::new(path)?),
        format!("file://{}", path.display()),
    ))
}

impl LocalIo {
    /// Local disk under `root`, an existing folder.
    pub(crate) fn new(root: &std::path::Path) -> Result<Self> {
        let root =
            std::fs::canonicalize(root).map_err(|e| Error::Config(format!("cannot open {}: {e}", root.display())))?;
        let fs = Arc::new(
            LocalFileSystem::new_with_prefix(&root)
                .map_err(|e| Error::Config(format!("cannot open {}: {e}", root.display())))?,
        );
        Ok(Self {
            metadata: files::metadata_supported(&root),
            fs,
            root,
            uploads: Mutex::default(),
        })
    }

    /// The file of `key`.
    fn file(&self, key: &str) -> Result<PathBuf> {
        self.file_of(key, &object_path(key)?)
    }

    fn file_of(&self, key: &str, path: &Path) -> Result<PathBuf> {
        self.fs
            .path_to_filesystem(path)
            .map_err(|e| Error::store(key, "resolve path", e))
    }

    /// Refuses a key that is a symbolic link, or whose path leads outside the root through one.
    fn inside_root(&self, key: &str) -> Result<()> {
        files::inside_root(key, &self.file(key)?, &self.root)
    }

    /// The current head of `key`, read from the file itself, with its user metadata, and its
    /// version id (its ETag).
    async fn head_now(&self, key: &str) -> Result<Head> {
        let file = self.file(key)?;
        let mut head = files::head(key, &file, self.metadata).await?;
        head.version_id = head.e_tag.as_deref().map(versions::version_of);
        Ok(head)
    }

    /// Version `version_id` of `key`: the current file if it is that version (read pinned to
    /// it), else the kept one.
    async fn get_version(&self, key: &str, version_id: &str, options: ReadOptions) -> Result<(Head, Bytes)> {
        let kept = versions::kept_key(key, version_id)?;
        let pinned = ReadOptions {
            if_match: Some(versions::e_tag_of(version_id)),
            version_id: None,
            ..options.clone()
        };
        match plumbing::get(self.fs.as_ref(), key, pinned).await {
            Ok((head, bytes)) => return Ok((with_version(head), bytes)),
            Err(Error::Conflict { .. }) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let options = ReadOptions {
            version_id: None,
            ..options
        };
        let (head, bytes) = plumbing::get(self.fs.as_ref(), &kept, options).await?;
        Ok((with_version(head), bytes))
    }

    /// Whether a write carries user metadata the file system can keep.
    fn keeps_metadata(&self, attributes: &Attributes) -> bool {
        self.metadata
            && attributes
                .iter()
                .any(|(a, _)| matches!(a, object_store::Attribute::Metadata(_)))
    }

    /// Renames the staged file over `key` if `condition` holds, and removes the staged copy.
    async fn replace(
        &self,
        staged: &Path,
        key: &str,
        condition: &Condition,
        attributes: Attributes,
    ) -> Result<Written> {
        let result = self.rename_if(staged, key, condition, attributes).await;
        let _ = self.fs.delete(staged).await;
        result
    }

    /// Renames the staged file over `key` if `condition` holds: the staged file is made durable
    /// first, and the check and the rename happen under the root's exclusive lock, then the
    /// folder is made durable.
    async fn rename_if(
        &self,
        staged: &Path,
        key: &str,
        condition: &Condition,
        attributes: Attributes,
    ) -> Result<Written> {
        self.inside_root(key)?;
        let path = object_path(key)?;
        let (staged_file, target) = (self.file_of(key, staged)?, self.file_of(key, &path)?);
        let metadata = self.keeps_metadata(&attributes).then_some(attributes);
        let lock = durable_and_locked(key, &staged_file, &self.root.join(LOCK_FILE), metadata).await?;
        let found = match self.fs.head(&path).await {
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
        if let Some(ObjectMeta { e_tag: Some(e_tag), .. }) = &found {
            self.keep_replaced(key, e_tag, &target).await?;
        }
        if let Condition::Create = condition {
            create_by_link(key, &staged_file, &target).await?;
        } else {
            self.fs
                .rename(staged, &path)
                .await
                .map_err(|e| Error::store(key, "rename", e))?;
            let synced = target.clone();
            blocking(key, move || sync_folder_now(&synced).map_err(|e| ("fsync (folder)", e))).await?;
        }
        let meta = self.fs.head(&path).await.map_err(|e| Error::store(key, "head", e))?;
        drop(lock);
        Ok(Written {
            version_id: meta.e_tag.as_deref().map(versions::version_of),
            e_tag: meta.e_tag,
        })
    }

    /// Keeps the file at `target` (the object `key`, at `e_tag`) as a version before it is
    /// replaced: a hard link under `_pqmigrate/versions/`, for data objects.
    async fn keep_replaced(&self, key: &str, e_tag: &str, target: &std::path::Path) -> Result<()> {
        if !versions::keeps_versions(key) {
            return Ok(());
        }
        let kept_key = versions::kept_key(key, &versions::version_of(e_tag))?;
        let kept = self.file(&kept_key)?;
        let target = target.to_path_buf();
        let linked = blocking(key, move || {
            versions::keep(&target, &kept).map_err(|e| ("keep the replaced version", e))
        })
        .await?;
        if !linked {
            tracing::warn!("{key}: the file system takes no hard links, so the replaced version is not kept");
        }
        Ok(())
    }

    /// A write of `key` straight through the file system (creates and unconditional writes
    /// without user metadata: the journal's, the leases'), made durable with its folder.
    async fn put_direct(&self, key: &str, data: PutPayload, condition: &Condition) -> Result<Written> {
        let put = PutOptions {
            mode: put_mode(key, condition)?,
            ..PutOptions::default()
        };
        let result = self
            .fs
            .put_opts(&object_path(key)?, data, put)
            .await
            .map_err(|e| conflict_or(key, condition, "put", e))?;
        files::sync_file_and_folder(key, &self.file(key)?).await?;
        Ok(Written {
            e_tag: result.e_tag,
            version_id: result.version,
        })
    }
}

/// A head with its version id: the file's ETag.
fn with_version(mut head: Head) -> Head {
    head.version_id = head.e_tag.as_deref().map(versions::version_of);
    head
}

#[async_trait]
impl StoreIo for LocalIo {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            tags: false,
            user_metadata: self.metadata,
            multipart: true,
            versions: true,
            copy_parts: true,
            largest_copied_part: super::MAX_PART,
            reads_in_flight: 2,
            parts_in_any_order: false,
        }
    }

    /// This machine's clock, which the store is on.
    async fn server_time(&self) -> Result<chrono::DateTime<chrono::Utc>> {
        Ok(chrono::Utc::now())
    }

    async fn list(&self, prefix: &str, page: Option<String>, max_keys: Option<usize>) -> Result<ListPage> {
        plumbing::list_page(self.fs.as_ref(), prefix, page, max_keys, |meta| meta.e_tag).await
    }

    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        plumbing::list_dirs(self.fs.as_ref(), prefix).await
    }

    async fn head(&self, key: &str, version_id: Option<&str>) -> Result<Head> {
        self.inside_root(key)?;
        let Some(version_id) = version_id else {
            return self.head_now(key).await;
        };
        let kept = versions::kept_key(key, version_id)?;
        match self.head_now(key).await {
            Ok(head) if head.e_tag.as_deref() == Some(versions::e_tag_of(version_id).as_str()) => return Ok(head),
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        self.head_now(&kept).await
    }

    async fn get(&self, key: &str, options: ReadOptions) -> Result<(Head, Bytes)> {
        self.inside_root(key)?;
        if let Some(version_id) = options.version_id.clone() {
            return self.get_version(key, &version_id, options).await;
        }
        let pinned = options.if_match.clone();
        let read = plumbing::get(self.fs.as_ref(), key, options).await;
        if let Some(expected) = pinned {
            // A file written over in place while it was read: its bytes may mix two contents,
            // or end early. Either way it is another content now: a conflict, not a bad file.
            // One stat, not a head: this runs after every ranged read of a rewrite.
            let now = tokio::fs::metadata(self.file(key)?).await.ok().map(|m| local_e_tag(&m));
            if now.as_deref() != Some(expected.as_str()) {
                return Err(Error::Conflict {
                    key: key.to_string(),
                    expected,
                });
            }
        }
        let (head, bytes) = read?;
        Ok((with_version(head), bytes))
    }

    async fn put(&self, key: &str, data: PutPayload, options: WriteOptions) -> Result<Written> {
        self.inside_root(key)?;
        if matches!(options.condition, Condition::None | Condition::Create) && !self.keeps_metadata(&options.attributes)
        {
            // Made durable like every other local write: the journal counts on it.
            return self.put_direct(key, data, &options.condition).await;
        }
        let staged = staging_path(key)?;
        self.fs
            .put(&staged, data)
            .await
            .map_err(|e| Error::store(key, "put (staging)", e))?;
        self.replace(&staged, key, &options.condition, options.attributes).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.inside_root(key)?;
        plumbing::delete(self.fs.as_ref(), key).await
    }

    async fn create_multipart(&self, key: &str, options: &WriteOptions) -> Result<String> {
        self.inside_root(key)?;
        let staged = staging_path(key)?;
        let file = self.file_of(key, &staged)?;
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
        let id = staged.to_string();
        self.uploads.lock().expect("upload table").insert(
            id.clone(),
            Staged {
                file,
                staged,
                attributes: options.attributes.clone(),
            },
        );
        Ok(id)
    }

    async fn upload_part(&self, key: &str, upload_id: &str, index: usize, data: PutPayload) -> Result<String> {
        let file = self.staged_file(key, upload_id)?;
        blocking(key, move || {
            let mut out = open_for_append(&file).map_err(|e| ("upload part", e))?;
            for chunk in data.iter() {
                std::io::Write::write_all(&mut out, chunk).map_err(|e| ("upload part", e))?;
            }
            Ok(())
        })
        .await?;
        Ok(index.to_string())
    }

    async fn upload_part_copy(&self, key: &str, upload_id: &str, index: usize, source: &CopySource) -> Result<String> {
        let file = self.staged_file(key, upload_id)?;
        self.inside_root(&source.key)?;
        let from = self.file(&source.key)?;
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
            let at = out.stream_position().map_err(|e| ("upload part copy", e))?;
            let want = source.range.end - source.range.start;
            let n = std::io::copy(&mut input.take(want), &mut out).map_err(|e| ("upload part copy", e))?;
            start_writeback(&out, at, n);
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
        let staged = self
            .uploads
            .lock()
            .expect("upload table")
            .remove(upload_id)
            .ok_or_else(|| Error::Config(format!("{key}: no upload {upload_id}")))?;
        self.replace(&staged.staged, key, condition, staged.attributes).await
    }

    async fn abort_multipart(&self, _key: &str, upload_id: &str) -> Result<()> {
        let staged = self.uploads.lock().expect("upload table").remove(upload_id);
        if let Some(staged) = staged {
            let _ = self.fs.delete(&staged.staged).await;
        }
        Ok(())
    }

    /// The current files under `prefix` and the versions kept of them.
    async fn list_versions(&self, prefix: &str) -> Result<Vec<ObjectVersion>> {
        // One page holding every key: each page of a local listing walks the whole folder.
        let current = self.list(prefix, None, Some(usize::MAX)).await?;
        let kept = self
            .list(&format!("{VERSIONS_PREFIX}{prefix}"), None, Some(usize::MAX))
            .await?;
        Ok(versions::listed(current.objects, kept.objects))
    }

    /// Versions are kept where the file system takes hard links (checked, not assumed).
    async fn versioning_enabled(&self) -> Result<bool> {
        let root = self.root.clone();
        blocking(INTERNAL_PREFIX, move || {
            versions::links_work(&root).map_err(|e| ("check that hard links work", e))
        })
        .await
    }
}

impl LocalIo {
    /// The staged file of upload `upload_id`.
    fn staged_file(&self, key: &str, upload_id: &str) -> Result<PathBuf> {
        self.uploads
            .lock()
            .expect("upload table")
            .get(upload_id)
            .map(|staged| staged.file.clone())
            .ok_or_else(|| Error::Config(format!("{key}: no upload {upload_id}")))
    }
}

#[cfg(test)]
mod tests;
