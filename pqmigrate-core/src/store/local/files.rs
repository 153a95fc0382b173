//! Files of the local disk store: staged writes made durable under the root's lock, heads read
//! from one open file (its ETag, size and user metadata together), and user metadata kept as
//! extended attributes (`user.<name>`), which a rename carries and a hard link shares.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use object_store::{Attribute, Attributes};

use crate::error::{Error, Result};
use crate::store::io::Head;
use crate::store::plumbing::already_exists;
use crate::store::{INTERNAL_PREFIX, object_path};

/// The lock file of a local root, under the internal prefix.
pub(super) const LOCK_FILE: &str = "_pqmigrate/local.lock";

/// Where a file's user metadata lives among its extended attributes.
const XATTR_PREFIX: &str = "user.";

/// Whether the file system under `root` keeps user extended attributes: asking for one that
/// is not there fails with "no data" where they are kept, "not supported" where not.
pub(super) fn metadata_supported(root: &Path) -> bool {
    match rustix::fs::getxattr(root, "user.pqm-probe", &mut [0u8; 1][..]) {
        Ok(_) => true,
        Err(e) => e == rustix::io::Errno::NODATA,
    }
}

/// Writes `attributes`' user metadata onto `file` as extended attributes.
fn write_metadata(file: &std::fs::File, attributes: &Attributes) -> std::io::Result<()> {
    for (attribute, value) in attributes {
        if let Attribute::Metadata(name) = attribute {
            let name = format!("{XATTR_PREFIX}{name}");
            rustix::fs::fsetxattr(file, name.as_str(), value.as_bytes(), rustix::fs::XattrFlags::empty())?;
        }
    }
    Ok(())
}

/// The user metadata of `file`, from its extended attributes (names and values that are not
/// UTF-8 are not user metadata pqmigrate wrote, and are left out). A file on a file system
/// without them (another mount under the root) has none.
fn read_metadata(file: &std::fs::File) -> std::io::Result<Attributes> {
    let mut attributes = Attributes::new();
    let size = match rustix::fs::flistxattr_query(file) {
        Ok(size) => size,
        Err(e) if e == rustix::io::Errno::NOTSUP => return Ok(attributes),
        Err(e) => return Err(e.into()),
    };
    if size == 0 {
        return Ok(attributes);
    }
    let mut names = vec![0u8; size];
    let listed = rustix::fs::flistxattr(file, &mut names[..])?;
    names.truncate(listed);
    for name in names.split(|b| *b == 0) {
        let Some(short) = std::str::from_utf8(name)
            .ok()
            .and_then(|n| n.strip_prefix(XATTR_PREFIX))
        else {
            continue;
        };
        let full = format!("{XATTR_PREFIX}{short}");
        let size = rustix::fs::fgetxattr_query(file, full.as_str())?;
        let mut value = vec![0u8; size];
        let read = rustix::fs::fgetxattr(file, full.as_str(), &mut value[..])?;
        value.truncate(read);
        if let Ok(value) = String::from_utf8(value) {
            attributes.insert(Attribute::Metadata(short.to_string().into()), value.into());
        }
    }
    Ok(attributes)
}

/// The head of the file at `path` (the object `key`), read from one open file so the ETag and
/// the metadata are of the same file; with its user metadata when `metadata` is set.
pub(super) async fn head(key: &str, path: &Path, metadata: bool) -> Result<Head> {
    let path = path.to_path_buf();
    let key_owned = key.to_string();
    blocking(key, move || {
        let not_found = |e: std::io::Error| ("head", e);
        let file = std::fs::File::open(&path).map_err(not_found)?;
        let meta = file.metadata().map_err(not_found)?;
        if !meta.is_file() {
            return Err((
                "head",
                std::io::Error::new(std::io::ErrorKind::NotFound, format!("{key_owned} is a folder")),
            ));
        }
        let attributes = if metadata {
            read_metadata(&file).map_err(|e| ("read user metadata", e))?
        } else {
            Attributes::new()
        };
        Ok(Head {
            e_tag: Some(local_e_tag(&meta)),
            version_id: None,
            size: meta.len(),
            last_modified: meta.modified().ok().map(chrono::DateTime::<chrono::Utc>::from),
            attributes,
            encryption: None,
        })
    })
    .await
}

