//! The run journal: what happened to each object, kept as JSON lines in the store itself so that
//! `status` and `rollback` work from any machine.
//!
//! Layout under the journal prefix (default `_pqmigrate/runs/`):
//! `<run-id>/run.json` (what was asked), `<run-id>/part-00001.jsonl`... (one record per object,
//! written in batches while the run goes, so a crash loses at most the last batch), and
//! `<run-id>/summary.json` once the run ends.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::outcome::{Record, RunSummary};
use crate::store::Store;

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
        let data = Bytes::from(data);
        let mut round = 0;
        loop {
            round += 1;
            match self.store.put(&key, data.clone(), &[], Default::default()).await {
                Ok(_) => return Ok(()),
                Err(e) if round < JOURNAL_ROUNDS && e.is_transient() => tokio::time::sleep(JOURNAL_PAUSE).await,
                Err(e) => return Err(Error::journal_store(key, e)),
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
    let dirs = store
        .list_dirs(prefix)
        .await
        .map_err(|e| Error::journal_store(prefix, e))?;
    let mut runs = Vec::new();
    for run in dirs {
        if let Some(info) = read_json::<RunInfo>(store, &format!("{run}/run.json")).await? {
            runs.push(info);
        }
    }
    runs.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    Ok(runs)
}

async fn read_json<T: serde::de::DeserializeOwned>(store: &Store, key: &str) -> Result<Option<T>> {
    match store.get_if_exists(key).await {
        Ok(Some((_, bytes))) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::journal(key, e.to_string())),
        Ok(None) => Ok(None),
        Err(e) => Err(Error::journal_store(key, e)),
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
        .ok_or_else(|| Error::journal(dir.clone(), "no such run"))?;
    let mut parts: Vec<String> = store
        .list_prefix(&format!("{dir}/"), None)
        .map_ok(|l| l.key)
        .try_filter(|k| std::future::ready(k.ends_with(".jsonl")))
        .try_collect()
        .await
        .map_err(|e| Error::journal_store(dir.clone(), e))?;
    parts.sort();
    let mut records = Vec::new();
    for part in parts {
        let (_, bytes) = store
            .get(&part, Default::default())
            .await
            .map_err(|e| Error::journal_store(part.clone(), e))?;
        for (n, line) in bytes.split(|b| *b == b'\n').enumerate().filter(|(_, l)| !l.is_empty()) {
            records.push(
                serde_json::from_slice(line)
                    .map_err(|e| Error::journal(part.clone(), format!("line {}: {e}", n + 1)))?,
            );
        }
    }
    let summary = read_json::<RunSummary>(store, &format!("{dir}/summary.json")).await?;
    Ok(RunJournal { info, records, summary })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Outcome, Status};

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
            let outcome = if i % 2 == 0 {
                Outcome::Migrated(Box::default())
            } else {
                Outcome::failed(&Error::Config("x".into()))
            };
            let mut r = Record::new(&format!("k{i}"), Some(1), outcome);
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
