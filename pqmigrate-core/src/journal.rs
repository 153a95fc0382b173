//! The run journal: what happened to each object, kept as JSON lines in the store itself so that
//! `status` and `rollback` work from any machine.
//!
//! Layout under the journal prefix (default `_pqmigrate/runs/`):
//! `<run-id>/run.json` (what was asked), `<run-id>/part-00001.jsonl`... (one record per object,
//! written in batches while the run goes, so a crash loses at most the last batch), and
//! `<run-id>/summary.json` once the run ends.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::migrate::{Migrated, Outcome};
use crate::migration::StepId;
use crate::store::Store;
use crate::store::{object_path, retry_transient, transient_store_error};

/// Default journal prefix.
pub const DEFAULT_JOURNAL_PREFIX: &str = "_pqmigrate/runs/";

const RECORDS_PER_PART: usize = 1000;
const PART_INTERVAL: Duration = Duration::from_secs(5);
/// Rounds of request retries before a journal write is given up: a lost journal would lose the
/// record of what the run changed.
const JOURNAL_ROUNDS: u32 = 5;
const JOURNAL_PAUSE: Duration = Duration::from_secs(1);

/// What a run was asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Run id (sortable by start time).
    pub run_id: String,
    /// Start time, RFC 3339.
    pub started_at: String,
    /// Host the run ran on.
    pub host: String,
    /// Store URL.
    pub store: String,
    /// Schema id.
    pub schema: String,
    /// Target version.
    pub target: u32,
    /// Prefixes scanned.
    pub prefixes: Vec<String>,
    /// Key suffix.
    pub suffix: String,
    /// Base name filter.
    pub filter: String,
    /// Shard `i/n`, if any.
    pub shard: Option<String>,
    /// pqmigrate version.
    pub tool_version: String,
}

/// How one object ended in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Rewritten to a new version.
    Migrated,
    /// Already at the target.
    AtTarget,
    /// Above the target; left alone.
    AheadOfTarget,
    /// A step is missing.
    MissingStep,
    /// Tagged as another schema; left alone.
    OtherSchema,
    /// Failed; the object is unchanged.
    Failed,
}

impl Status {
    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            Status::Migrated => "migrated",
            Status::AtTarget => "at_target",
            Status::AheadOfTarget => "ahead_of_target",
            Status::MissingStep => "missing_step",
            Status::OtherSchema => "other_schema",
            Status::Failed => "failed",
        }
    }

    /// Whether this outcome makes the run exit non-zero.
    pub fn is_failure(self) -> bool {
        matches!(self, Status::Failed | Status::MissingStep)
    }
}

