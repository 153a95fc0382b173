//! A run whose objects are migrated by other processes, each a short one (the invocations of a
//! Step Functions Map on Lambda): begun by one call, which takes the data set's lease for the
//! run's whole life and writes `run.json`; each object's intent and record written by the
//! invocation that migrates it, as journal objects of their own; and closed by one call, which
//! writes `summary.json` from the records and releases the lease. `status` and `rollback` read
//! such a run exactly as a run of one process.
//!
//! Every invocation checks that the lease still names the run before it writes, so a run that
//! was closed, whose lease lapsed or was broken, writes nothing more.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;

use crate::error::{Error, Result};
use crate::intent::{Intent, IntentLog, RunContext, new_attempt_id};
use crate::journal::{JournalWriter, RunInfo, create_journal_object, open_run, run_dir};
use crate::lease::{lease_holders, lease_key, release_held_by};
use crate::outcome::{Record, RunSummary};
use crate::session::{Session, SessionTerms};
use crate::store::Store;

/// Begins a detached run: opens its session (the store probed, the data set's lease taken for
/// `ttl`, not renewed: it must outlive the whole Map; [`close`] releases it) and writes
/// `run.json`. A data set at or under a Delta Lake, Iceberg or Hudi table is refused unless
/// `allow_table_files`.
///
/// The returned [`Begun`] journals the objects the run leaves out (at target, missing a step,
/// unreadable) as its scan finds them.
///
/// # Errors
/// [`Error::LeaseHeld`] when another writer holds the data set; store and journal errors.
pub async fn begin(
    store: &Store,
    prefix: &str,
    info: &RunInfo,
    ttl: Duration,
    allow_table_files: bool,
) -> Result<Begun> {
    let terms = SessionTerms {
        ttl,
        break_first: false,
        allow_table_files,
    };
    Session::open(store, Some(prefix), info.clone(), terms)
        .await?
        .detach()
        .await;
    Ok(Begun {
        journal: JournalWriter::resume(store, prefix, &info.run_id),
    })
}

/// A detached run just begun, whose scan records the objects it leaves out.
#[derive(Debug)]
pub struct Begun {
    journal: JournalWriter,
}

impl Begun {
    /// Journals an object the run leaves out, with why (written in parts as they gather).
    ///
    /// # Errors
    /// [`Error::Journal`].
    pub async fn record_left_out(&mut self, record: &Record) -> Result<()> {
        self.journal.record(record).await
    }

    /// Writes what is gathered, once the scan is done.
    ///
    /// # Errors
    /// [`Error::Journal`]; the records stay gathered for another try.
    pub async fn flush(&mut self) -> Result<()> {
        self.journal.flush().await
    }
}

/// Gives the data set back after a detached run could not be handed out (its scan failed): its
/// claim on the lease is removed, so a retried scan can begin a new run.
///
/// # Errors
/// Store errors, or an unreadable lease.
pub async fn abandon(store: &Store, info: &RunInfo) -> Result<()> {
    release_held_by(store, &lease_key(&info.schema), &info.run_id).await
}

/// The context in which one invocation migrates an object of the run `run_id` of `schema`:
/// its intents go to the run's journal, its object names the run. Checked first: the lease
/// must still name the run and not have lapsed.
///
/// # Errors
/// [`Error::Cancelled`] when the run no longer holds its lease; store errors.
pub async fn context(store: &Store, prefix: &str, run_id: &str, schema: &str) -> Result<RunContext> {
    let key = lease_key(schema);
    let holders = lease_holders(store, &key).await?;
    match holders.iter().find(|(holder, _)| holder.run_id == run_id) {
        Some((_, false)) => {}
        mine => {
            let why = match (mine, holders.iter().find(|(_, lapsed)| !lapsed)) {
                (Some(_), _) => "its claim lapsed".to_string(),
                (None, Some((holder, _))) => format!("run {} holds it", holder.run_id),
                (None, None) => "it is released or gone (the run was closed or the lease broken)".to_string(),
            };
            return Err(Error::Cancelled {
                reason: format!("run {run_id} no longer holds the lease {key}: {why}"),
            });
        }
    }
    Ok(RunContext {
        run_id: run_id.to_string(),
        intents: Arc::new(ObjectIntentLog {
            store: store.clone(),
            dir: run_dir(prefix, run_id),
        }),
        fence: crate::CancellationToken::new(),
    })
}

/// Writes one object's record into the run's journal (a journal object of its own).
///
/// # Errors
/// [`Error::Journal`].
pub async fn record(store: &Store, prefix: &str, run_id: &str, record: &Record) -> Result<()> {
    let name = record
        .migrated()
        .and_then(|m| m.attempt_id.clone())
        .unwrap_or_else(new_attempt_id);
    let mut line = serde_json::to_string(record).expect("serializable");
    line.push('\n');
    create_journal_object(
        store,
        &format!("{}/part-o-{name}.jsonl", run_dir(prefix, run_id)),
        line.into(),
    )
    .await
}

/// Closes the run: its summary from every record written, `summary.json` written and the lease
/// released. `expected` is how many records the run should hold (the objects handed out and
/// those the scan recorded as left out); when fewer are there, the summary says how many
/// objects ended without one. Closing twice gives the same summary.
///
/// # Errors
/// [`Error::Journal`] when the run does not exist; store errors.
pub async fn close(store: &Store, prefix: &str, run_id: &str, expected: Option<u64>) -> Result<RunSummary> {
    let journal = open_run(store, prefix, run_id).await?;
    if let Some(summary) = &journal.summary {
        return Ok(summary.clone());
    }
    let mut summary = RunSummary {
        run_id: run_id.to_string(),
        ..RunSummary::default()
    };
    let mut records = journal.records();
    let mut recorded = 0u64;
    while let Some(record) = records.try_next().await? {
        recorded += 1;
        summary.add(&record);
    }
    if let Some(expected) = expected
        && expected > recorded
    {
        let missing = expected - recorded;
        summary.cancelled = true;
        summary.stopped_by = Some(format!(
            "{missing} of {expected} objects have no record (their executions ended outside the handler)"
        ));
        summary
            .failures
            .push((String::new(), format!("{missing} objects ended without a record")));
    }
    create_journal_object(
        store,
        &format!("{}/summary.json", run_dir(prefix, run_id)),
        serde_json::to_vec_pretty(&summary).expect("serializable").into(),
    )
    .await?;
    let info = &journal.info;
    release_held_by(store, &lease_key(&info.schema), run_id).await?;
    Ok(summary)
}

/// Intents written one journal object each, named by their attempt: any number of processes
/// may write them at once.
#[derive(Debug)]
struct ObjectIntentLog {
    store: Store,
    dir: String,
}

#[async_trait]
impl IntentLog for ObjectIntentLog {
    async fn record(&self, intent: Intent) -> Result<()> {
        let mut line = serde_json::to_string(&intent).expect("serializable");
        line.push('\n');
        create_journal_object(
            &self.store,
            &format!("{}/intents-o-{}.jsonl", self.dir, intent.attempt_id),
            line.into(),
        )
        .await
    }
}
