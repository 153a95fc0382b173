//! The run journal: what happened to each object, kept as JSON lines in the store itself so that
//! `status` and `rollback` work from any machine.
//!
//! Layout under the journal prefix (default `_pqmigrate/runs/`):
//! `<run-id>/run.json` (what was asked); `<run-id>/intents-000001.jsonl`... (what the run is
//! about to write, each batch durable before any of its objects is written); `<run-id>/part-00001.jsonl`...
//! (one outcome record per object, written in batches while the run goes); and
//! `<run-id>/summary.json` once the run ends. Every journal object is created with
//! `If-None-Match: *`, so two runs never share one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::intent::{Intent, IntentLog};
use crate::outcome::{Record, RunSummary};
use crate::store::{Condition, Store, WriteOptions, in_rounds};

/// Default journal prefix.
pub const DEFAULT_JOURNAL_PREFIX: &str = "_pqmigrate/runs/";

const RECORDS_PER_PART: usize = 1000;
const PART_INTERVAL: Duration = Duration::from_secs(5);
/// How long the intent log waits for more intents to join a batch.
const INTENT_WINDOW: Duration = Duration::from_millis(5);
/// Most intents in one batch.
const INTENTS_PER_BATCH: usize = 1000;

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
    /// For a rollback: the run it undoes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolls_back: Option<String>,
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
    /// A writer's own name in its parts' names, when several write one run.
    name: Option<String>,
}

pub(crate) fn run_dir(prefix: &str, run_id: &str) -> String {
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
            name: None,
        };
        writer
            .put("run.json", serde_json::to_vec_pretty(info).expect("serializable"))
            .await?;
        Ok(writer)
    }

    /// Goes on writing records into the journal of the run `run_id`, begun elsewhere (a run
    /// that spans processes, a detached run). Its parts are named for this writer, so
    /// several may write one run's journal.
    pub fn resume(store: &Store, prefix: &str, run_id: &str) -> Self {
        Self {
            store: store.clone(),
            dir: run_dir(prefix, run_id),
            buffer: String::new(),
            buffered: 0,
            part: 0,
            last_flush: Instant::now(),
            name: Some(crate::intent::new_attempt_id()),
        }
    }

    async fn put(&self, name: &str, data: Vec<u8>) -> Result<()> {
        create_journal_object(&self.store, &format!("{}/{name}", self.dir), Bytes::from(data)).await
    }

    /// The run's write-ahead intent log: batches of intents written as `intents-*.jsonl`, each
    /// durable before [`IntentLog::record`] returns for any intent in it.
    pub fn intent_log(&self) -> Arc<IntentBatcher> {
        IntentBatcher::start(self.store.clone(), self.dir.clone())
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
        let name = match &self.name {
            Some(writer) => format!("part-{writer}-{:05}.jsonl", self.part + 1),
            None => format!("part-{:05}.jsonl", self.part + 1),
        };
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

/// Creates one journal object (`If-None-Match: *`), retrying transient failures: losing the
/// journal would lose the record of what the run changed. A create whose answer was lost finds
/// its own bytes there and succeeds.
pub(crate) async fn create_journal_object(store: &Store, key: &str, data: Bytes) -> Result<()> {
    let create = WriteOptions {
        condition: Condition::Create,
        ..WriteOptions::default()
    };
    match in_rounds(|| store.write(key, data.clone(), create.clone())).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_already_exists() => match in_rounds(|| store.get_if_exists(key)).await {
            Ok(Some((_, there))) if there == data => Ok(()),
            Ok(_) => Err(Error::journal(key, "another writer created it first")),
            Err(e) => Err(Error::journal_store(key, e)),
        },
        Err(e) => Err(Error::journal_store(key, e)),
    }
}

type Pending = (Intent, oneshot::Sender<Result<(), String>>);

/// The write-ahead intent log of a run: intents arriving together are written as one batch,
/// and every caller waits until its batch is durable.
#[derive(Debug)]
pub struct IntentBatcher {
    tx: mpsc::Sender<Pending>,
    dir: String,
}

impl IntentBatcher {
    fn start(store: Store, dir: String) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(INTENTS_PER_BATCH);
        tokio::spawn(write_batches(store, dir.clone(), rx));
        Arc::new(Self { tx, dir })
    }
}

#[async_trait]
impl IntentLog for IntentBatcher {
    async fn record(&self, intent: Intent) -> Result<()> {
        let key = intent.key.clone();
        let (done, durable) = oneshot::channel();
        let stopped = || {
            Error::journal(
                self.dir.clone(),
                format!("the intent log stopped before {key} was recorded"),
            )
        };
        self.tx.send((intent, done)).await.map_err(|_| stopped())?;
        match durable.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(Error::journal(self.dir.clone(), message)),
            Err(_) => Err(stopped()),
        }
    }
}

async fn write_batches(store: Store, dir: String, mut rx: mpsc::Receiver<Pending>) {
    let mut batch_number = 0u32;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let window = tokio::time::Instant::now() + INTENT_WINDOW;
        while batch.len() < INTENTS_PER_BATCH {
            match tokio::time::timeout_at(window, rx.recv()).await {
                Ok(Some(pending)) => batch.push(pending),
                _ => break,
            }
        }
        batch_number += 1;
        let key = format!("{dir}/intents-{batch_number:06}.jsonl");
        let mut lines = String::new();
        for (intent, _) in &batch {
            lines.push_str(&serde_json::to_string(intent).expect("serializable"));
            lines.push('\n');
        }
        let written = create_journal_object(&store, &key, Bytes::from(lines))
            .await
            .map_err(|e| e.report());
        for (_, done) in batch {
            let _ = done.send(written.clone());
        }
    }
}

