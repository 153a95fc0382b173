//! Memory stays flat as runs and manifests grow: `status` (the listing, and one run's records
//! and changes) and a manifest-driven `plan` are run on a synthetic journal and manifest of
//! `PQM_SCALE_OBJECTS` entries (100,000 by default; 10,000,000 by hand) and of a twentieth of
//! that, on local disk, and their peak memory (`--peak-memory`) compared.

mod support;

use std::io::Write;
use std::path::Path;

use pqmigrate::intent::Intent;
use pqmigrate::journal::RunInfo;
use pqmigrate::{Migrated, Outcome, Record};
use support::*;

fn objects() -> usize {
    std::env::var("PQM_SCALE_OBJECTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000)
}

/// Writes the journal of an unfinished run of `count` migrated objects under `root`: records
/// and intents in parts of 1,000, as a run writes them.
fn synthetic_run(root: &Path, run_id: &str, count: usize) {
    let dir = root.join("_pqmigrate/runs").join(run_id);
    std::fs::create_dir_all(&dir).unwrap();
    let info = RunInfo {
        run_id: run_id.into(),
        started_at: "2026-11-28T00:00:00Z".into(),
        host: "h".into(),
        store: format!("file://{}", root.display()),
        schema: "sensorData".into(),
        target: 3,
        prefixes: vec![],
        suffix: ".parq.snappy".into(),
        filter: String::new(),
        shard: None,
        tool_version: "0".into(),
        rolls_back: None,
    };
    std::fs::write(dir.join("run.json"), serde_json::to_vec(&info).unwrap()).unwrap();
    for part in 0..count.div_ceil(1000) {
        let mut records =
            std::io::BufWriter::new(std::fs::File::create(dir.join(format!("part-{:05}.jsonl", part + 1))).unwrap());
        let mut intents =
            std::io::BufWriter::new(std::fs::File::create(dir.join(format!("intents-{:06}.jsonl", part + 1))).unwrap());
        for i in part * 1000..((part + 1) * 1000).min(count) {
            let key = format!("d/day={:04}/sensorData_{i:08}.parq.snappy", i / 1000);
            let attempt = format!("{:016x}", i as u64 * 7919 + 1);
            let intent = Intent {
                key: key.clone(),
                attempt_id: attempt.clone(),
                e_tag: Some(format!("\"{i:032x}\"")),
                version_id: None,
                from: 1,
                to: 3,
            };
            let record = Record {
                attempts: 1,
                millis: 12,
                ..Record::new(
                    &key,
                    Some(1),
                    Outcome::Migrated(Box::new(Migrated {
                        to: 3,
                        old_e_tag: intent.e_tag.clone(),
                        new_e_tag: Some(format!("\"{:032x}\"", i + 1)),
                        bytes_in: 208_000_000,
                        bytes_out: 212_000_000,
                        rows: 138_889,
                        attempt_id: Some(attempt),
                        ..Migrated::default()
                    })),
                )
            };
            writeln!(intents, "{}", serde_json::to_string(&intent).unwrap()).unwrap();
            writeln!(records, "{}", serde_json::to_string(&record).unwrap()).unwrap();
        }
    }
}

/// A manifest of `count` keys (none of which exists).
fn synthetic_manifest(path: &Path, count: usize) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..count {
        writeln!(out, "d/day={:04}/sensorData_{i:08}.parq.snappy", i / 1000).unwrap();
    }
}

/// Runs the CLI with `--peak-memory`; returns its peak memory in bytes.
fn peak_of(args: &[&str], expect: i32) -> u64 {
    let mut args = args.to_vec();
    args.push("--peak-memory");
    let out = cli(&args, &[]);
    assert_eq!(out.code, expect, "{args:?}: {}", out.stderr);
    out.stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("pqmigrate: peak memory ")?
                .strip_suffix(" bytes")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no peak memory in {}", out.stderr))
}

#[test]
fn status_and_manifests_stream_in_flat_memory() {
    let large = objects();
    let small = large / 20;
    let mut peaks = Vec::new();
    for count in [small, large] {
        let root = tempfile::tempdir().unwrap();
        synthetic_run(root.path(), "20261128T000000Z-0000000000000001", count);
        let manifest = root.path().join("manifest.csv");
        synthetic_manifest(&manifest, count);
        let url = format!("file://{}", root.path().display());
        let run = "20261128T000000Z-0000000000000001";
        let detail = peak_of(&["status", &url, run, "--json"], 0);
        let listing = peak_of(&["status", &url], 0);
        let plan = peak_of(
            &[
                "plan",
                &url,
                "--schema",
                "sensorData",
                "--to",
                "3",
                "--manifest",
                manifest.to_str().unwrap(),
            ],
            1,
        );
        peaks.push((count, detail, listing, plan));
    }
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    for (count, detail, listing, plan) in &peaks {
        println!(
            "{count} objects: status <run> {:.1} MB, status {:.1} MB, plan --manifest {:.1} MB",
            mb(*detail),
            mb(*listing),
            mb(*plan)
        );
    }
    let (_, small_detail, small_listing, small_plan) = peaks[0];
    let (_, large_detail, large_listing, large_plan) = peaks[1];
    // Twenty times the objects: what grows is 8 bytes an object for the recorded attempts
    // (0.8 MB at 100,000) and the allocator's noise, nowhere near the journal's size.
    let allowance = 8 * large as u64 + 16 * 1024 * 1024;
    for (what, small, large_peak) in [
        ("status <run>", small_detail, large_detail),
        ("status", small_listing, large_listing),
        ("plan --manifest", small_plan, large_plan),
    ] {
        assert!(
            large_peak < small + allowance,
            "{what}: {:.1} MB at {} objects, {:.1} MB at {}",
            mb(small),
            peaks[0].0,
            mb(large_peak),
            peaks[1].0
        );
    }
}
