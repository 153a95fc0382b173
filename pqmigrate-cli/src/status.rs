//! `status`: renders the core's view of a store's runs (every run, the shards of a split
//! merged, or one run's records and changes, streamed so a run of millions of objects is shown
//! in flat memory), and the holders of the data sets' leases.

use std::io::Write;

use anyhow::Result;
use futures::stream::TryStreamExt;
use pqmigrate_core::changes::Change;
use pqmigrate_core::journal::RunInfo;
use pqmigrate_core::status::{FingerprintCheck, RunState, RunView, holders, merge_shards, overview};
use pqmigrate_core::{Registry, Store};

use crate::report;

/// Lists every run; returns what was listed. Run records that cannot be read are named on
/// stderr and skipped.
pub(crate) async fn list(
    store: &Store,
    prefix: &str,
    registry: &Registry,
    json: bool,
    merge: bool,
) -> Result<Vec<RunInfo>> {
    let overview = overview(store, prefix, registry).await?;
    if merge {
        report::sharded(&merge_shards(&overview.runs), json)?;
    } else {
        report::runs(&overview.runs, json)?;
    }
    for unreadable in &overview.unreadable {
        eprintln!(
            "warning: run record {} cannot be read and is skipped: {}",
            unreadable.key, unreadable.error
        );
    }
    for warning in &overview.changed_steps {
        eprintln!("warning: {warning}");
    }
    Ok(overview.runs.into_iter().map(|l| l.info).collect())
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
    let run = RunView::open(store, prefix, run_id).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let mut check = FingerprintCheck::new(registry);
    if json {
        write!(
            out,
            "{{\"info\":{},\"summary\":{},\"records\":[",
            serde_json::to_string(run.info())?,
            serde_json::to_string(&run.summary())?
        )?;
    }
    let mut recorded_objects = 0u64;
    let mut records = run.records();
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
    let (recorded, unrecorded) = changes(&mut out, &run, json).await?;
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
        match (run.summary(), run.state()) {
            (Some(summary), state) => {
                report::run_summary(run.info(), summary, false)?;
                if let RunState::Interrupted { reason } = state {
                    println!(
                        "run {} was interrupted ({reason}): objects were left for a later run",
                        run.info().run_id
                    );
                }
            }
            (None, _) => println!(
                "run {} did not finish; {recorded_objects} objects recorded",
                run.info().run_id
            ),
        }
        println!(
            "objects written by the run: {} ({recorded} recorded, {unrecorded} found in the store from its intents)",
            recorded + unrecorded
        );
    }
    warn(check);
    Ok(run.info().clone())
}

/// Streams a run's changes, writing the unrecorded ones as JSON when asked; returns how many
/// were recorded and unrecorded.
async fn changes(out: &mut impl Write, run: &RunView, json: bool) -> Result<(u64, u64)> {
    let (mut recorded, mut unrecorded) = (0u64, 0u64);
    let mut changes = run.changes();
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

/// Reports the holders of the leases of the data sets `runs` touched: a live claim is a
/// writer at work, a lapsed one a writer that died.
pub(crate) async fn leases(store: &Store, runs: &[RunInfo]) -> Result<()> {
    for found in holders(store, runs).await? {
        let state = if found.lapsed { "expired" } else { "held" };
        let how = match &found.holder.shard {
            Some(shard) => format!(" as shard {shard}"),
            None => String::new(),
        };
        eprintln!(
            "lease {}: {state} by run {}{how} on {} (expires {})",
            found.key, found.holder.run_id, found.holder.host, found.holder.expires_at
        );
    }
    Ok(())
}
