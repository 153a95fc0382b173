//! A run session: what every writer of a data set does before its first write and after its
//! last, in one place. Opening one probes the store's guarantees, takes the data set's lease
//! with the writer's claim (exclusive, or one shard of a split) and starts the run's journal;
//! closing it finishes the journal with the run's totals and releases the lease however the
//! run ended. A run, a rollback, a stamp and the first step of a Lambda run all open one, so
//! one data set has one writer at a time whatever writes it.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::intent::RunContext;
use crate::journal::{JournalWriter, RunInfo};
use crate::lease::{self, Claim, Lease, LeaseInfo, lease_key};
use crate::outcome::{Record, RunSummary};
use crate::store::Store;
use crate::table_format::refuse_tables;
use crate::transfer::checked;

/// How a session opens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionTerms {
    /// How long the claim lives without renewal.
    pub(crate) ttl: Duration,
    /// Delete whatever lease is there first (an operator's override).
    pub(crate) break_first: bool,
    /// Write even where the data set lies in a Delta Lake, Iceberg or Hudi table (an operator's
    /// override); a rollback undoes what a run wrote, and is never refused for it.
    pub(crate) allow_table_files: bool,
}

/// An open run session: the checked store, the held lease and the journal being written.
#[derive(Debug)]
pub(crate) struct Session {
    store: Store,
    info: RunInfo,
    lease: Lease,
    journal: Option<JournalWriter>,
    started: Instant,
    retries_before: u64,
}

impl Session {
    /// Opens a session for `info`: probes `store` (refusing one that lacks a guarantee), refuses
    /// a data set at or under a table format's table (unless allowed), takes the data set's
    /// lease with the run's claim, and starts the journal under `journal_prefix` (no journal
    /// when `None`: a stamp records versions, not a run).
    ///
    /// # Errors
    /// The store lacks a guarantee or the data set is a table's ([`Error::Config`]), another
    /// writer holds the data set ([`Error::LeaseHeld`]), or the journal cannot be started (the
    /// lease is released).
    pub(crate) async fn open(
        store: &Store,
        journal_prefix: Option<&str>,
        info: RunInfo,
        terms: SessionTerms,
    ) -> Result<Self> {
        let started = Instant::now();
        let store = checked(store.clone()).await?;
        if !terms.allow_table_files && info.rolls_back.is_none() {
            refuse_tables(&store, &info.prefixes).await?;
        }
        let key = lease_key(&info.schema);
        if terms.break_first {
            lease::break_lease(&store, &key).await?;
        }
        let claim = Claim::of_run(info.target, info.shard.as_deref(), info.rolls_back.is_some());
        let lease = Lease::acquire(&store, &key, claim, &info.run_id, &info.started_at, terms.ttl).await?;
        let journal = match journal_prefix {
            None => None,
            Some(prefix) => match JournalWriter::start(&store, prefix, &info).await {
                Ok(journal) => Some(journal),
                Err(e) => {
                    let _ = lease.release().await;
                    return Err(e);
                }
            },
        };
        tracing::info!(
            run_id = %info.run_id,
            store = %store.url(),
            schema = %info.schema,
            target = info.target,
            shard = info.shard.as_deref().unwrap_or(""),
            "{} begun",
            if info.rolls_back.is_some() { "rollback" } else { "run" }
        );
        Ok(Self {
            retries_before: store.request_retries(),
            store,
            info,
            lease,
            journal,
            started,
        })
    }

    /// The checked store to write with.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// A lapsed claim removed when the lease was taken.
    pub(crate) fn took_over(&self) -> Option<&LeaseInfo> {
        self.lease.took_over.as_ref()
    }

    /// Cancelled when the lease is no longer certainly this run's: nothing may be written after.
    pub(crate) fn fence(&self) -> CancellationToken {
        self.lease.lost()
    }

    /// What each object's write names and journals (run id, intent log, fence).
    ///
    /// # Panics
    /// On a session opened without a journal.
    pub(crate) fn context(&self) -> RunContext {
        let journal = self.journal.as_ref().expect("a session with a journal");
        RunContext {
            run_id: self.info.run_id.clone(),
            intents: journal.intent_log(),
            fence: self.lease.lost(),
        }
    }

    /// Totals to add the run's records to.
    pub(crate) fn new_summary(&self) -> RunSummary {
        RunSummary {
            run_id: self.info.run_id.clone(),
            ..RunSummary::default()
        }
    }

    /// Journals one object's outcome (buffered; written in parts).
    ///
    /// # Errors
    /// [`Error::Journal`]; the record stays buffered for the final flush.
    pub(crate) async fn record(&mut self, record: &Record) -> Result<()> {
        let status = record.status();
        if let Some((_, problem)) = record.outcome.problem(&record.key) {
            tracing::info!(run_id = %self.info.run_id, key = %record.key, status = status.name(), millis = record.millis, "{problem}");
        } else {
            tracing::debug!(run_id = %self.info.run_id, key = %record.key, status = status.name(), millis = record.millis, "object done");
        }
        match &mut self.journal {
            Some(journal) => journal.record(record).await,
            None => Ok(()),
        }
    }

    /// Closes the session: the summary's request retries and duration filled in, the journal
    /// finished with it, the lease released (one that cannot be released lapses at its TTL).
    /// A failure to finish the journal joins `failure`.
    pub(crate) async fn close(
        self,
        mut summary: RunSummary,
        mut failure: Option<Error>,
    ) -> (RunInfo, RunSummary, Option<Error>) {
        summary.request_retries = self.store.request_retries() - self.retries_before;
        summary.elapsed_ms = self.started.elapsed().as_millis() as u64;
        if let Some(journal) = self.journal
            && let Err(e) = journal.finish(&summary).await
        {
            failure.get_or_insert(e);
        }
        tracing::info!(
            run_id = %self.info.run_id,
            elapsed_ms = summary.elapsed_ms,
            objects = summary.by_status.total(),
            needs_attention = summary.failures.len(),
            request_retries = summary.request_retries,
            "closed"
        );
        let key = self.lease.key().to_string();
        if let Err(e) = self.lease.release().await {
            // The run itself is over and journaled; the claim lapses at its TTL.
            tracing::warn!(
                "{key}: the lease could not be released, it lapses at its TTL: {}",
                e.report()
            );
        }
        (self.info, summary, failure)
    }

    /// Leaves the session open for other processes (a detached run's invocations): the claim
    /// stays until its TTL or [`lease::release_held_by`], the journal is resumed by them.
    pub(crate) async fn detach(self) {
        self.lease.detach().await;
    }
}
