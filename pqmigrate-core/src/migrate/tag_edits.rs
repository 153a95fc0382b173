//! Tag edits made by others while an object is rewritten: a tag edit does not change the
//! ETag, so the write's condition cannot see one.

use crate::error::{Error, Result};
use crate::store::{ObjectInfo, Store, Written};
use crate::version_store::with_version;

/// Tags compared as sets: a store need not return them in the order they were written.
fn same_tags(a: &[(String, String)], b: &[(String, String)]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}

/// Fails with [`Error::TagsChanged`] when the tags of the version read are no longer the ones
/// read (where the store has tags).
pub(super) async fn tags_unchanged(store: &Store, info: &ObjectInfo) -> Result<()> {
    let Some(read) = &info.tags else {
        return Ok(());
    };
    match store.tags_at(&info.key, info.version_id.as_deref()).await? {
        Some(now) if !same_tags(&now, read) => Err(Error::TagsChanged { key: info.key.clone() }),
        _ => Ok(()),
    }
}

/// On a versioned bucket, a tag edit that reached the version read after the last check (and
/// before the write replaced it) is still on that version: carried over to the written one,
/// with the new version, so no edit is silently reverted. Returns whether one was carried.
pub(super) async fn carry_over_late_tag_edit(
    store: &Store,
    info: &ObjectInfo,
    version_key: &str,
    version: u32,
    written: &Written,
) -> Result<bool> {
    let (Some(read), Some(old), Some(new)) = (&info.tags, &info.version_id, &written.version_id) else {
        return Ok(false);
    };
    let Some(now) = store.tags_at(&info.key, Some(old)).await? else {
        return Ok(false);
    };
    if same_tags(&now, read) {
        return Ok(false);
    }
    let tags = with_version(&now, version_key, version);
    tracing::info!(
        "{}: tags edited during the rewrite carried over to the new version",
        info.key
    );
    store.put_tags_at(&info.key, Some(new), &tags).await?;
    Ok(true)
}
