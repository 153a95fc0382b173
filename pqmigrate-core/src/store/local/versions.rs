//! Earlier versions of objects on local disk. Before a write replaces an object, its file is
//! hard-linked as `_pqmigrate/versions/<key>/<version id>`: no byte is copied, and the old
//! file's blocks stay where they are, so rollback reads that version back as it reads an earlier
//! version on S3. A file's version id is its ETag without the quotes (inode, modification time
//! and size), which a link keeps: the kept file has the ETag and version id the object had.
//!
//! The kept versions are the data set's history, as a versioned bucket's are: they hold the old
//! bytes until removed (`rm -r <root>/_pqmigrate/versions` when no rollback is wanted any more).

use std::path::Path;

use crate::error::{Error, Result};
use crate::store::INTERNAL_PREFIX;
use crate::store::io::{Listed, ObjectVersion};

/// Where kept versions live, under the root.
pub(crate) const VERSIONS_PREFIX: &str = "_pqmigrate/versions/";

/// The version id of a local file with ETag `e_tag`.
pub(crate) fn version_of(e_tag: &str) -> String {
    e_tag.trim_matches('"').to_string()
}

/// The ETag of the local file with version id `version_id` (the inverse of [`version_of`]).
pub(crate) fn e_tag_of(version_id: &str) -> String {
    format!("\"{version_id}\"")
}

/// The key version `version_id` of `key` is kept under. A version id is three hexadecimal
/// numbers joined by `-`; anything else (from a hand-edited journal, say) names no version.
pub(crate) fn kept_key(key: &str, version_id: &str) -> Result<String> {
    let well_formed = version_id.split('-').count() == 3
        && version_id
            .split('-')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_hexdigit()));
    if !well_formed {
        return Err(Error::Config(format!(
            "{key}: {version_id:?} is not a version id of local disk (inode-mtime-size, in hexadecimal)"
        )));
    }
    Ok(format!("{VERSIONS_PREFIX}{key}/{version_id}"))
}

/// Whether writes to `key` keep the version they replace: data objects do; the engine's own
/// objects (journal, leases, probe) do not.
pub(crate) fn keeps_versions(key: &str) -> bool {
    !key.starts_with(INTERNAL_PREFIX)
}

/// The object key and version id of a kept file's key, or `None` for a key that is not one.
pub(crate) fn parse_kept(kept: &str) -> Option<(&str, &str)> {
    let rest = kept.strip_prefix(VERSIONS_PREFIX)?;
    let (key, version_id) = rest.rsplit_once('/')?;
    kept_key(key, version_id).ok()?;
    Some((key, version_id))
}

/// Links `file` as `kept` and makes the link durable (its folder synced), so that once the new
/// version's rename is durable the old one is too. A link that exists already is the same file
/// (the version id names its inode). Returns `false`, keeping nothing, on a file system that
/// takes no hard links.
///
/// # Errors
/// Any other failure to create the folder or the link, or to sync the folder.
pub(crate) fn keep(file: &Path, kept: &Path) -> std::io::Result<bool> {
    use std::io::ErrorKind;
    let folder = kept.parent().expect("a kept version is in a folder");
    std::fs::create_dir_all(folder)?;
    match std::fs::hard_link(file, kept) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(true),
        Err(e) if matches!(e.kind(), ErrorKind::Unsupported | ErrorKind::PermissionDenied) => return Ok(false),
        Err(e) => return Err(e),
    }
    super::files::sync_folder_now(kept)?;
    Ok(true)
}

/// Whether the file system under `root` takes hard links, checked on a scratch file under
/// `_pqmigrate/probe/`: where it does not, no version can be kept.
///
/// # Errors
/// A failure to create or remove the scratch file.
pub(crate) fn links_work(root: &Path) -> std::io::Result<bool> {
    use std::io::ErrorKind;
    let folder = root.join(INTERNAL_PREFIX).join("probe");
    std::fs::create_dir_all(&folder)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let file = folder.join(format!("links-{}-{nanos}", std::process::id()));
    let link = file.with_extension("link");
    std::fs::write(&file, b"probe")?;
    let linked = match std::fs::hard_link(&file, &link) {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.kind(), ErrorKind::Unsupported | ErrorKind::PermissionDenied) => Ok(false),
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_file(&link);
    std::fs::remove_file(&file)?;
    linked
}

/// The versions of a listing: the current files (`current`, internal objects left out) and the
/// kept ones (`kept`, under [`VERSIONS_PREFIX`]).
pub(crate) fn listed(current: Vec<Listed>, kept: Vec<Listed>) -> Vec<ObjectVersion> {
    let current = current
        .into_iter()
        .filter(|object| !object.key.starts_with(INTERNAL_PREFIX))
        .map(|object| {
            let e_tag = object.e_tag.unwrap_or_default();
            ObjectVersion {
                version_id: version_of(&e_tag),
                key: object.key,
                is_latest: true,
                e_tag,
                delete_marker: false,
            }
        });
    let kept = kept.into_iter().filter_map(|object| {
        let (key, version_id) = parse_kept(&object.key)?;
        Some(ObjectVersion {
            key: key.to_string(),
            version_id: version_id.to_string(),
            is_latest: false,
            e_tag: object.e_tag.clone().unwrap_or_default(),
            delete_marker: false,
        })
    });
    current.chain(kept).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids_round_trip_and_only_well_formed_ones_name_a_kept_file() {
        let e_tag = "\"1a2b-5f00c0ffee-3e8\"";
        let version = version_of(e_tag);
        assert_eq!(version, "1a2b-5f00c0ffee-3e8");
        assert_eq!(e_tag_of(&version), e_tag);
        let kept = kept_key("d/a.parquet", &version).unwrap();
        assert_eq!(kept, "_pqmigrate/versions/d/a.parquet/1a2b-5f00c0ffee-3e8");
        assert_eq!(parse_kept(&kept), Some(("d/a.parquet", version.as_str())));
        for bad in ["../../etc", "1a2b-x-3", "1-2", "", "1-2-3-4", "1--3"] {
            assert!(kept_key("d/a.parquet", bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_kept("_pqmigrate/versions/d/a.parquet/not-a-version"), None);
        assert!(keeps_versions("d/a.parquet"));
        let root = tempfile::tempdir().unwrap();
        assert!(links_work(root.path()).unwrap(), "this file system takes hard links");
        assert_eq!(
            std::fs::read_dir(root.path().join("_pqmigrate/probe")).unwrap().count(),
            0,
            "scratch removed"
        );
        assert!(!keeps_versions("_pqmigrate/leases/s.json"));
    }
}
