//! `status`: the runs under the journal prefix, or one run's records and changes, read a
//! journal part at a time and printed as they are read, so a run of millions of objects is
//! shown in flat memory.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Result;
use futures::stream::TryStreamExt;
use pqmigrate_core::changes::{Change, stream_changes};
use pqmigrate_core::journal::{JournalReader, RunInfo, list_runs, open_run};
use pqmigrate_core::lease::{current_lease, lease_key};
use pqmigrate_core::{Counts, Record, Registry, RunSummary, Store};

use crate::report;

/// Objects looked up at once when a run's unrecorded writes are sought.
const LOOKUPS: usize = 32;

/// Counts a migrated object's steps whose fingerprint differs from this binary's step of the
/// same `from->to`: the step changed since (warn, don't block).
pub(crate) struct FingerprintCheck<'a> {
    registry: &'a Registry,
    differing: BTreeMap<(String, String, String), u64>,
}

impl<'a> FingerprintCheck<'a> {
    pub(crate) fn new(registry: &'a Registry) -> Self {
        Self {
            registry,
            differing: BTreeMap::new(),
        }
    }

    pub(crate) fn add(&mut self, record: &Record) {
        let Some(migrated) = record.migrated() else {
            return;
        };
        for (step, fingerprint) in migrated.steps.iter().zip(&migrated.fingerprints) {
            let Some(current) = self.registry.step(&step.schema, step.from).filter(|s| s.to == step.to) else {
                continue;
            };
            let now = current.fingerprint();
            if &now != fingerprint {
                *self
                    .differing
                    .entry((step.to_string(), fingerprint.clone(), now))
                    .or_default() += 1;
            }
        }
    }

    pub(crate) fn warnings(self) -> Vec<String> {
        self.differing
            .into_iter()
            .map(|((step, then, now), count)| {
                format!("{count} objects were migrated by step {step} with fingerprint {then}; this binary's is {now}")
            })
            .collect()
    }
}

/// One run as the listing shows it.
pub(crate) struct RunLine {
    pub(crate) info: RunInfo,
    pub(crate) summary: Option<RunSummary>,
    pub(crate) counts: Counts,
    /// Writes found in the store that the run did not record (an unfinished run's).
    pub(crate) unrecorded: u64,
}

/// Lists every run; returns what was listed.
pub(crate) async fn list(
    store: &Store,
    prefix: &str,
    registry: &Registry,
    json: bool,
    merge: bool,
) -> Result<Vec<RunInfo>> {
    let mut lines = Vec::new();
    let mut check = FingerprintCheck::new(registry);
    for info in list_runs(store, prefix).await? {
        let journal = open_run(store, prefix, &info.run_id).await?;
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
        lines.push(RunLine {
            info: journal.info,
            summary: journal.summary,
            counts,
            unrecorded,
        });
    }
    if merge {
        report::sharded(&merged(&lines), json)?;
    } else {
        report::runs(&lines, json)?;
    }
    warn(check);
    Ok(lines.into_iter().map(|l| l.info).collect())
}

/// A data set run as shards: the latest run of each shard, merged.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Sharded {
    pub(crate) schema: String,
    pub(crate) target: u32,
    /// Shards the data set was split into.
    pub(crate) shards: u32,
    /// Shards whose latest run finished.
    pub(crate) finished: u32,
    /// Shards with no run yet.
    pub(crate) missing: Vec<u32>,
    /// Objects per status, over the shards' latest runs.
    pub(crate) counts: Counts,
    /// Writes the unfinished runs did not record.
    pub(crate) unrecorded_writes: u64,
    /// The latest run of each shard, by shard index.
    pub(crate) runs: Vec<String>,
}

