//! One data set over several workers, as batch engines run them: `plan --split` writes
//! manifests balanced by bytes, and `run --shard auto` takes its shard from the engine's
//! environment (Kubernetes Indexed Jobs, AWS Batch array jobs, Cloud Run Jobs). Every object is
//! migrated exactly once, the shards never contend for a lease, and `status --merge` shows them
//! as one.

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use pqmigrate_sensor_steps::{DataSpec, SCHEMA, generate_file};
use support::*;

/// Files of mixed sizes, so balancing by bytes differs from balancing by count.
fn file(i: u64) -> Bytes {
    let spec = DataSpec {
        rows: 60 + (i as usize % 7) * 90,
        row_group_rows: 60,
        seed: i,
    };
    generate_file(&spec, i)
}

#[test]
fn four_workers_with_shard_auto_migrate_every_object_exactly_once() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, bucket) = rt.block_on(new_bucket("shards"));
    let files: BTreeMap<String, Bytes> = (0..1000u64)
        .map(|i| (format!("d/day={:02}/sensorData_{i:04}.parq.snappy", i % 30), file(i)))
        .collect();
    rt.block_on(stream::iter(files.clone()).for_each_concurrent(32, |(key, data)| {
        let store = store.clone();
        async move {
            store.put(&key, data, &[], Default::default()).await.unwrap();
        }
    }));
    let url = format!("s3://{bucket}/d/");
    let base = ["--schema", SCHEMA, "--to", "3"];

    // Manifests balanced by bytes to rewrite, each readable by `run --manifest`.
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().to_str().unwrap();
    let mut args = vec!["plan", url.as_str()];
    args.extend(base);
    args.extend(["--split", "4", "--out", out_dir]);
    let split = cli(&args, &[]);
    assert_eq!(split.code, 0, "{}", split.stderr);
    let mut loads = Vec::new();
    let mut listed = 0;
    for i in 0..4 {
        let path = dir.path().join(format!("manifest-{i:03}-of-004.csv"));
        let text = std::fs::read_to_string(&path).unwrap();
        let bytes: usize = text
            .lines()
            .map(|l| {
                let key = l.strip_prefix(&format!("{bucket},")).unwrap().replace("%3D", "=");
                files[&key].len()
            })
            .sum();
        listed += text.lines().count();
        loads.push(bytes);
        let mut args = vec!["plan", url.as_str()];
        args.extend(base);
        args.extend(["--manifest", path.to_str().unwrap(), "--json"]);
        let plan = cli(&args, &[]);
        assert_eq!(plan.code, 0, "{}", plan.stderr);
        assert_eq!(
            json(&plan)["totals"]["by_status"]["needs_migration"].as_u64(),
            Some(text.lines().count() as u64)
        );
    }
    assert_eq!(listed, 1000);
    let largest = files.values().map(Bytes::len).max().unwrap();
    let (min, max) = (loads.iter().min().unwrap(), loads.iter().max().unwrap());
    assert!(max - min <= largest, "balanced by bytes: {loads:?}");

    // Four workers, each told its shard the way its engine would.
    let engines: [&[(&str, &str)]; 4] = [
        &[("JOB_COMPLETION_INDEX", "0"), ("PQM_SHARD_COUNT", "4")],
        &[("AWS_BATCH_JOB_ARRAY_INDEX", "1"), ("PQM_SHARD_COUNT", "4")],
        &[("CLOUD_RUN_TASK_INDEX", "2"), ("CLOUD_RUN_TASK_COUNT", "4")],
        &[("CLOUD_RUN_TASK_INDEX", "3"), ("CLOUD_RUN_TASK_COUNT", "4")],
    ];
    let workers: Vec<_> = engines
        .iter()
        .map(|env| {
            let mut command = Command::new(cli_binary());
            command
                .args([
                    "run", &url, "--schema", SCHEMA, "--to", "3", "--shard", "auto", "--json",
                ])
                .env("PQM_S3_ENDPOINT", s3_endpoint())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            for (k, v) in *env {
                command.env(k, v);
            }
            command.spawn().unwrap()
        })
        .collect();
    let mut migrated = 0;
    for worker in workers {
        let out = worker.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        migrated += summary["by_status"]["migrated"].as_u64().unwrap();
    }
    assert_eq!(migrated, 1000);
    // Exactly once: the original and one migration per object.
    let versions = rt.block_on(store.list_versions("d/")).unwrap();
    let mut per_key: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &versions {
        *per_key.entry(v.key.as_str()).or_default() += 1;
    }
    assert_eq!(per_key.len(), 1000);
    assert!(per_key.values().all(|n| *n == 2), "every object written once");
    let sample: Vec<_> = files.iter().step_by(97).collect();
    rt.block_on(async {
        for (key, data) in sample {
            assert_eq!(
                check_object(&store, key, std::slice::from_ref(data), 3).await,
                Found::Migrated { version: 3 }
            );
        }
    });

    // One view of the four shards.
    let merged = cli(&["status", &format!("s3://{bucket}"), "--merge", "--json"], &[]);
    assert_eq!(merged.code, 0, "{}", merged.stderr);
    let merged = json(&merged);
    let groups = merged.as_array().unwrap();
    assert_eq!(groups.len(), 1, "{merged}");
    assert_eq!(groups[0]["shards"], 4);
    assert_eq!(groups[0]["finished"], 4);
    assert_eq!(groups[0]["counts"]["migrated"], 1000, "{merged}");
    assert_eq!(groups[0]["runs"].as_array().unwrap().len(), 4);
    // Without the engine's variables, --shard auto says what it looked for.
    let out = cli(&["run", &url, "--schema", SCHEMA, "--to", "3", "--shard", "auto"], &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("JOB_COMPLETION_INDEX"), "{}", out.stderr);
}
