//! Conversions between the seam's types and `object_store`'s, shared by the backends that use
//! `object_store`'s clients.

use bytes::Bytes;
use object_store::{
    Attributes, GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, TagSet, UpdateVersion,
};

use super::io::{Condition, Head, ReadOptions};
use super::object_path;
use crate::error::{Error, Result};

/// An object's metadata through `object_store` (a GET with `head`, so attributes come too).
pub(crate) async fn head(store: &dyn ObjectStore, key: &str, version_id: Option<&str>) -> Result<Head> {
    let options = GetOptions {
        head: true,
        version: version_id.map(str::to_string),
        ..GetOptions::default()
    };
    let result = store
        .get_opts(&object_path(key)?, options)
        .await
        .map_err(|e| Error::store(key, "head", e))?;
    Ok(head_of(&result.meta, result.attributes.clone()))
}

/// An object's bytes (or a range) and metadata through `object_store`.
pub(crate) async fn get(store: &dyn ObjectStore, key: &str, options: ReadOptions) -> Result<(Head, Bytes)> {
    let options = GetOptions {
        if_match: options.if_match,
        range: options.range.map(GetRange::Bounded),
        version: options.version_id,
        ..GetOptions::default()
    };
    let result = store
        .get_opts(&object_path(key)?, options)
        .await
        .map_err(|e| Error::store(key, "get", e))?;
    let head = head_of(&result.meta, result.attributes.clone());
    let bytes = result.bytes().await.map_err(|e| Error::store(key, "get", e))?;
    Ok((head, bytes))
}

/// The "directories" under `prefix` through `object_store`.
pub(crate) async fn list_dirs(store: &dyn ObjectStore, prefix: &str) -> Result<Vec<String>> {
    let dir = object_path(prefix.trim_end_matches('/'))?;
    match store.list_with_delimiter(Some(&dir)).await {
        Ok(listing) => Ok(listing.common_prefixes.into_iter().map(|p| p.to_string()).collect()),
        Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
        Err(e) => Err(Error::store(prefix, "list directories", e)),
    }
}

/// Deletes through `object_store`; a missing object is not an error.
pub(crate) async fn delete(store: &dyn ObjectStore, key: &str) -> Result<()> {
    match store.delete(&object_path(key)?).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(Error::store(key, "delete", e)),
    }
}

/// An object's metadata from `object_store`'s.
pub(crate) fn head_of(meta: &ObjectMeta, attributes: Attributes) -> Head {
    Head {
        e_tag: meta.e_tag.clone(),
        version_id: meta.version.clone(),
        size: meta.size,
        last_modified: Some(meta.last_modified),
        attributes,
        encryption: None,
    }
}

/// The `object_store` mode of a condition.
pub(crate) fn put_mode(key: &str, condition: &Condition) -> Result<PutMode> {
    Ok(match condition {
        Condition::None => PutMode::Overwrite,
        Condition::Create => PutMode::Create,
        Condition::IfMatch(e_tag) if e_tag.is_empty() => {
            return Err(Error::Config(format!(
                "{key}: the store gave no ETag, so a conditional write is impossible"
            )));
        }
        Condition::IfMatch(e_tag) => PutMode::Update(UpdateVersion {
            e_tag: Some(e_tag.clone()),
            version: None,
        }),
    })
}

/// Tags as `object_store` sends them.
pub(crate) fn tag_set(tags: &[(String, String)]) -> TagSet {
    let mut set = TagSet::default();
    for (k, v) in tags {
        set.push(k, v);
    }
    set
}

/// The error of a write: a failed precondition is a conflict naming the ETag expected.
pub(crate) fn conflict_or(key: &str, condition: &Condition, op: &'static str, e: object_store::Error) -> Error {
    match (e, condition) {
        (object_store::Error::Precondition { .. }, Condition::IfMatch(expected)) => Error::Conflict {
            key: key.to_string(),
            expected: expected.clone(),
        },
        (e, _) => Error::store(key, op, e),
    }
}
