//! Undoing a run: every object the run migrated gets its previous content, tags and metadata
//! back, exactly, from the bucket's version history.

use std::sync::Arc;

use futures::stream::{self, StreamExt};

use crate::changes::run_changes;
use crate::error::{Error, Result};
use crate::identity::{new_run_id, now_rfc3339};
use crate::journal::read_run;
use crate::lease::{DEFAULT_LEASE_TTL, Lease, break_lease, lease_key};
use crate::outcome::{Migrated, Outcome, Record};
use crate::store::{ObjectInfo, ReadOptions, Store};

/// How a rollback runs.
#[derive(Debug, Clone)]
pub struct RollbackOptions {
    /// Objects restored at once.
    pub concurrency: usize,
    /// Delete whatever lease holds the data set first (an operator's override).
    pub break_lease: bool,
}

impl Default for RollbackOptions {
    fn default() -> Self {
        Self {
            concurrency: 8,
            break_lease: false,
        }
    }
}

/// Restores every object `run_id` migrated to the version it had before, under the data set's
/// lease (so no run migrates it meanwhile), with at most `options.concurrency` objects at once. An object changed since the run is left alone and reported.
/// Each restore is one conditional write, so a concurrent writer is never overwritten.
///
/// Returns one record per object: [`Outcome::Migrated`] (restored; `from` is the run's version,
/// `to` the restored one) or [`Outcome::Failed`].
///
/// # Errors
/// [`Error::Config`] when the store keeps no versions (S3 with bucket versioning on is needed),
/// [`Error::Journal`] when the run cannot be read.
pub async fn rollback_run(
    store: &Store,
    journal_prefix: &str,
    run_id: &str,
    options: &RollbackOptions,
) -> Result<Vec<Record>> {
    if !store.capabilities().versions {
        return Err(Error::Config(format!(
            "rollback needs an S3 bucket with versioning on; {} keeps no previous versions",
            store.url()
        )));
    }
    if !store.versioning_enabled().await? {
        return Err(Error::Config(format!(
            "rollback needs bucket versioning, and it is off for {}: the previous versions were not kept",
            store.url()
        )));
    }
    let journal = read_run(store, journal_prefix, run_id).await?;
    let key = lease_key(&journal.info.schema, journal.info.shard.as_deref());
    if options.break_lease {
        break_lease(store, &key).await?;
    }
    let rollback_id = format!("rollback-{}", new_run_id());
    let lease = Lease::acquire(store, &key, &rollback_id, &now_rfc3339(), DEFAULT_LEASE_TTL).await?;
    // Every object the run wrote: the recorded ones and those only its intents and the
    // objects' own metadata tell of.
    let migrated: Vec<Record> = match run_changes(store, &journal, options.concurrency).await {
        Ok(changes) => changes.all().cloned().collect(),
        Err(e) => {
            let _ = lease.release().await;
            return Err(e);
        }
    };
    let store = Arc::new(store.clone());
    let records = stream::iter(migrated)
        .map(|record| {
            let store = store.clone();
            async move {
                match restore(&store, &record).await {
                    Ok(restored) => restored,
                    Err(e) => Record {
                        from: record.migrated().map(|m| m.to),
                        ..Record::failed(&record.key, &e)
                    },
                }
            }
        })
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    lease.release().await?;
    Ok(records)
}

async fn restore(store: &Store, record: &Record) -> Result<Record> {
    let key = record.key.as_str();
    let run = record.migrated().expect("only migrated records are restored");
    let (Some(old_version), Some(new_version)) = (&run.old_version_id, &run.new_version_id) else {
        return Err(Error::Config(format!(
            "{key}: the journal has no version ids for it (bucket versioning was off during the run)"
        )));
    };
    let current = store.head(key).await?;
    if current.version_id.as_deref() != Some(new_version.as_str()) {
        return Err(Error::Conflict {
            key: key.to_string(),
            expected: format!(
                "version {new_version} written by the run, found {:?}",
                current.version_id
            ),
        });
    }
    let previous = ReadOptions {
        version_id: Some(old_version.clone()),
        ..ReadOptions::default()
    };
    let (old, data) = store.get(key, previous).await?;
    let tags = store.tags_at(key, Some(old_version)).await?.unwrap_or_default();
    let info = ObjectInfo {
        key: key.to_string(),
        e_tag: current.e_tag.clone(),
        version_id: current.version_id.clone(),
        size: current.size,
        attributes: old.attributes,
        tags: Some(tags.clone()),
    };
    let bytes = data.len() as u64;
    let written = store.write_if_unchanged(&info, data, &tags).await?;
    Ok(Record {
        attempts: 1,
        ..Record::new(
            key,
            Some(run.to),
            Outcome::Migrated(Box::new(Migrated {
                to: record.from.unwrap_or(1),
                old_e_tag: current.e_tag,
                new_e_tag: written.e_tag,
                old_version_id: current.version_id,
                new_version_id: written.version_id,
                bytes_out: bytes,
                ..Migrated::default()
            })),
        )
    })
}