/// A run as read back from the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunJournal {
    /// What was asked.
    pub info: RunInfo,
    /// Every intent journaled, in order.
    #[serde(default)]
    pub intents: Vec<Intent>,
    /// Every record written.
    pub records: Vec<Record>,
    /// The summary, if the run finished.
    pub summary: Option<RunSummary>,
}

/// Lists the runs under `prefix`, oldest first. A run whose `run.json` cannot be read is left
/// out with a warning ([`scan_runs`] names them).
///
/// # Errors
/// [`Error::Journal`] when the runs cannot be listed.
pub async fn list_runs(store: &Store, prefix: &str) -> Result<Vec<RunInfo>> {
    let (runs, unreadable) = scan_runs(store, prefix).await?;
    for (key, e) in unreadable {
        tracing::warn!("{key}: run record skipped: {}", e.report());
    }
    Ok(runs)
}

/// The runs under `prefix`, oldest first, and the run records that cannot be read (the key of
/// each and why), so one damaged record never hides the others.
///
/// # Errors
/// [`Error::Journal`] when the runs cannot be listed.
pub async fn scan_runs(store: &Store, prefix: &str) -> Result<(Vec<RunInfo>, Vec<(String, Error)>)> {
    let dirs = store
        .list_dirs(prefix)
        .await
        .map_err(|e| Error::journal_store(prefix, e))?;
    let mut runs = Vec::new();
    let mut unreadable = Vec::new();
    for run in dirs {
        let key = format!("{run}/run.json");
        match read_json::<RunInfo>(store, &key).await {
            Ok(Some(info)) => runs.push(info),
            Ok(None) => {}
            Err(e) => unreadable.push((key, e)),
        }
    }
    runs.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    Ok((runs, unreadable))
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

/// A run's journal, read a part at a time: what was asked, the summary if the run finished,
/// and its intents and records as streams, so memory stays flat whatever the run's size.
#[derive(Debug, Clone)]
pub struct JournalReader {
    store: Store,
    /// What was asked.
    pub info: RunInfo,
    /// The summary, if the run finished.
    pub summary: Option<RunSummary>,
    intent_parts: Arc<Vec<String>>,
    record_parts: Arc<Vec<String>>,
}

impl JournalReader {
    /// Every intent journaled, in order.
    pub fn intents(&self) -> BoxStream<'static, Result<Intent>> {
        json_lines(self.store.clone(), self.intent_parts.clone())
    }

    /// Every record written, in order.
    pub fn records(&self) -> BoxStream<'static, Result<Record>> {
        json_lines(self.store.clone(), self.record_parts.clone())
    }
}

/// Opens one run's journal for reading.
///
/// # Errors
/// [`Error::Journal`] when the run does not exist or its parts cannot be listed.
pub async fn open_run(store: &Store, prefix: &str, run_id: &str) -> Result<JournalReader> {
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
    let (intent_parts, record_parts): (Vec<String>, Vec<String>) = parts
        .into_iter()
        .partition(|k| k.rsplit('/').next().is_some_and(|n| n.starts_with("intents-")));
    let summary = read_json::<RunSummary>(store, &format!("{dir}/summary.json")).await?;
    Ok(JournalReader {
        store: store.clone(),
        info,
        summary,
        intent_parts: Arc::new(intent_parts),
        record_parts: Arc::new(record_parts),
    })
}

/// Reads one run's journal whole (see [`open_run`] to stream a large one).
///
/// # Errors
/// [`Error::Journal`] when the run does not exist or a part cannot be read.
pub async fn read_run(store: &Store, prefix: &str, run_id: &str) -> Result<RunJournal> {
    let reader = open_run(store, prefix, run_id).await?;
    let intents = reader.intents().try_collect().await?;
    let records = reader.records().try_collect().await?;
    Ok(RunJournal {
        info: reader.info,
        intents,
        records,
        summary: reader.summary,
    })
}

/// The JSON lines of journal objects, in order, one object in memory at a time.
fn json_lines<T: serde::de::DeserializeOwned + Send + 'static>(
    store: Store,
    parts: Arc<Vec<String>>,
) -> BoxStream<'static, Result<T>> {
    stream::iter(0..parts.len())
        .then(move |i| {
            let (store, part) = (store.clone(), parts[i].clone());
            async move {
                let lines: Vec<Result<T>> = match store.get(&part, Default::default()).await {
                    Ok((_, bytes)) => bytes
                        .split(|b| *b == b'\n')
                        .enumerate()
                        .filter(|(_, l)| !l.is_empty())
                        .map(|(n, line)| {
                            serde_json::from_slice(line)
                                .map_err(|e| Error::journal(part.clone(), format!("line {}: {e}", n + 1)))
                        })
                        .collect(),
                    Err(e) => vec![Err(Error::journal_store(part.clone(), e))],
                };
                stream::iter(lines)
            }
        })
        .flatten()
        .boxed()
}

/// A run's description for the core's own tests.
#[cfg(test)]
pub(crate) fn test_info(run_id: &str) -> RunInfo {
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
        rolls_back: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Outcome, Status};

    #[tokio::test]
    async fn journal_round_trips_through_the_store() {
        let store = Store::memory();
        let mut w = JournalWriter::start(&store, DEFAULT_JOURNAL_PREFIX, &test_info("r1"))
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
        JournalWriter::start(&store, DEFAULT_JOURNAL_PREFIX, &test_info("r0"))
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