/// One object's line in the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Object key.
    pub key: String,
    /// How it ended.
    pub status: Status,
    /// Version before, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u32>,
    /// Version after, when migrated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<u32>,
    /// Steps applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepId>,
    /// Fingerprints of the steps applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fingerprints: Vec<String>,
    /// ETag before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_e_tag: Option<String>,
    /// ETag after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_e_tag: Option<String>,
    /// Version id before (versioned buckets): what `rollback` restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_version_id: Option<String>,
    /// Version id after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_version_id: Option<String>,
    /// Bytes read.
    #[serde(default)]
    pub bytes_in: u64,
    /// Bytes written.
    #[serde(default)]
    pub bytes_out: u64,
    /// Rows rewritten.
    #[serde(default)]
    pub rows: u64,
    /// Milliseconds spent, all attempts.
    #[serde(default)]
    pub millis: u64,
    /// Attempts made.
    #[serde(default)]
    pub attempts: u32,
    /// Error kind ([`Error::kind`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    /// Error message, naming the object and the cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Record {
    /// A record with only key and status.
    pub fn new(key: &str, status: Status) -> Self {
        Self {
            key: key.to_string(),
            status,
            from: None,
            to: None,
            steps: Vec::new(),
            fingerprints: Vec::new(),
            old_e_tag: None,
            new_e_tag: None,
            old_version_id: None,
            new_version_id: None,
            bytes_in: 0,
            bytes_out: 0,
            rows: 0,
            millis: 0,
            attempts: 0,
            error_kind: None,
            error: None,
        }
    }

    /// The record of an outcome.
    pub fn from_outcome(key: &str, outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Done(m) => Self::migrated(m),
            Outcome::AlreadyAtTarget { version } => Self {
                from: Some(*version),
                ..Self::new(key, Status::AtTarget)
            },
            Outcome::AheadOfTarget { version } => Self {
                from: Some(*version),
                ..Self::new(key, Status::AheadOfTarget)
            },
            Outcome::MissingMigrationStep { version, from, to } => Self {
                from: Some(*version),
                error_kind: Some("MissingMigrationStep".into()),
                error: Some(format!("{key}: missing migration step {from}->{to}")),
                ..Self::new(key, Status::MissingStep)
            },
        }
    }

    fn migrated(m: &Migrated) -> Self {
        Self {
            from: Some(m.from),
            to: Some(m.to),
            steps: m.steps.clone(),
            fingerprints: m.fingerprints.clone(),
            old_e_tag: m.old_e_tag.clone(),
            new_e_tag: m.new_e_tag.clone(),
            old_version_id: m.old_version_id.clone(),
            new_version_id: m.new_version_id.clone(),
            bytes_in: m.bytes_in,
            bytes_out: m.bytes_out,
            rows: m.rows,
            millis: m.millis,
            ..Self::new(&m.key, Status::Migrated)
        }
    }

    /// The record of a failure.
    pub fn failed(key: &str, error: &Error) -> Self {
        Self {
            error_kind: Some(error.kind().to_string()),
            error: Some(error.to_string()),
            ..Self::new(key, Status::Failed)
        }
    }
}

/// Totals of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Run id.
    pub run_id: String,
    /// Objects per status name.
    pub by_status: BTreeMap<String, u64>,
    /// Bytes read by migrations.
    pub bytes_in: u64,
    /// Bytes written by migrations.
    pub bytes_out: u64,
    /// Rows rewritten.
    pub rows: u64,
    /// Objects attempted again (attempts beyond the first).
    pub retries: u64,
    /// Single requests repeated after throttling or a dropped connection.
    #[serde(default)]
    pub request_retries: u64,
    /// Wall time in milliseconds.
    pub elapsed_ms: u64,
    /// Whether the run was cancelled before every object was taken.
    pub cancelled: bool,
    /// Failed objects: key and error.
    pub failures: Vec<(String, String)>,
}

impl RunSummary {
    /// Adds one record.
    pub fn add(&mut self, record: &Record) {
        *self.by_status.entry(record.status.name().to_string()).or_default() += 1;
        self.bytes_in += record.bytes_in;
        self.bytes_out += record.bytes_out;
        self.rows += record.rows;
        self.retries += u64::from(record.attempts.saturating_sub(1));
        if record.status.is_failure() {
            self.failures
                .push((record.key.clone(), record.error.clone().unwrap_or_default()));
        }
    }

    /// Objects with `status`.
    pub fn count(&self, status: Status) -> u64 {
        self.by_status.get(status.name()).copied().unwrap_or(0)
    }

    /// Objects recorded.
    pub fn objects(&self) -> u64 {
        self.by_status.values().sum()
    }

    /// Whether any object failed (the run exits non-zero).
    pub fn has_failures(&self) -> bool {
        !self.failures.is_empty()
    }
}

/// Writes a run's journal into the store as the run goes.
#[derive(Debug)]
pub struct JournalWriter {
    store: Store,
    dir: String,
    buffer: String,
    buffered: usize,
    part: u32,
    last_flush: Instant,
}

/// A new run id: UTC start time and a random suffix, so ids sort by start.
pub fn new_run_id() -> String {
    let now = chrono::Utc::now();
    let noise = (now.timestamp_subsec_nanos() ^ std::process::id().rotate_left(16)) & 0xffff;
    format!("{}-{noise:04x}", now.format("%Y%m%dT%H%M%SZ"))
}

