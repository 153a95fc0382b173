//! The `object_store` plumbing the backends share, as plain functions: conversions between the
//! seam's types and `object_store`'s, reads, listings pages, deletes, and the errors every backend
//! gives for what it cannot do.

use std::collections::BTreeSet;

use bytes::Bytes;
use futures::StreamExt;
use object_store::{Attributes, GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, UpdateVersion};

use super::io::{Condition, Head, ListPage, Listed, ReadOptions};
use super::object_path;
use crate::error::{Error, Result};

/// Keys a listing page holds when the caller sets no size.
const PAGE: usize = 1000;

/// One page of the keys starting with `prefix` (a raw string): the prefix's directory is listed
/// (path listings work on whole segments) and the keys that start with the raw prefix kept. A
/// page is the `max_keys` smallest keys after the token, whatever order the store lists in.
/// `e_tag` gives the ETag the seam reports for a listed object.
pub(crate) async fn list_page(
    store: &dyn ObjectStore,
    prefix: &str,
    page: Option<String>,
    max_keys: Option<usize>,
    e_tag: fn(ObjectMeta) -> Option<String>,
) -> Result<ListPage> {
    let size = max_keys.unwrap_or(PAGE).max(1);
    let dir = prefix.rfind('/').map(|i| &prefix[..i]).unwrap_or("");
    let dir = (!dir.is_empty()).then(|| object_path(dir)).transpose()?;
    let mut listing = store.list(dir.as_ref());
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
        let bytes = meta.size;
        smallest.insert((key, bytes, e_tag(meta)));
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

/// The error of a create that found the key taken.
pub(crate) fn already_exists(key: &str) -> Error {
    Error::store(
        key,
        "put",
        object_store::Error::AlreadyExists {
            path: key.to_string(),
            source: "the object exists".into(),
        },
    )
}

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

/// HTTP client options for a cloud client: plain HTTP allowed for an `http://` endpoint (an
/// emulator on loopback).
#[cfg(any(feature = "gcs", feature = "azure"))]
pub(crate) fn client_options(endpoint: Option<&str>) -> object_store::ClientOptions {
    object_store::ClientOptions::new().with_allow_http(endpoint.is_some_and(|e| e.starts_with("http://")))
}
