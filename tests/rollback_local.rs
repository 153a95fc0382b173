//! Rollback on local disk: a write keeps the file it replaces as a hard link under
//! `_pqmigrate/versions/`, so a run is undone there byte for byte, as on a versioned bucket; and
//! each written file names its run and attempt in its user metadata (extended attributes), so a
//! killed run's writes are found there as on S3.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::Attribute;

use pqmigrate::rollback::{RollbackOptions, rollback_run};
use pqmigrate::{Status, Store};
use pqmigrate_sensor_steps::{DataSpec, SCHEMA, generate_file};
use support::*;

const RUNS: &str = "_pqmigrate/runs/";

#[tokio::test]
async fn a_run_on_local_disk_is_rolled_back_byte_for_byte_from_the_kept_versions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::local(dir.path()).unwrap();
    assert!(store.capabilities().versions && store.versioning_enabled().await.unwrap());
    // Two files large enough for the data region to be copied by the kernel, one small.
    let spec = DataSpec {
        rows: 30_000,
        row_group_rows: 10_000,
        seed: 5,
    };
    let mut originals = Vec::new();
    for i in 0..3u64 {
        let key = format!("d/sensorData_{i:03}.parquet");
        let data = if i < 2 {
            generate_file(&spec, i)
        } else {
            generate_file(&small_spec(), i)
        };
        store.put(&key, data.clone(), &[], Default::default()).await.unwrap();
        originals.push((key, data));
    }
    let before: Vec<String> = {
        let mut ids = Vec::new();
        for (key, _) in &originals {
            ids.push(
                store
                    .head(key)
                    .await
                    .unwrap()
                    .version_id
                    .expect("local files have version ids"),
            );
        }
        ids
    };
    let report = run_to_3(&store, "d/", 3).await;

    // The store's own version listing: each object's migrated file is current, the original
    // kept, readable by its version id, and the same file (a link, not a copy).
    let versions = store.list_versions("d/").await.unwrap();
    assert_eq!(versions.len(), 6, "{versions:?}");
    for ((key, data), old) in originals.iter().zip(&before) {
        let of_key: Vec<_> = versions.iter().filter(|v| &v.key == key).collect();
        assert_eq!(of_key.len(), 2, "{key}: {of_key:?}");
        let kept = of_key.iter().find(|v| !v.is_latest).expect("a kept version");
        assert_eq!(&kept.version_id, old);
        assert_eq!(
            &version_bytes(&store, key, old).await,
            data,
            "{key}: kept byte for byte"
        );
        assert_eq!(
            footer_version(&raw_bytes(&store, key).await, &pqmigrate::version_key(SCHEMA)),
            Some(3)
        );
        use std::os::unix::fs::MetadataExt;
        let kept_file = dir.path().join("_pqmigrate/versions").join(key).join(old);
        assert_eq!(
            std::fs::metadata(&kept_file).unwrap().nlink(),
            1,
            "{key}: the old file, linked once it was replaced"
        );
    }

    // Another writer changes one object after the run.
    let changed = &originals[2].0;
    let rollback = roll_back_around_a_change(&store, &report, changed, 2).await;
    for (key, data) in &originals[..2] {
        assert_eq!(&raw_bytes(&store, key).await, data, "{key} byte for byte");
        let head = store.head(key).await.unwrap();
        assert_eq!(
            head.attributes
                .get(&Attribute::Metadata("pqm-run".into()))
                .map(|v| v.as_ref()),
            Some(rollback.info.run_id.as_str()),
            "{key}: the restore names the rollback"
        );
    }
    // Again: the two restored are already restored (their metadata names the rollback), the
    // changed one still refused.
    let again = rollback_run(&store, RUNS, &report.info.run_id, &RollbackOptions::default())
        .await
        .unwrap();
    assert_eq!(again.summary.count(Status::AtTarget), 2, "{:?}", again.summary);
    assert_eq!(again.summary.count(Status::Failed), 1);
}

/// A run killed with SIGKILL on local disk: every file it replaced is found by `status` (the
/// ones its journal recorded, and the ones only its intents and the files' own metadata tell
/// of), agrees with the kept versions, and `rollback` restores every original byte for byte.
/// Two runs (1->2, then 2->3) undone newest first leave every file as it was, byte for byte.
#[tokio::test]
async fn runs_on_local_disk_are_undone_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::local(dir.path()).unwrap();
    undo_newest_first(&store, "n/").await;
}

#[test]
fn a_killed_run_on_local_disk_is_found_by_status_and_undone_by_rollback() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::local(dir.path()).unwrap();
    assert!(
        store.capabilities().user_metadata,
        "this file system keeps extended attributes"
    );
    let known: BTreeMap<String, Bytes> = (0..400u64)
        .map(|i| {
            (
                format!("k/sensorData_{i:04}.parq.snappy"),
                generate_file(&small_spec(), i),
            )
        })
        .collect();
    rt.block_on(async {
        for (key, data) in &known {
            store.put(key, data.clone(), &[], Default::default()).await.unwrap();
        }
    });
    let url = format!("file://{}", dir.path().display());
    let mut child = Command::new(cli_binary())
        .args(["run", &url, "--prefix", "k/", "--schema", SCHEMA, "--to", "3", "--json"])
        .args(["--concurrency", "4", "--lease-ttl-secs", "3"])
        .env("PQM_INJECT_FAULTS", "latency_ms=15")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let runs = dir.path().join("_pqmigrate/runs");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&runs).map(|d| d.count()).unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "the run never started its journal");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(2500));
    // SIGKILL: no cleanup, no journal flush.
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = Instant::now();

    let rewritten: BTreeSet<String> = rt.block_on(async {
        let mut count: BTreeMap<String, usize> = BTreeMap::new();
        for v in store.list_versions("k/").await.unwrap() {
            *count.entry(v.key).or_default() += 1;
        }
        count.into_iter().filter(|(_, n)| *n > 1).map(|(k, _)| k).collect()
    });
    assert!(
        !rewritten.is_empty() && rewritten.len() < known.len(),
        "killed mid-run: {} of {} rewritten",
        rewritten.len(),
        known.len()
    );
    let runs = json(&cli(&["status", &url, "--json"], &[]));
    let run_id = runs[0]["info"]["run_id"].as_str().unwrap().to_string();
    let (found, unrecorded) = keys_written_by(&url, &run_id);
    assert_eq!(
        found, rewritten,
        "status finds exactly what the run replaced ({unrecorded} unrecorded)"
    );
    eprintln!(
        "killed after {} of {} objects, {unrecorded} of them unrecorded in the journal",
        found.len(),
        known.len()
    );

    // Once the killed run's lease lapses, rollback restores every original.
    std::thread::sleep(Duration::from_secs(5).saturating_sub(killed.elapsed()));
    let rollback = cli(&["rollback", &url, &run_id], &[]);
    assert_eq!(rollback.code, 0, "{}\n{}", rollback.stdout, rollback.stderr);
    rt.block_on(async {
        for (key, data) in &known {
            assert_eq!(&raw_bytes(&store, key).await, data, "{key} restored byte for byte");
        }
    });
}