/// Writes `attributes`' user metadata onto the staged file (when `metadata` is set), syncs it
/// to disk, and takes the root's exclusive lock (released when the file handle returned is
/// dropped).
pub(super) async fn durable_and_locked(
    key: &str,
    staged: &Path,
    lock: &Path,
    attributes: Option<Attributes>,
) -> Result<std::fs::File> {
    let (staged, lock) = (staged.to_path_buf(), lock.to_path_buf());
    blocking(key, move || {
        let file = std::fs::File::open(&staged).map_err(|e| ("fsync (staging)", e))?;
        if let Some(attributes) = &attributes {
            write_metadata(&file, attributes).map_err(|e| ("write user metadata", e))?;
        }
        file.sync_all().map_err(|e| ("fsync (staging)", e))?;
        if let Some(folder) = lock.parent() {
            std::fs::create_dir_all(folder).map_err(|e| ("lock", e))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .map_err(|e| ("lock", e))?;
        file.lock().map_err(|e| ("lock", e))?;
        Ok(file)
    })
    .await
}

/// Syncs a file and then its folder, so the file's bytes and its name are durable.
pub(super) async fn sync_file_and_folder(key: &str, file: &Path) -> Result<()> {
    let file = file.to_path_buf();
    blocking(key, move || {
        std::fs::File::open(&file)
            .and_then(|f| f.sync_all())
            .map_err(|e| ("fsync", e))?;
        sync_folder_now(&file).map_err(|e| ("fsync (folder)", e))
    })
    .await
}

/// Syncs the folder of `file`, so a rename or link in it is durable.
pub(super) fn sync_folder_now(file: &Path) -> std::io::Result<()> {
    match file.parent() {
        Some(folder) => std::fs::File::open(folder)?.sync_all(),
        None => Ok(()),
    }
}

/// Runs file system work on a blocking thread; its error names the operation.
pub(super) async fn blocking<T: Send + 'static>(
    key: &str,
    work: impl FnOnce() -> std::result::Result<T, (&'static str, std::io::Error)> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Task {
            key: key.to_string(),
            message: e.to_string(),
        })?
        .map_err(|(op, e)| local_error(key, op, e))
}

/// A staged file opened to add a part at its end (not in append mode, which
/// `copy_file_range` refuses).
pub(super) fn open_for_append(file: &Path) -> std::io::Result<std::fs::File> {
    use std::io::Seek;
    let mut out = std::fs::OpenOptions::new().write(true).open(file)?;
    out.seek(std::io::SeekFrom::End(0))?;
    Ok(out)
}

/// Asks the kernel to start writing `len` bytes of `file` from `offset` to disk now, so the
/// fsync that makes the upload durable finds them written instead of writing them then: a
/// copied data region goes out while the rest of the file is encoded. A hint: an error is
/// ignored, and the fsync still decides durability.
pub(super) fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    // A length of zero would mean "to the end of the file" to the kernel.
    let Some(len) = std::num::NonZeroU64::new(len) else {
        return;
    };
    // DONTNEED starts writeback of the dirty pages in the range without waiting for it (and
    // drops the clean ones, which nothing reads again).
    let _ = rustix::fs::fadvise(file, offset, Some(len), rustix::fs::Advice::DontNeed);
}

/// The ETag local disk gives a file (as object_store's local store computes it).
pub(super) fn local_e_tag(meta: &std::fs::Metadata) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .unwrap_or_default()
        .as_micros();
    format!("\"{:x}-{mtime:x}-{:x}\"", meta.ino(), meta.len())
}

/// A file system error of operation `op` on `key`'s file, as a store error: a missing file is
/// object_store's `NotFound`, as for every other store.
pub(super) fn local_error(key: &str, op: &'static str, e: std::io::Error) -> Error {
    let source = match e.kind() {
        std::io::ErrorKind::NotFound => object_store::Error::NotFound {
            path: key.to_string(),
            source: Box::new(e),
        },
        _ => object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(e),
        },
    };
    Error::store(key, op, source)
}

/// Creates the object at `target` from the staged file by a hard link, which fails if a file
/// is there (even one another program wrote after the check), and makes the name durable.
pub(super) async fn create_by_link(key: &str, staged: &std::path::Path, target: &std::path::Path) -> Result<()> {
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

/// A unique staging key for an upload of `key`.
pub(super) fn staging_path(key: &str) -> Result<object_store::path::Path> {
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

/// Refuses a key that is a symbolic link (pqmigrate never replaces a link with a file), or whose
/// path leads outside `root` through one (of a folder on the way).
pub(super) fn inside_root(key: &str, path: &std::path::Path, root: &std::path::Path) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_metadata_round_trips_through_extended_attributes_and_a_hard_link() {
        let dir = tempfile::tempdir().unwrap();
        if !metadata_supported(dir.path()) {
            eprintln!("skipped: this file system keeps no user extended attributes");
            return;
        }
        let path = dir.path().join("f");
        std::fs::write(&path, b"data").unwrap();
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::Metadata("pqm-run".into()), "run-1".into());
        attributes.insert(Attribute::ContentType, "ignored".into());
        write_metadata(&std::fs::File::open(&path).unwrap(), &attributes).unwrap();
        let linked = dir.path().join("g");
        std::fs::hard_link(&path, &linked).unwrap();
        let read = read_metadata(&std::fs::File::open(&linked).unwrap()).unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(
            read.get(&Attribute::Metadata("pqm-run".into())).map(|v| v.as_ref()),
            Some("run-1")
        );
    }
}
