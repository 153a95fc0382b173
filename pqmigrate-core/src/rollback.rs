//! Undoing a run: every object the run migrated gets its previous content, tags, metadata and
//! storage class back from the bucket's version history. A rollback is itself a run: it holds
//! the data set's lease, journals each restore's intent before the write and its outcome after
//! (so `status` lists it), names itself in every object it writes, streams each object through
//! the same conditional upload as a migration (multipart above the threshold, so objects over
//! 5 GiB too), refuses objects changed since the run, and can be repeated: an object an earlier
//! rollback of the same run restored is reported as already restored. Runs are undone newest
//! first: a version a rollback of a later run put back, the one this run wrote, is this run's.

mod writers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::StreamExt;

use crate::changes::stream_changes;
use crate::error::{Error, Result};
use crate::identity::{host_name, new_run_id, now_rfc3339};
use crate::intent::{RUN_METADATA, RunContext};
use crate::journal::{JournalReader, RunInfo, list_runs, open_run};
use crate::lease::DEFAULT_LEASE_TTL;
use crate::migrate::written_by;
use crate::outcome::{Migrated, Outcome, Record, RunSummary};
use crate::run::RunReport;
use crate::session::{Session, SessionTerms};
use crate::store::{ObjectInfo, ReadOptions, Store, metadata};
use crate::transfer::ConditionalUpload;
use writers::{Writer, Writers};

/// Bytes of the previous version read at a time while it is copied back.
const RESTORE_CHUNK: u64 = 8 * 1024 * 1024;

/// How a rollback runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RollbackOptions {
    /// Objects restored at once.
    pub concurrency: usize,
    /// Delete whatever lease holds the data set first (an operator's override).
    pub break_lease: bool,
    /// How long the rollback's lease lives without renewal.
    pub lease_ttl: Duration,
}

crate::setters::setters!(RollbackOptions {
    val concurrency: usize,
    val break_lease: bool,
    val lease_ttl: Duration,
});

impl Default for RollbackOptions {
    fn default() -> Self {
        Self {
            concurrency: 8,
            break_lease: false,
            lease_ttl: DEFAULT_LEASE_TTL,
        }
    }
}

/// What a rollback did: its own run (journaled, listed by `status`), and how it ended.
pub type RollbackReport = RunReport;

/// Restores every object `run_id` migrated to the version it had before, under the data set's
/// lease (so no run migrates it meanwhile), with at most `options.concurrency` objects at once.
/// An object changed since the run is left alone and reported, naming what was found. Each
/// restore is one conditional write, so a concurrent writer is never overwritten.
///
/// # Errors
/// [`Error::Config`] when the store keeps no versions (S3 with bucket versioning on, or local
/// disk, is needed),
/// [`Error::Journal`] when the run cannot be read, [`Error::LeaseHeld`] when a run holds the
/// data set.
pub async fn rollback_run(
    store: &Store,
    journal_prefix: &str,
    run_id: &str,
    options: &RollbackOptions,
) -> Result<RollbackReport> {
    if !store.capabilities().versions {
        return Err(Error::Config(format!(
            "rollback reads the previous object versions, which an S3 bucket with versioning on and local disk keep for it; {} keeps no previous versions",
            store.url()
        )));
    }
    if !store.versioning_enabled().await? {
        return Err(Error::Config(format!(
            "rollback needs bucket versioning, and it is off for {}: the previous versions were not kept",
            store.url()
        )));
    }
    let journal = open_run(store, journal_prefix, run_id).await?;
    let info = RunInfo {
        run_id: new_run_id(),
        started_at: now_rfc3339(),
        host: host_name(),
        rolls_back: Some(run_id.to_string()),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        ..journal.info.clone()
    };
    let terms = SessionTerms {
        ttl: options.lease_ttl,
        break_first: options.break_lease,
        allow_table_files: true,
    };
    let mut session = Session::open(store, Some(journal_prefix), info, terms).await?;
    let (summary, failure) = restore_all(&mut session, journal_prefix, &journal, options).await;
    let (info, summary, failure) = session.close(summary, failure).await;
    Ok(RunReport { info, summary, failure })
}

