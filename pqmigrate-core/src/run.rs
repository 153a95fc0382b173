//! Migrating a data set: the lease, the journal, the plan stream, the executor, cancellation and
//! the summary, in one call. The CLI, the benches and the Lambda adapter run migrations through
//! [`Migrator::run`]; an embedder does the same.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::executor::{Event, EventSink, Executor, Job, LocalExecutor, RunOptions};
use crate::identity::{host_name, new_run_id, now_rfc3339};
use crate::journal::{DEFAULT_JOURNAL_PREFIX, RunInfo};
use crate::lease::DEFAULT_LEASE_TTL;
use crate::migrate::MigrateOptions;
use crate::outcome::RunSummary;
use crate::plan::plan;
use crate::registry::Registry;
use crate::scan::{Candidates, ScanSpec};
use crate::session::{Session, SessionTerms};
use crate::store::Store;

/// How a run ended.
#[derive(Debug)]
pub struct RunReport {
    /// What was asked, as journaled.
    pub info: RunInfo,
    /// The totals, as journaled.
    pub summary: RunSummary,
    /// A failure of the run itself (the listing, the journal) that stopped it before every
    /// object was taken. The journal was finished all the same.
    pub failure: Option<Error>,
}

impl RunReport {
    /// Whether every object ended well and the run took them all.
    pub fn is_complete(&self) -> bool {
        self.failure.is_none() && !self.summary.cancelled && !self.summary.has_failures()
    }
}

/// A migration of a data set, configured with builder calls and started with
/// [`Migrator::run`].
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use pqmigrate_core::{MigrateOptions, Migrator, Registry, Status, Store};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = Store::memory();
/// let registry = Arc::new(Registry::from_steps([]).unwrap());
/// // Files with no recorded version are at version 1: nothing to do.
/// let report = Migrator::new(store, registry, MigrateOptions::new("orders", 1)).run().await.unwrap();
/// assert_eq!(report.summary.count(Status::Migrated), 0);
/// assert!(report.is_complete());
/// # });
/// ```
pub struct Migrator {
    store: Store,
    registry: Arc<Registry>,
    options: MigrateOptions,
    spec: ScanSpec,
    source: Candidates,
    executor: Arc<dyn Executor>,
    journal_prefix: String,
    lease_ttl: Duration,
    break_lease: bool,
    allow_table_files: bool,
    events: EventSink,
    cancel: CancellationToken,
    tool_version: String,
}

impl std::fmt::Debug for Migrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migrator")
            .field("store", &self.store.url())
            .field("options", &self.options)
            .field("spec", &self.spec)
            .field("journal_prefix", &self.journal_prefix)
            .finish_non_exhaustive()
    }
}