/// Merges sharded runs of the same schema, target and shard count: for each shard, its latest
/// run (run ids sort by start time).
fn merged(lines: &[RunLine]) -> Vec<Sharded> {
    let mut latest: BTreeMap<(String, u32, u32), BTreeMap<u32, &RunLine>> = BTreeMap::new();
    for line in lines.iter().filter(|l| l.info.rolls_back.is_none()) {
        let Some(shard) = line
            .info
            .shard
            .as_deref()
            .and_then(|s| s.parse::<pqmigrate_core::scan::Shard>().ok())
        else {
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
            Sharded {
                schema,
                target,
                shards,
                finished: runs.values().filter(|r| r.summary.is_some()).count() as u32,
                missing: (0..shards).filter(|i| !runs.contains_key(i)).collect(),
                counts,
                unrecorded_writes: runs.values().map(|r| r.unrecorded).sum(),
                runs: runs.values().map(|r| r.info.run_id.clone()).collect(),
            }
        })
        .collect()
}

/// Shows one run: its description, summary, every record, and its changes (recorded, and
/// found in the store from its intents), streamed.
pub(crate) async fn detail(
    store: &Store,
    prefix: &str,
    run_id: &str,
    registry: &Registry,
    json: bool,
) -> Result<RunInfo> {
    let journal = open_run(store, prefix, run_id).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let mut check = FingerprintCheck::new(registry);
    if json {
        write!(
            out,
            "{{\"info\":{},\"summary\":{},\"records\":[",
            serde_json::to_string(&journal.info)?,
            serde_json::to_string(&journal.summary)?
        )?;
    }
    let mut recorded_objects = 0u64;
    let mut records = journal.records();
    while let Some(record) = records.try_next().await? {
        if json {
            if recorded_objects > 0 {
                out.write_all(b",")?;
            }
            writeln!(out, "{}", serde_json::to_string(&record)?)?;
        }
        recorded_objects += 1;
        check.add(&record);
    }
    if json {
        out.write_all(b"],\"changes\":{\"unrecorded\":[")?;
    }
    let (recorded, unrecorded) = changes(&mut out, store, &journal, json).await?;
    if json {
        writeln!(
            out,
            "],\"recorded\":{recorded},\"objects\":{}}}}}",
            recorded + unrecorded
        )?;
    }
    out.flush()?;
    drop(out);
    if !json {
        match &journal.summary {
            Some(summary) => report::run_summary(&journal.info, summary, false)?,
            None => println!(
                "run {} did not finish; {recorded_objects} objects recorded",
                journal.info.run_id
            ),
        }
        println!(
            "objects written by the run: {} ({recorded} recorded, {unrecorded} found in the store from its intents)",
            recorded + unrecorded
        );
    }
    warn(check);
    Ok(journal.info)
}

/// Streams a run's changes, writing the unrecorded ones as JSON when asked; returns how many
/// were recorded and unrecorded.
async fn changes(out: &mut impl Write, store: &Store, journal: &JournalReader, json: bool) -> Result<(u64, u64)> {
    let (mut recorded, mut unrecorded) = (0u64, 0u64);
    let mut changes = stream_changes(store, journal, LOOKUPS);
    while let Some(change) = changes.try_next().await? {
        match change {
            Change::Recorded(_) => recorded += 1,
            Change::Unrecorded(record) => {
                if json {
                    if unrecorded > 0 {
                        out.write_all(b",")?;
                    }
                    writeln!(out, "{}", serde_json::to_string(&record)?)?;
                }
                unrecorded += 1;
            }
        }
    }
    Ok((recorded, unrecorded))
}

fn warn(check: FingerprintCheck<'_>) {
    for warning in check.warnings() {
        eprintln!("warning: {warning}");
    }
}

/// Reports the leases of the data sets `runs` touched: a live one is a run in progress, an
/// expired one a run that died.
pub(crate) async fn leases(store: &Store, runs: &[RunInfo]) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for run in runs {
        let key = lease_key(&run.schema, run.shard.as_deref());
        if seen.insert(key.clone())
            && let Some((lease, expired)) = current_lease(store, &key).await?
        {
            let state = if expired { "expired" } else { "held" };
            eprintln!(
                "lease {key}: {state} by run {} on {} (expires {})",
                lease.run_id, lease.host, lease.expires_at
            );
        }
    }
    Ok(())
}