/// Restores every object the run wrote, journaling each outcome; returns the totals and what
/// stopped the rollback early, if anything did.
async fn restore_all(
    session: &mut Session,
    journal_prefix: &str,
    journal: &JournalReader,
    options: &RollbackOptions,
) -> (RunSummary, Option<Error>) {
    let store = &session.store().clone();
    let mut summary = session.new_summary();
    let mut failure = None;
    // Objects a rollback wrote carry its run id: an earlier rollback of the same run, or one of
    // a later run that put this run's version back.
    let writers = list_runs(store, journal_prefix)
        .await
        .map(|runs| Writers::new(store, journal_prefix, &journal.info.run_id, runs));
    match writers {
        Ok(writers) => {
            let context = session.context();
            let writers = Arc::new(writers);
            // Every object the run wrote, streamed: the recorded ones and those only its
            // intents and the objects' own metadata tell of.
            let mut records = stream_changes(store, journal, options.concurrency)
                .map(|change| {
                    let (context, writers) = (context.clone(), writers.clone());
                    async move {
                        let record = match change {
                            Ok(change) => change.into_record(),
                            Err(e) => return Err(e),
                        };
                        let started = Instant::now();
                        let mut done = match restore(store, &record, &context, &writers).await {
                            Ok(done) => done,
                            Err(e) => Record {
                                from: record.migrated().map(|m| m.to),
                                ..Record::failed(&record.key, &e)
                            },
                        };
                        done.attempts = 1;
                        done.millis = started.elapsed().as_millis() as u64;
                        Ok(done)
                    }
                })
                .buffer_unordered(options.concurrency.max(1));
            while let Some(record) = records.next().await {
                match record {
                    Ok(record) => {
                        summary.add(&record);
                        if let Err(e) = session.record(&record).await {
                            failure.get_or_insert(e);
                        }
                    }
                    // The journal or the store could not tell what the run wrote: stop there.
                    Err(e) => {
                        failure.get_or_insert(e);
                        break;
                    }
                }
            }
        }
        Err(e) => {
            failure = Some(e);
        }
    }
    let lost = session.fence().is_cancelled();
    summary.cancelled = failure.is_some() || lost;
    summary.stopped_by = match (&failure, lost) {
        (Some(e), _) => Some(e.report()),
        (None, true) => Some(crate::lease::LEASE_LOST.into()),
        (None, false) => None,
    };
    (summary, failure)
}

/// Restores one object the run wrote, or says why not.
async fn restore(store: &Store, record: &Record, context: &RunContext, writers: &Writers) -> Result<Record> {
    let key = record.key.as_str();
    let run = record.migrated().expect("only migrated records are restored");
    let (Some(old_version), Some(new_version)) = (&run.old_version_id, &run.new_version_id) else {
        return Err(Error::Config(format!(
            "{key}: the journal has no version ids for it (bucket versioning was off during the run)"
        )));
    };
    let restored_version = record.from.unwrap_or(1);
    let current = store.head(key).await?;
    let writer = metadata(&current.attributes, RUN_METADATA);
    let by = match writer {
        _ if current.version_id.as_deref() == Some(new_version.as_str()) => Writer::ThisRun,
        Some(w) if w == context.run_id => Writer::Restored,
        Some(w) => writers.of(key, w, new_version).await?,
        None => Writer::Other,
    };
    match by {
        Writer::ThisRun => {}
        Writer::Restored => return Ok(Record::new(key, Some(restored_version), Outcome::AtTarget)),
        Writer::Other => {
            return Err(Error::Conflict {
                key: key.to_string(),
                expected: format!(
                    "version {new_version} written by the run, found version {} (written by {}); not restored",
                    current.version_id.as_deref().unwrap_or("?"),
                    writer.unwrap_or("another writer")
                ),
            });
        }
    }
    let old = store.head_version(key, old_version).await?;
    let tags = store.tags_at(key, Some(old_version)).await?.unwrap_or_default();
    context.check_fence(key)?;
    let attempt_id = context
        .record_intent(
            key,
            current.e_tag.clone(),
            current.version_id.clone(),
            run.to,
            restored_version,
        )
        .await?;
    let mut attributes = old.attributes.clone();
    context.name_in(&mut attributes, &attempt_id);
    let target = ObjectInfo {
        key: key.to_string(),
        e_tag: current.e_tag.clone(),
        version_id: current.version_id.clone(),
        size: old.size,
        attributes,
        tags: Some(tags.clone()),
        encryption: old.encryption.clone(),
    };
    let mut upload = ConditionalUpload::new(store, &target, &tags)?;
    let copied = copy_version(store, key, old_version, old.size, &mut upload).await;
    let checked = copied.and_then(|()| context.check_fence(key));
    if let Err(e) = checked {
        upload.abort().await;
        return Err(e);
    }
    let bytes_out = upload.bytes();
    let written = match upload.finish().await {
        Ok(written) => written,
        // The write may have landed with its answer lost (a retry then fails its own
        // precondition): the object's metadata tells whether it is this restore's.
        Err(e) => match written_by(store, key, &attempt_id).await {
            Some(written) => written,
            None => return Err(e),
        },
    };
    Ok(Record::new(
        key,
        Some(run.to),
        Outcome::Migrated(Box::new(Migrated {
            to: restored_version,
            old_e_tag: current.e_tag,
            new_e_tag: written.e_tag,
            old_version_id: current.version_id,
            new_version_id: written.version_id,
            bytes_in: old.size,
            bytes_out,
            attempt_id: Some(attempt_id),
            ..Migrated::default()
        })),
    ))
}

/// Streams version `version_id` of `key` (`size` bytes) into `upload`, a chunk at a time.
async fn copy_version(
    store: &Store,
    key: &str,
    version_id: &str,
    size: u64,
    upload: &mut ConditionalUpload,
) -> Result<()> {
    let mut offset = 0;
    while offset < size {
        let end = (offset + RESTORE_CHUNK).min(size);
        let options = ReadOptions {
            range: Some(offset..end),
            version_id: Some(version_id.to_string()),
            ..ReadOptions::default()
        };
        let (_, chunk) = store.get(key, options).await?;
        if chunk.len() as u64 != end - offset {
            return Err(Error::Config(format!(
                "{key}: version {version_id} gave {} bytes for range {offset}..{end}",
                chunk.len()
            )));
        }
        upload.push(chunk).await?;
        offset = end;
    }
    Ok(())
}
