//! Tables and JSON printed by the commands.

use anyhow::Result;

use pqmigrate_core::journal::RunInfo;
use pqmigrate_core::plan::{PlanEntry, PlanTotals};
use pqmigrate_core::scan::ScannedObject;
use pqmigrate_core::validate::VersionCheck;
use pqmigrate_core::{Outcome, RunSummary, Status};

use pqmigrate_core::status::{RunLine, RunState, Sharded};

/// Bytes as a short human figure (`1.5 GB`).
pub(crate) fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub(crate) fn scanned(object: &ScannedObject, json: bool) {
    let (version, error) = match &object.version {
        Ok(v) => (Some(*v), None),
        Err(e) => (None, Some(e.report())),
    };
    if json {
        println!(
            "{}",
            serde_json::json!({"key": object.key, "size": object.size, "version": version, "error": error})
        );
    } else {
        match (version, error) {
            (Some(v), _) => println!("{:>6}  {:>10}  {}", v, object.size, object.key),
            (None, Some(e)) => println!("{:>6}  {:>10}  {}  ({e})", "?", object.size, object.key),
            (None, None) => {}
        }
    }
}

/// One object `validate` found wrong: its tag and footer disagree, or it cannot be read.
pub(crate) fn version_check(check: &VersionCheck, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(check)?);
    } else if check.disagrees() {
        let shown = |v: Option<u32>| v.map_or("none (version 1)".to_string(), |v| v.to_string());
        println!(
            "{}: {} says {}, footer says {}",
            check.key,
            check.beside,
            shown(check.tag),
            shown(check.footer)
        );
    } else {
        println!("{}: {}", check.key, check.error.as_deref().unwrap_or_default());
    }
    Ok(())
}

/// Each distinct schema of the objects to migrate, and whether its steps take it.
pub(crate) fn schema_checks(checks: &[pqmigrate_core::plan::SchemaCheck], json: bool) {
    for (i, check) in checks.iter().enumerate() {
        if json {
            println!("{}", serde_json::json!({ "schema_check": check }));
            continue;
        }
        let what = check.error.as_deref().unwrap_or("its steps take it");
        println!(
            "schema {} of {} ({} objects at v{}, e.g. {}): {what}",
            i + 1,
            checks.len(),
            check.objects,
            check.from,
            check.example
        );
    }
}

pub(crate) fn plan_entry(entry: &PlanEntry) {
    let detail = match &entry.outcome {
        Outcome::NeedsMigration { steps } => steps
            .iter()
            .map(|s| format!("{}->{}", s.from, s.to))
            .collect::<Vec<_>>()
            .join(" "),
        Outcome::MissingStep { missing } => format!("missing step {}->{}", missing.from, missing.to),
        Outcome::OtherSchema { schema } => format!("schema {schema}"),
        Outcome::Unreadable { error, .. } | Outcome::Failed { error, .. } => error.clone(),
        _ => String::new(),
    };
    let version = entry.version.map_or("?".to_string(), |v| v.to_string());
    println!(
        "{:<16} {:>4}  {}  {}",
        entry.status().name(),
        version,
        entry.key,
        detail
    );
}