impl Migrator {
    /// A run of `options` over the whole store, with the local executor's defaults, the default
    /// journal prefix and lease time.
    pub fn new(store: Store, registry: Arc<Registry>, options: MigrateOptions) -> Self {
        Self {
            store,
            registry,
            options,
            spec: ScanSpec {
                concurrency: 32,
                ..ScanSpec::default()
            },
            source: Candidates::Listing,
            executor: Arc::new(LocalExecutor::default()),
            journal_prefix: DEFAULT_JOURNAL_PREFIX.to_string(),
            lease_ttl: DEFAULT_LEASE_TTL,
            break_lease: false,
            allow_table_files: false,
            events: Arc::new(|_| {}),
            cancel: CancellationToken::new(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// Which objects make up the data set.
    pub fn scan(mut self, spec: ScanSpec) -> Self {
        self.spec = spec;
        self
    }

    /// Where the keys come from (a listing by default, or a manifest's keys).
    pub fn candidates(mut self, source: Candidates) -> Self {
        self.source = source;
        self
    }

    /// The local executor with `options`.
    pub fn run_options(self, options: RunOptions) -> Self {
        self.executor(Arc::new(LocalExecutor::new(options)))
    }

    /// Another executor.
    pub fn executor(mut self, executor: Arc<dyn Executor>) -> Self {
        self.executor = executor;
        self
    }

    /// Where journals are kept (default `_pqmigrate/runs/`).
    pub fn journal_prefix(mut self, prefix: &str) -> Self {
        self.journal_prefix = prefix.to_string();
        self
    }

    /// How long the lease lives without renewal.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// Deletes whatever lease is there before taking it (an operator's override).
    pub fn break_lease(mut self, yes: bool) -> Self {
        self.break_lease = yes;
        self
    }

    /// Rewrites files even where the data set lies at or under a Delta Lake, Iceberg or Hudi
    /// table (refused by default: the table's metadata records each file's size, so a file
    /// rewritten in place breaks the table for its readers).
    pub fn allow_table_files(mut self, yes: bool) -> Self {
        self.allow_table_files = yes;
        self
    }

    /// Where progress events go.
    pub fn on_event(mut self, events: EventSink) -> Self {
        self.events = events;
        self
    }

    /// The version recorded in `run.json` (the adapter's own, by default the core's).
    pub fn tool_version(mut self, version: &str) -> Self {
        self.tool_version = version.to_string();
        self
    }

    /// A token that stops the run: no new objects are taken, running ones finish, the journal
    /// is finished and the lease released.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Runs the migration: takes the data set's lease, starts the journal, streams the plan
    /// through the executor, journals every object, and finishes the journal and releases the
    /// lease however the run ends (short of the process being killed).
    ///
    /// Before anything, the store's guarantees are probed ([`crate::transfer::checked`]): a store that
    /// ignores conditional writes or drops tags or metadata is refused.
    ///
    /// # Errors
    /// Failures before any object is taken: the store lacks a guarantee ([`Error::Config`]
    /// naming it), the lease is held by another run ([`Error::LeaseHeld`]), or the journal
    /// cannot be started. Failures after that are in [`RunReport::failure`].
    pub async fn run(self) -> Result<RunReport> {
        self.registry.check_target(&self.options.schema, self.options.target)?;
        let info = RunInfo {
            run_id: new_run_id(),
            started_at: now_rfc3339(),
            host: host_name(),
            store: self.store.url().to_string(),
            schema: self.options.schema.clone(),
            target: self.options.target,
            prefixes: self.spec.prefixes.clone(),
            suffix: self.spec.suffix.clone(),
            filter: self.spec.filter.clone(),
            shard: self.spec.shard.map(|s| format!("{}/{}", s.index, s.count)),
            tool_version: self.tool_version.clone(),
            rolls_back: None,
        };
        let terms = SessionTerms {
            ttl: self.lease_ttl,
            break_first: self.break_lease,
            allow_table_files: self.allow_table_files,
        };
        let mut session = Session::open(&self.store, Some(&self.journal_prefix), info, terms).await?;
        if let Some(stale) = session.took_over() {
            (self.events)(&Event::TookOverLease(Box::new(stale.clone())));
        }
        let (summary, failure) = self.execute(&mut session).await;
        let (info, summary, failure) = session.close(summary, failure).await;
        Ok(RunReport { info, summary, failure })
    }

    async fn execute(&self, session: &mut Session) -> (RunSummary, Option<Error>) {
        let store = session.store().clone();
        let cancel = self.cancel.clone();
        let lost = session.fence();
        let stop_on_loss = {
            let cancel = cancel.clone();
            let lost = lost.clone();
            tokio::spawn(async move {
                lost.cancelled().await;
                cancel.cancel();
            })
        };
        let planned = self.events.clone();
        let entries = plan(&store, self.registry.clone(), &self.options, &self.spec, &self.source)
            .inspect(move |entry| {
                if let Ok(entry) = entry {
                    planned(&Event::Planned(Box::new(entry.clone())));
                }
            })
            .boxed();
        let mut migrate = self.options.clone();
        migrate.run = Some(session.context());
        let job = Job {
            store,
            registry: self.registry.clone(),
            migrate,
            entries,
            events: self.events.clone(),
            cancel: cancel.clone(),
        };
        let mut records = self.executor.execute(job);
        let mut summary = session.new_summary();
        let mut failure = None;
        while let Some(result) = records.next().await {
            match result {
                Ok(record) => {
                    summary.add(&record);
                    if let Err(e) = session.record(&record).await {
                        // Keep the records buffered and stop taking objects; the final flush
                        // tries again.
                        cancel.cancel();
                        failure.get_or_insert(e);
                    }
                    (self.events)(&Event::Finished(Box::new(record)));
                }
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        stop_on_loss.abort();
        summary.cancelled = cancel.is_cancelled() || failure.is_some();
        summary.stopped_by = match (&failure, lost.is_cancelled(), cancel.is_cancelled()) {
            (Some(e), _, _) => Some(e.report()),
            (None, true, _) => Some(crate::lease::LEASE_LOST.into()),
            (None, false, true) => Some("cancelled".into()),
            (None, false, false) => None,
        };
        (summary, failure)
    }
}

#[cfg(test)]
mod tests;