/// The current time, RFC 3339 in UTC.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Host name for run records and leases.
pub fn host_name() -> String {
    hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

fn run_dir(prefix: &str, run_id: &str) -> String {
    format!("{}/{run_id}", prefix.trim_end_matches('/'))
}

impl JournalWriter {
    /// Starts a run's journal: writes `run.json`.
    ///
    /// # Errors
    /// [`Error::Journal`] when the store refuses the write.
    pub async fn start(store: &Store, prefix: &str, info: &RunInfo) -> Result<Self> {
        let dir = run_dir(prefix, &info.run_id);
        let writer = Self {
            store: store.clone(),
            dir,
            buffer: String::new(),
            buffered: 0,
            part: 0,
            last_flush: Instant::now(),
        };
        writer
            .put("run.json", serde_json::to_vec_pretty(info).expect("serializable"))
            .await?;
        Ok(writer)
    }

    /// Writes one journal object, retrying transient failures: losing the journal would lose
    /// the record of what the run changed.
    async fn put(&self, name: &str, data: Vec<u8>) -> Result<()> {
        let key = format!("{}/{name}", self.dir);
        let path = object_path(&key)?;
        let data = Bytes::from(data);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let put = || self.store.inner().put(&path, data.clone().into());
            match retry_transient(self.store.retry_counter(), transient_store_error, put).await {
                Ok(_) => return Ok(()),
                Err(e) if attempt < JOURNAL_ROUNDS && transient_store_error(&e) => {
                    tokio::time::sleep(JOURNAL_PAUSE).await;
                }
                Err(e) => {
                    return Err(Error::Journal {
                        key,
                        message: e.to_string(),
                    });
                }
            }
        }
    }

    /// Appends a record; writes a part when enough have gathered or enough time has passed.
    ///
    /// # Errors
    /// [`Error::Journal`].
    pub async fn record(&mut self, record: &Record) -> Result<()> {
        self.buffer
            .push_str(&serde_json::to_string(record).expect("serializable"));
        self.buffer.push('\n');
        self.buffered += 1;
        if self.buffered >= RECORDS_PER_PART || self.last_flush.elapsed() >= PART_INTERVAL {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes buffered records as the next part.
    ///
    /// # Errors
    /// [`Error::Journal`]; the records stay buffered for the next try.
    pub async fn flush(&mut self) -> Result<()> {
        self.last_flush = Instant::now();
        if self.buffered == 0 {
            return Ok(());
        }
        let name = format!("part-{:05}.jsonl", self.part + 1);
        self.put(&name, self.buffer.clone().into_bytes()).await?;
        self.part += 1;
        self.buffer.clear();
        self.buffered = 0;
        Ok(())
    }

    /// Flushes and writes `summary.json`.
    ///
    /// # Errors
    /// [`Error::Journal`].
    pub async fn finish(mut self, summary: &RunSummary) -> Result<()> {
        self.flush().await?;
        self.put(
            "summary.json",
            serde_json::to_vec_pretty(summary).expect("serializable"),
        )
        .await
    }
}

/// A run as read back from the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunJournal {
    /// What was asked.
    pub info: RunInfo,
    /// Every record written.
    pub records: Vec<Record>,
    /// The summary, if the run finished.
    pub summary: Option<RunSummary>,
}

/// Lists the runs under `prefix`, oldest first.
///
/// # Errors
/// [`Error::Journal`].
pub async fn list_runs(store: &Store, prefix: &str) -> Result<Vec<RunInfo>> {
    let dir = object_path(prefix.trim_end_matches('/'))?;
    let listing = store.inner().list_with_delimiter(Some(&dir)).await;
    let listing = match listing {
        Ok(l) => l,
        Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Journal {
                key: prefix.to_string(),
                message: e.to_string(),
            });
        }
    };
    let mut runs = Vec::new();
    for run in listing.common_prefixes {
        let key = format!("{run}/run.json");
        if let Some(info) = read_json::<RunInfo>(store, &key).await? {
            runs.push(info);
        }
    }
    runs.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    Ok(runs)
}

async fn read_json<T: serde::de::DeserializeOwned>(store: &Store, key: &str) -> Result<Option<T>> {
    let fail = |message: String| Error::Journal {
        key: key.to_string(),
        message,
    };
    match store.inner().get(&object_path(key)?).await {
        Ok(r) => {
            let bytes = r.bytes().await.map_err(|e| fail(e.to_string()))?;
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| fail(e.to_string()))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(fail(e.to_string())),
    }
}