pub(crate) fn plan_totals(totals: &PlanTotals, entries: &[PlanEntry], target: u32, json: bool) -> Result<()> {
    if json {
        let value = serde_json::json!({"target": target, "totals": totals, "entries": entries});
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!("plan to version {target}: {} objects", totals.objects);
    for status in [
        Status::NeedsMigration,
        Status::AtTarget,
        Status::AheadOfTarget,
        Status::MissingStep,
        Status::OtherSchema,
        Status::Unreadable,
    ] {
        println!("  {:<18} {:>10}", status.name(), totals.count(status));
    }
    println!("  by version:");
    for (version, count) in &totals.by_version {
        println!("    v{:<15} {:>10}", version, count);
    }
    println!(
        "  {:<18} {:>10}",
        "bytes to rewrite",
        human_bytes(totals.bytes_to_rewrite as f64)
    );
    Ok(())
}

/// This process's peak resident memory (`VmHWM` of `/proc/self/status`), where the system
/// says; unlike `getrusage`, it does not count what the parent held before `exec`.
pub(crate) fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

pub(crate) fn run_summary(info: &RunInfo, summary: &RunSummary, json: bool) -> Result<()> {
    let peak = peak_rss_bytes();
    if json {
        let mut value = serde_json::to_value(summary)?;
        value["peak_rss_bytes"] = serde_json::json!(peak);
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let seconds = (summary.elapsed_ms as f64 / 1000.0).max(1e-3);
    println!(
        "run {}  {}  {} -> v{}",
        summary.run_id, info.store, info.schema, info.target
    );
    for (status, count) in summary.by_status.iter() {
        if status != Status::NeedsMigration {
            println!("  {:<16} {:>10}", status.name(), count);
        }
    }
    println!("  {:<16} {:>10}", "objects", summary.objects());
    println!("  {:<16} {:>10}", "retries", summary.retries);
    println!("  {:<16} {:>10}", "request retries", summary.request_retries);
    if let Some(peak) = peak {
        println!("  {:<16} {:>10}", "peak memory", human_bytes(peak as f64));
    }
    println!(
        "  {:<16} {:>10}  ({}/s)",
        "size before",
        human_bytes(summary.bytes_in as f64),
        human_bytes(summary.bytes_in as f64 / seconds)
    );
    println!("  {:<16} {:>10}", "size after", human_bytes(summary.bytes_out as f64));
    println!(
        "  {:<16} {:>10}  (sent {}, copied in place {})",
        "received",
        human_bytes(summary.received as f64),
        human_bytes(summary.sent as f64),
        human_bytes(summary.copied as f64)
    );
    println!(
        "  {:<16} {:>10}  ({} streamed whole)",
        "appended", summary.appended, summary.streamed
    );
    println!(
        "  {:<16} {:>9.1}s  ({:.1} objects/s)",
        "elapsed",
        seconds,
        summary.count(Status::Migrated) as f64 / seconds
    );
    if summary.cancelled {
        let why = summary.stopped_by.as_deref().unwrap_or("cancelled");
        println!("  stopped early ({why}): objects not yet taken were left for the next run");
    }
    if !summary.failures.is_empty() {
        println!("failures:");
        for (_, error) in &summary.failures {
            println!("  {error}");
        }
    }
    Ok(())
}

pub(crate) fn runs(runs: &[RunLine], json: bool) -> Result<()> {
    if json {
        let listed: Vec<_> = runs
            .iter()
            .map(|r| serde_json::json!({"info": r.info, "summary": r.summary, "state": r.state, "counts": r.counts, "unrecorded_writes": r.unrecorded}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&listed)?);
        return Ok(());
    }
    if runs.is_empty() {
        println!("no runs recorded");
    }
    for run in runs {
        let count = |s: Status| run.counts.get(s);
        let state = match (&run.state, run.unrecorded) {
            (RunState::Interrupted { reason }, _) => format!("interrupted ({reason})"),
            (RunState::Unfinished, 0) => "unfinished".to_string(),
            (RunState::Unfinished, n) => format!("unfinished; {n} more objects found written by it in the store"),
            _ => "finished".to_string(),
        };
        if let Some(undone) = &run.info.rolls_back {
            println!(
                "{}  rollback of {undone}  restored {}  already restored {}  failed {}  {state}",
                run.info.run_id,
                count(Status::Migrated) + run.unrecorded,
                count(Status::AtTarget),
                count(Status::Failed),
            );
            continue;
        }
        println!(
            "{}  {} -> v{}  migrated {}  failed {}  missing step {}  {state}",
            run.info.run_id,
            run.info.schema,
            run.info.target,
            count(Status::Migrated) + run.unrecorded,
            count(Status::Failed),
            count(Status::MissingStep),
        );
    }
    Ok(())
}

pub(crate) fn sharded(groups: &[Sharded], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(groups)?);
        return Ok(());
    }
    if groups.is_empty() {
        println!("no sharded runs recorded");
    }
    for g in groups {
        println!(
            "{} -> v{} over {} shards: {} finished{}{}  migrated {}  at target {}  failed {}  missing step {}",
            g.schema,
            g.target,
            g.shards,
            g.finished,
            if g.interrupted == 0 {
                String::new()
            } else {
                format!(", {} interrupted", g.interrupted)
            },
            if g.missing.is_empty() {
                String::new()
            } else {
                format!(", no run yet for shards {:?}", g.missing)
            },
            g.counts.get(Status::Migrated) + g.unrecorded_writes,
            g.counts.get(Status::AtTarget),
            g.counts.get(Status::Failed),
            g.counts.get(Status::MissingStep),
        );
        println!("  runs: {}", g.runs.join(" "));
    }
    Ok(())
}

pub(crate) fn rollback(run_id: &str, summary: &RunSummary, json: bool) -> Result<()> {
    if json {
        let mut value = serde_json::to_value(summary)?;
        value["rolls_back"] = serde_json::json!(run_id);
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!(
        "rollback {} of run {run_id}: {} objects restored, {} already restored, {} failed",
        summary.run_id,
        summary.count(Status::Migrated),
        summary.count(Status::AtTarget),
        summary.count(Status::Failed)
    );
    for (_, error) in &summary.failures {
        println!("  {error}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_table() {
        let cases = [
            (0.0, "0 B"),
            (999.0, "999 B"),
            (1000.0, "1.0 kB"),
            (1_500_000.0, "1.5 MB"),
            (2.5e12, "2.5 TB"),
        ];
        for (bytes, text) in cases {
            assert_eq!(human_bytes(bytes), text);
        }
    }
}
