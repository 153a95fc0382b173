//! What happened to a data set, as data: every run under a journal prefix with its counts and
//! state (finished, interrupted, unfinished), the run records that cannot be read (named, never
//! in the way of the others), the shards of a split merged into one view, one run's records and
//! changes as streams, the lease's holders, and the objects migrated by steps that have changed
//! since. Adapters render it; none reads journals or leases itself.

use std::collections::{BTreeMap, BTreeSet};

use futures::stream::{BoxStream, TryStreamExt};
use serde::Serialize;

use crate::changes::{Change, stream_changes};
use crate::error::Result;
use crate::journal::{JournalReader, RunInfo, open_run, scan_runs};
use crate::lease::{LeaseInfo, lease_holders, lease_key};
use crate::outcome::{Counts, Record, RunSummary};
use crate::registry::Registry;
use crate::scan::Shard;
use crate::store::Store;

/// Objects looked up at once when a run's unrecorded writes are sought.
const LOOKUPS: usize = 32;

/// How a run ended, as its journal tells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunState {
    /// It took every object and wrote its summary.
    Finished,
    /// It wrote its summary after being stopped early (Ctrl-C, SIGTERM, a lost lease, a failure
    /// of its own): objects were left for a later run.
    Interrupted {
        /// What stopped it.
        reason: String,
    },
    /// It wrote no summary: it is still running, or its process died.
    Unfinished,
}

impl RunState {
    /// The state of a run whose summary is `summary`.
    pub fn of(summary: Option<&RunSummary>) -> Self {
        match summary {
            None => RunState::Unfinished,
            Some(s) if s.cancelled => RunState::Interrupted {
                reason: s.stopped_by.clone().unwrap_or_else(|| "stopped early".into()),
            },
            Some(_) => RunState::Finished,
        }
    }
}

/// One run as the listing shows it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RunLine {
    /// What was asked.
    pub info: RunInfo,
    /// Its totals, when it wrote them.
    pub summary: Option<RunSummary>,
    /// How it ended.
    pub state: RunState,
    /// Objects per status, from its records.
    pub counts: Counts,
    /// Writes found in the store that the run did not record (an unfinished run's).
    pub unrecorded: u64,
}

/// A run record that cannot be read.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct UnreadableRun {
    /// The journal object that cannot be read.
    pub key: String,
    /// Why.
    pub error: String,
}

/// Every run of a store.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct Overview {
    /// The runs, oldest first.
    pub runs: Vec<RunLine>,
    /// Run records that cannot be read, skipped.
    pub unreadable: Vec<UnreadableRun>,
    /// Objects migrated by a step whose fingerprint differs from the registry's step now.
    pub changed_steps: Vec<String>,
    /// Migration files (steps that state their definition) changed since they migrated
    /// objects, by name.
    pub changed_files: Vec<String>,
}

/// Every run under `prefix`, with its counts and state; a run whose records cannot be read is
/// listed as unreadable and skipped.
///
/// # Errors
/// Store errors of the listing.
pub async fn overview(store: &Store, prefix: &str, registry: &Registry) -> Result<Overview> {
    let (infos, unreadable) = scan_runs(store, prefix).await?;
    let mut overview = Overview {
        unreadable: unreadable
            .into_iter()
            .map(|(key, e)| UnreadableRun { key, error: e.report() })
            .collect(),
        ..Overview::default()
    };
    let mut check = FingerprintCheck::new(registry);
    for info in infos {
        match run_line(store, prefix, &info.run_id, &mut check).await {
            Ok(line) => overview.runs.push(line),
            Err(e) => overview.unreadable.push(UnreadableRun {
                key: format!("{}/{}", prefix.trim_end_matches('/'), info.run_id),
                error: e.report(),
            }),
        }
    }
    overview.changed_steps = check.warnings();
    overview.changed_files = check.changed_definitions();
    Ok(overview)
}

async fn run_line(store: &Store, prefix: &str, run_id: &str, check: &mut FingerprintCheck<'_>) -> Result<RunLine> {
    let journal = open_run(store, prefix, run_id).await?;
    let mut counts = Counts::default();
    let mut records = journal.records();
    while let Some(record) = records.try_next().await? {
        counts.add(record.status());
        check.add(&record);
    }
    // Only a run that did not finish can have writes it did not record.
    let mut unrecorded = 0;
    if journal.summary.is_none() {
        let mut changes = stream_changes(store, &journal, LOOKUPS);
        while let Some(change) = changes.try_next().await? {
            unrecorded += u64::from(matches!(change, Change::Unrecorded(_)));
        }
    }
    Ok(RunLine {
        state: RunState::of(journal.summary.as_ref()),
        info: journal.info,
        summary: journal.summary,
        counts,
        unrecorded,
    })
}

/// A data set run as shards: the latest run of each shard, merged.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Sharded {
    /// Schema id.
    pub schema: String,
    /// Target version.
    pub target: u32,
    /// Shards the data set was split into.
    pub shards: u32,
    /// Shards whose latest run finished.
    pub finished: u32,
    /// Shards whose latest run was stopped early.
    pub interrupted: u32,
    /// Shards with no run yet.
    pub missing: Vec<u32>,
    /// Objects per status, over the shards' latest runs.
    pub counts: Counts,
    /// Writes the unfinished runs did not record.
    pub unrecorded_writes: u64,
    /// The latest run of each shard, by shard index.
    pub runs: Vec<String>,
}