/// Reads one run's journal.
///
/// # Errors
/// [`Error::Journal`] when the run does not exist or a part cannot be read.
pub async fn read_run(store: &Store, prefix: &str, run_id: &str) -> Result<RunJournal> {
    let dir = run_dir(prefix, run_id);
    let info = read_json::<RunInfo>(store, &format!("{dir}/run.json"))
        .await?
        .ok_or_else(|| Error::Journal {
            key: dir.clone(),
            message: "no such run".into(),
        })?;
    let mut parts: Vec<String> = store
        .inner()
        .list(Some(&object_path(&dir)?))
        .map_ok(|m| m.location.to_string())
        .try_filter(|k| std::future::ready(k.ends_with(".jsonl")))
        .try_collect()
        .await
        .map_err(|e| Error::Journal {
            key: dir.clone(),
            message: e.to_string(),
        })?;
    parts.sort();
    let mut records = Vec::new();
    for part in parts {
        let bytes = store
            .inner()
            .get(&object_path(&part)?)
            .await
            .map_err(|e| Error::Journal {
                key: part.clone(),
                message: e.to_string(),
            })?
            .bytes()
            .await
            .map_err(|e| Error::Journal {
                key: part.clone(),
                message: e.to_string(),
            })?;
        for (n, line) in bytes.split(|b| *b == b'\n').enumerate().filter(|(_, l)| !l.is_empty()) {
            records.push(serde_json::from_slice(line).map_err(|e| Error::Journal {
                key: part.clone(),
                message: format!("line {}: {e}", n + 1),
            })?);
        }
    }
    let summary = read_json::<RunSummary>(store, &format!("{dir}/summary.json")).await?;
    Ok(RunJournal { info, records, summary })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(run_id: &str) -> RunInfo {
        RunInfo {
            run_id: run_id.into(),
            started_at: "2026-11-26T00:00:00Z".into(),
            host: "h".into(),
            store: "memory://".into(),
            schema: "s".into(),
            target: 2,
            prefixes: vec![],
            suffix: String::new(),
            filter: String::new(),
            shard: None,
            tool_version: "0".into(),
        }
    }

    #[tokio::test]
    async fn journal_round_trips_through_the_store() {
        let store = Store::memory();
        let mut w = JournalWriter::start(&store, DEFAULT_JOURNAL_PREFIX, &info("r1"))
            .await
            .unwrap();
        let mut summary = RunSummary {
            run_id: "r1".into(),
            ..Default::default()
        };
        for i in 0..2500 {
            let mut r = Record::new(
                &format!("k{i}"),
                if i % 2 == 0 { Status::Migrated } else { Status::Failed },
            );
            r.attempts = 2;
            summary.add(&r);
            w.record(&r).await.unwrap();
        }
        w.finish(&summary).await.unwrap();
        JournalWriter::start(&store, DEFAULT_JOURNAL_PREFIX, &info("r0"))
            .await
            .unwrap();

        let runs = list_runs(&store, DEFAULT_JOURNAL_PREFIX).await.unwrap();
        assert_eq!(
            runs.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
            vec!["r0", "r1"]
        );
        let run = read_run(&store, DEFAULT_JOURNAL_PREFIX, "r1").await.unwrap();
        assert_eq!(run.records.len(), 2500);
        assert_eq!(run.records[1234].key, "k1234");
        let s = run.summary.unwrap();
        assert_eq!(
            (s.count(Status::Migrated), s.count(Status::Failed), s.retries),
            (1250, 1250, 2500)
        );
        assert!(
            read_run(&store, DEFAULT_JOURNAL_PREFIX, "r0")
                .await
                .unwrap()
                .summary
                .is_none()
        );
        let e = read_run(&store, DEFAULT_JOURNAL_PREFIX, "nope").await.unwrap_err();
        assert_eq!(e.to_string(), "journal _pqmigrate/runs/nope: no such run");
    }
}
