//! Undoing a run: every object the run migrated gets its previous content, tags and metadata
//! back, exactly, from the bucket's version history.

use std::sync::Arc;

use crate::store::object_path;
use futures::stream::{self, StreamExt};
use object_store::GetOptions;

use crate::error::{Error, Result};
use crate::journal::{Record, Status, read_run};
use crate::store::{ObjectInfo, Store};

/// Restores every object `run_id` migrated to the version it had before, with at most
/// `concurrency` objects at once. An object changed since the run is left alone and reported.
/// Each restore is one conditional write, so a concurrent writer is never overwritten.
///
/// Returns one record per object: [`Status::Migrated`] (restored; `from` is the run's version,
/// `to` the restored one) or [`Status::Failed`].
///
/// # Errors
/// [`Error::Config`] when the store keeps no versions (S3 with bucket versioning on is needed),
/// [`Error::Journal`] when the run cannot be read.
pub async fn rollback_run(
    store: &Store,
    journal_prefix: &str,
    run_id: &str,
    concurrency: usize,
) -> Result<Vec<Record>> {
    let api = store.s3_api().ok_or_else(|| {
        Error::Config(format!(
            "rollback needs an S3 bucket with versioning on; {} keeps no previous versions",
            store.url()
        ))
    })?;
    if !api.versioning_enabled().await? {
        return Err(Error::Config(format!(
            "rollback needs bucket versioning, and it is off for {}: the previous versions were not kept",
            store.url()
        )));
    }
    let journal = read_run(store, journal_prefix, run_id).await?;
    let migrated: Vec<Record> = journal
        .records
        .into_iter()
        .filter(|r| r.status == Status::Migrated)
        .collect();
    let store = Arc::new(store.clone());
    Ok(stream::iter(migrated)
        .map(|record| {
            let store = store.clone();
            async move {
                match restore(&store, &record).await {
                    Ok(restored) => restored,
                    Err(e) => Record {
                        from: record.to,
                        to: record.from,
                        ..Record::failed(&record.key, &e)
                    },
                }
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await)
}

async fn restore(store: &Store, record: &Record) -> Result<Record> {
    let key = record.key.as_str();
    let (Some(old_version), Some(new_version)) = (&record.old_version_id, &record.new_version_id) else {
        return Err(Error::Config(format!(
            "{key}: the journal has no version ids for it (bucket versioning was off during the run)"
        )));
    };
    let api = store.s3_api().expect("checked by rollback_run");
    let current = store
        .inner()
        .get_opts(
            &object_path(key)?,
            GetOptions {
                head: true,
                ..GetOptions::default()
            },
        )
        .await
        .map_err(|e| Error::store(key, "head", e))?;
    if current.meta.version.as_deref() != Some(new_version.as_str()) {
        return Err(Error::Conflict {
            key: key.to_string(),
            expected: format!(
                "version {new_version} written by the run, found {:?}",
                current.meta.version
            ),
        });
    }
    let old = store
        .inner()
        .get_opts(
            &object_path(key)?,
            GetOptions {
                version: Some(old_version.clone()),
                ..GetOptions::default()
            },
        )
        .await
        .map_err(|e| Error::store(key, "get previous version", e))?;
    let attributes = old.attributes.clone();
    let data = old
        .bytes()
        .await
        .map_err(|e| Error::store(key, "get previous version", e))?;
    let tags = api.get_tags_at(key, Some(old_version)).await?;
    let info = ObjectInfo {
        key: key.to_string(),
        e_tag: current.meta.e_tag.clone(),
        version_id: current.meta.version.clone(),
        size: current.meta.size,
        attributes,
        tags: Some(tags.clone()),
    };
    let bytes = data.len() as u64;
    let written = store.write_if_unchanged(&info, data, &tags).await?;
    Ok(Record {
        from: record.to,
        to: record.from,
        old_e_tag: info.e_tag,
        new_e_tag: written.e_tag,
        old_version_id: info.version_id,
        new_version_id: written.version_id,
        bytes_out: bytes,
        attempts: 1,
        ..Record::new(key, Status::Migrated)
    })
}