/// Merges sharded runs of the same schema, target and shard count: for each shard, its latest
/// run (run ids sort by start time).
pub fn merge_shards(lines: &[RunLine]) -> Vec<Sharded> {
    let mut latest: BTreeMap<(String, u32, u32), BTreeMap<u32, &RunLine>> = BTreeMap::new();
    for line in lines.iter().filter(|l| l.info.rolls_back.is_none()) {
        let Some(shard) = line.info.shard.as_deref().and_then(|s| s.parse::<Shard>().ok()) else {
            continue;
        };
        let group = latest
            .entry((line.info.schema.clone(), line.info.target, shard.count))
            .or_default();
        if group
            .get(&shard.index)
            .is_none_or(|seen| seen.info.run_id < line.info.run_id)
        {
            group.insert(shard.index, line);
        }
    }
    latest
        .into_iter()
        .map(|((schema, target, shards), runs)| {
            let mut counts = Counts::default();
            for run in runs.values() {
                counts.merge(&run.counts);
            }
            let in_state = |wanted: fn(&RunState) -> bool| runs.values().filter(|r| wanted(&r.state)).count() as u32;
            Sharded {
                schema,
                target,
                shards,
                finished: in_state(|s| *s == RunState::Finished),
                interrupted: in_state(|s| matches!(s, RunState::Interrupted { .. })),
                missing: (0..shards).filter(|i| !runs.contains_key(i)).collect(),
                counts,
                unrecorded_writes: runs.values().map(|r| r.unrecorded).sum(),
                runs: runs.values().map(|r| r.info.run_id.clone()).collect(),
            }
        })
        .collect()
}

/// One run, read a part at a time: what was asked, how it ended, its records and its changes
/// (recorded, and found in the store from its intents) as streams.
#[derive(Debug, Clone)]
pub struct RunView {
    journal: JournalReader,
    store: Store,
}

impl RunView {
    /// Opens the run `run_id` under `prefix`.
    ///
    /// # Errors
    /// [`crate::Error::Journal`] when the run does not exist or cannot be read.
    pub async fn open(store: &Store, prefix: &str, run_id: &str) -> Result<Self> {
        Ok(Self {
            journal: open_run(store, prefix, run_id).await?,
            store: store.clone(),
        })
    }

    /// What the run was asked to do.
    pub fn info(&self) -> &RunInfo {
        &self.journal.info
    }

    /// Its totals, when it wrote them.
    pub fn summary(&self) -> Option<&RunSummary> {
        self.journal.summary.as_ref()
    }

    /// How it ended.
    pub fn state(&self) -> RunState {
        RunState::of(self.journal.summary.as_ref())
    }

    /// Every record it journaled, in order.
    pub fn records(&self) -> BoxStream<'static, Result<Record>> {
        self.journal.records()
    }

    /// Every object it wrote: recorded, and found in the store from its intents.
    pub fn changes(&self) -> BoxStream<'_, Result<Change>> {
        stream_changes(&self.store, &self.journal, LOOKUPS)
    }
}

/// One holder of a data set's lease, as `status` shows it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Holder {
    /// The lease object.
    pub key: String,
    /// Who holds it and how.
    pub holder: LeaseInfo,
    /// Whether the claim lapsed (a writer that died).
    pub lapsed: bool,
}

/// The holders of the leases of the data sets `runs` touched.
///
/// # Errors
/// Store errors, or an unreadable lease.
pub async fn holders(store: &Store, runs: &[RunInfo]) -> Result<Vec<Holder>> {
    let schemas: BTreeSet<&str> = runs.iter().map(|r| r.schema.as_str()).collect();
    let mut found = Vec::new();
    for schema in schemas {
        let key = lease_key(schema);
        for (holder, lapsed) in lease_holders(store, &key).await? {
            found.push(Holder {
                key: key.clone(),
                holder,
                lapsed,
            });
        }
    }
    Ok(found)
}

/// Counts a migrated object's steps whose fingerprint differs from the registry's step of the
/// same `from->to`: the step changed since.
#[derive(Debug)]
pub struct FingerprintCheck<'a> {
    registry: &'a Registry,
    /// (step, fingerprint then, fingerprint now, the step's name now, whether it states its
    /// definition) and how many objects.
    differing: BTreeMap<(String, String, String, String, bool), u64>,
}

impl<'a> FingerprintCheck<'a> {
    /// A check against `registry`'s steps.
    pub fn new(registry: &'a Registry) -> Self {
        Self {
            registry,
            differing: BTreeMap::new(),
        }
    }

    /// Checks one record.
    pub fn add(&mut self, record: &Record) {
        let Some(migrated) = record.migrated() else {
            return;
        };
        for (step, fingerprint) in migrated.steps.iter().zip(&migrated.fingerprints) {
            let Some(current) = self.registry.step(&step.schema, step.from).filter(|s| s.to == step.to) else {
                continue;
            };
            let now = current.fingerprint();
            if &now != fingerprint {
                let defined = current.migration.definition().is_some();
                *self
                    .differing
                    .entry((
                        step.to_string(),
                        fingerprint.clone(),
                        now,
                        current.name.to_string(),
                        defined,
                    ))
                    .or_default() += 1;
            }
        }
    }

    /// One line per changed step: how many objects it migrated, and both fingerprints.
    pub fn warnings(&self) -> Vec<String> {
        self.differing
            .iter()
            .map(|((step, then, now, name, defined), count)| {
                if *defined {
                    format!(
                        "{count} objects were migrated by step {step} with fingerprint {then}; {name} now has fingerprint {now} (edited since, or another step)"
                    )
                } else {
                    format!("{count} objects were migrated by step {step} with fingerprint {then}; this binary's is {now}")
                }
            })
            .collect()
    }

    /// The steps that state their definition (migration files) and have changed since they
    /// migrated objects, by name: what `run` refuses to go on with unless told to.
    pub fn changed_definitions(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .differing
            .keys()
            .filter(|(.., defined)| *defined)
            .map(|(_, _, _, name, _)| name.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}
