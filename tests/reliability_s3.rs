//! Faults, crashes, concurrent runs and secrets: after anything, every object is either exactly
//! as it was or fully migrated with its version recorded, and nothing leaks.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use pqmigrate::Store;
use pqmigrate::lease::lease_key;
use pqmigrate_sensor_steps::{DataSpec, SCHEMA, generate_file};
use support::*;

fn tiny(seed: u64) -> DataSpec {
    DataSpec {
        rows: 150,
        row_group_rows: 60,
        seed,
    }
}

/// The tag every original carries, which migrations and rollbacks must keep.
fn owner_tag() -> Vec<(String, String)> {
    vec![("owner".to_string(), "fleet".to_string())]
}

/// Puts `count` version 1 files under `prefix`, tagged with [`owner_tag`]; returns their
/// contents by key.
async fn put_dataset(store: &Store, prefix: &str, count: usize) -> BTreeMap<String, Vec<Bytes>> {
    let files: Vec<(String, Bytes)> = (0..count)
        .map(|i| {
            (
                format!("{prefix}/sensorData_{i:04}.parq.snappy"),
                generate_file(&tiny(1), i as u64),
            )
        })
        .collect();
    stream::iter(files.clone())
        .for_each_concurrent(32, |(key, data)| {
            let store = store.clone();
            async move {
                store.put(&key, data, &owner_tag(), Default::default()).await.unwrap();
            }
        })
        .await;
    files.into_iter().map(|(k, d)| (k, vec![d])).collect()
}

/// Checks every object; returns how many are migrated and untouched.
async fn check_all(store: &Store, known: &BTreeMap<String, Vec<Bytes>>) -> (usize, usize) {
    let found: Vec<Found> = stream::iter(known.iter())
        .map(|(key, contents)| {
            let store = store.clone();
            async move { check_object(&store, key, contents, 3).await }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let migrated = found.iter().filter(|f| matches!(f, Found::Migrated { .. })).count();
    (migrated, found.len() - migrated)
}

fn run_args<'a>(url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", url, "--schema", "sensorData", "--to", "3", "--json"];
    args.extend(extra);
    args
}

fn spawn_cli(args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    let mut command = Command::new(cli_binary());
    command
        .args(args)
        .env("PQM_S3_ENDPOINT", s3_endpoint())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    command.spawn().unwrap()
}

async fn wait_for_lease(store: &Store) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while pqmigrate::lease::current_lease(store, &lease_key(SCHEMA))
        .await
        .unwrap()
        .is_none()
    {
        assert!(Instant::now() < deadline, "the first run never took its lease");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn chaos_run_keeps_every_object_whole_and_a_second_run_finishes() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, bucket) = rt.block_on(new_bucket("chaos"));
    let mut known = rt.block_on(put_dataset(&store, "c", 2000));
    let url = format!("s3://{bucket}/c/");

    // 10% transient faults on every data call (throttling, resets, timeouts), 1% of uploads
    // dropped mid-body, and another writer replacing 1% of the objects while the run goes.
    let faults = "throttle=0.05,reset=0.03,timeout=0.02,timeout_ms=100,upload=0.01,seed=17";
    let child = spawn_cli(
        &run_args(
            &url,
            &["--concurrency", "16", "--max-attempts", "3", "--interval-ms", "20"],
        ),
        &[("PQM_INJECT_FAULTS", faults)],
    );
    let replaced: Vec<String> = known.keys().step_by(100).cloned().collect();
    rt.block_on(async {
        for (i, key) in replaced.iter().enumerate() {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let theirs = generate_file(&tiny(2), 10_000 + i as u64);
            store.put(key, theirs.clone(), &[], Default::default()).await.unwrap();
            known.get_mut(key).unwrap().push(theirs);
        }
    });
    let out = child.wait_with_output().unwrap();
    let first = json(&Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    });
    assert!(
        first["request_retries"].as_u64().unwrap() > 100,
        "faults were injected and retried: {first}"
    );

    let (migrated, untouched) = rt.block_on(check_all(&store, &known));
    assert_eq!(migrated + untouched, 2000);
    assert!(migrated > 1500, "most objects migrate despite the faults: {migrated}");

    // The journal agrees with the store: each object it says was migrated carries that
    // version, unless the other writer replaced it afterwards.
    let run_id = first["run_id"].as_str().unwrap();
    let journal = json(&cli(&["status", &format!("s3://{bucket}"), run_id, "--json"], &[]));
    rt.block_on(async {
        for record in journal["records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == "migrated")
        {
            let key = record["key"].as_str().unwrap();
            let head = store.head(key).await.unwrap();
            if !replaced.iter().any(|k| k == key) {
                assert_eq!(head.version_id.as_deref(), record["new_version_id"].as_str(), "{key}");
            }
        }
    });

    // A second run, without faults, finishes the rest; no object is migrated twice.
    let second = cli(&run_args(&url, &["--concurrency", "16"]), &[]);
    assert_eq!(second.code, 0, "{}\n{}", second.stdout, second.stderr);
    let second = json(&second);
    assert_eq!(
        second["by_status"]["migrated"].as_u64().unwrap_or(0) as usize,
        2000 - migrated
    );
    let (migrated, untouched) = rt.block_on(check_all(&store, &known));
    assert_eq!((migrated, untouched), (2000, 0));
    // No content was migrated twice: in each object's history (oldest first), a migration only
    // ever follows a content it was given, never another migration.
    rt.block_on(async {
        let api = store.s3_api().unwrap();
        let sample = known.keys().step_by(50).chain(replaced.iter());
        for key in sample {
            let mut versions = api.list_versions(key).await.unwrap();
            versions.reverse();
            let mut previous_was_migration = false;
            for version in &versions {
                let data = version_bytes(&store, key, &version.version_id).await;
                let is_migration = !known[key].contains(&data);
                assert!(
                    !(is_migration && previous_was_migration),
                    "{key}: migrated twice in a row: {versions:?}"
                );
                previous_was_migration = is_migration;
            }
            assert!(previous_was_migration, "{key}: the newest version is a migration");
        }
        assert!(api.open_multipart_uploads("").await.unwrap().is_empty());
    });
}

/// The keys under `prefix` whose current version is not the one first written: what a run
/// changed, as the store's own version listing tells it.
async fn rewritten_keys(store: &Store, prefix: &str) -> BTreeSet<String> {
    let versions = store.list_versions(prefix).await.unwrap();
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for v in versions.iter().filter(|v| !v.delete_marker) {
        *count.entry(v.key.clone()).or_default() += 1;
    }
    count.into_iter().filter(|(_, n)| *n > 1).map(|(k, _)| k).collect()
}

/// Rolls `run_id` back and checks every object is its original again, bytes and tags.
fn rollback_restores_every_original(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    bucket: &str,
    run_id: &str,
    known: &BTreeMap<String, Vec<Bytes>>,
) {
    let rollback = cli(&["rollback", &format!("s3://{bucket}"), run_id], &[]);
    assert_eq!(rollback.code, 0, "{}\n{}", rollback.stdout, rollback.stderr);
    rt.block_on(async {
        stream::iter(known.iter())
            .for_each_concurrent(32, |(key, contents)| async move {
                assert_eq!(raw_bytes(store, key).await, contents[0], "{key} restored byte for byte");
                assert_eq!(
                    store.tags(key).await.unwrap().unwrap(),
                    owner_tag(),
                    "{key}: original tags"
                );
            })
            .await;
    });
}

fn only_run_id(bucket: &str) -> String {
    let runs = json(&cli(&["status", &format!("s3://{bucket}"), "--json"], &[]));
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0]["info"]["run_id"].as_str().unwrap().to_string()
}

#[test]
fn a_killed_run_is_found_by_status_undone_by_rollback_and_its_lease_lapses() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, bucket) = rt.block_on(new_bucket("crash"));
    let known = rt.block_on(put_dataset(&store, "k", 1500));
    let url = format!("s3://{bucket}/k/");

    let mut child = spawn_cli(
        &run_args(&url, &["--concurrency", "4", "--lease-ttl-secs", "6"]),
        &[("PQM_INJECT_FAULTS", "latency_ms=15")],
    );
    rt.block_on(wait_for_lease(&store));
    std::thread::sleep(Duration::from_millis(2500));
    // SIGKILL: no cleanup, no journal flush, uploads cut wherever they are.
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = Instant::now();

    // The lease of the killed run is still there and reported; a new run is refused until it
    // lapses.
    let status = cli(&["status", &format!("s3://{bucket}")], &[]);
    assert!(
        status.stderr.contains(&format!("lease {}", lease_key(SCHEMA))),
        "{}",
        status.stderr
    );
    let refused = cli(&run_args(&url, &[]), &[]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("is held by run"), "{}", refused.stderr);

    // A request the killed process had fully sent may still be finished by the server.
    std::thread::sleep(Duration::from_secs(1));
    let (migrated, untouched) = rt.block_on(check_all(&store, &known));
    assert!(
        migrated > 0 && untouched > 0,
        "killed mid-run: {migrated} migrated, {untouched} untouched"
    );
    // Every object the run wrote is found by status, as the store's version listing says.
    let run_id = only_run_id(&bucket);
    let rewritten = rt.block_on(rewritten_keys(&store, "k/"));
    assert_eq!(rewritten.len(), migrated);
    assert_eq!(keys_written_by(&format!("s3://{bucket}"), &run_id).0, rewritten);
    std::thread::sleep(Duration::from_secs(9).saturating_sub(killed.elapsed()));

    // Rollback takes the lapsed lease over and restores every object the run wrote.
    rollback_restores_every_original(&rt, &store, &bucket, &run_id, &known);

    let next = cli(&run_args(&url, &["--concurrency", "8"]), &[]);
    assert_eq!(next.code, 0, "{}\n{}", next.stdout, next.stderr);
    assert_eq!(json(&next)["by_status"]["migrated"].as_u64().unwrap() as usize, 1500);
    assert_eq!(rt.block_on(check_all(&store, &known)), (1500, 0));
}

#[test]
fn a_terminated_run_finishes_its_journal_exits_1_and_rolls_back() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, bucket) = rt.block_on(new_bucket("sigterm"));
    let known = rt.block_on(put_dataset(&store, "t", 1500));
    let url = format!("s3://{bucket}/t/");

    let child = spawn_cli(
        &run_args(&url, &["--concurrency", "4"]),
        &[("PQM_INJECT_FAULTS", "latency_ms=15")],
    );
    rt.block_on(wait_for_lease(&store));
    std::thread::sleep(Duration::from_millis(2500));
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a stopped run is not a finished one: {stdout}\n{stderr}"
    );
    assert!(stderr.contains("stopping"), "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["cancelled"], true, "{summary}");
    let migrated = summary["by_status"]["migrated"].as_u64().unwrap() as usize;
    assert!(migrated > 0 && migrated < 1500, "{summary}");

    // The journal is finished, records every write, and agrees with the store.
    let run_id = summary["run_id"].as_str().unwrap();
    let journal = json(&cli(&["status", &format!("s3://{bucket}"), run_id, "--json"], &[]));
    assert_eq!(journal["summary"]["cancelled"], true);
    // The run listing says it was interrupted, not finished.
    let runs = json(&cli(&["status", &format!("s3://{bucket}"), "--json"], &[]));
    let listed = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["info"]["run_id"] == run_id)
        .unwrap();
    assert_eq!(listed["state"]["state"], "interrupted", "{listed}");
    let plain = cli(&["status", &format!("s3://{bucket}")], &[]);
    assert!(plain.stdout.contains("interrupted (cancelled)"), "{}", plain.stdout);
    assert!(journal["changes"]["unrecorded"].as_array().unwrap().is_empty());
    let rewritten = rt.block_on(rewritten_keys(&store, "t/"));
    assert_eq!(rewritten.len(), migrated);
    assert_eq!(keys_written_by(&format!("s3://{bucket}"), run_id).0, rewritten);
    assert!(
        rt.block_on(pqmigrate::lease::current_lease(&store, &lease_key(SCHEMA)))
            .unwrap()
            .is_none(),
        "released"
    );

    rollback_restores_every_original(&rt, &store, &bucket, run_id, &known);
}

#[test]
fn a_second_run_on_the_same_data_set_exits_2_naming_the_holder() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, bucket) = rt.block_on(new_bucket("two-runs"));
    rt.block_on(put_dataset(&store, "t", 60));
    let url = format!("s3://{bucket}/t/");
    let first = spawn_cli(
        &run_args(&url, &["--concurrency", "1"]),
        &[("PQM_INJECT_FAULTS", "latency_ms=20")],
    );
    rt.block_on(wait_for_lease(&store));
    let lease = rt
        .block_on(pqmigrate::lease::current_lease(&store, &lease_key(SCHEMA)))
        .unwrap()
        .unwrap()
        .0;
    let second = cli(&run_args(&url, &[]), &[]);
    assert_eq!(second.code, 2, "{}", second.stderr);
    assert!(
        second
            .stderr
            .contains(&format!("is held by run {} on {}", lease.run_id, lease.host)),
        "{}",
        second.stderr
    );
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        rt.block_on(pqmigrate::lease::current_lease(&store, &lease_key(SCHEMA)))
            .unwrap()
            .is_none(),
        "released"
    );
}

#[test]
fn secrets_never_reach_output_logs_or_the_journal() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, bucket) = rt.block_on(new_bucket("secrets"));
    rt.block_on(async {
        put_dataset(&store, "s", 5).await;
        store
            .put(
                "s/sensorData_bad.parq.snappy",
                Bytes::from_static(b"garbage"),
                &[],
                Default::default(),
            )
            .await
            .unwrap();
    });
    let secret = "pqmSECRETcanary0123456789abcdefSECRET";
    let token = "pqmTOKENcanary9876543210TOKEN";
    let env = [
        ("AWS_SECRET_ACCESS_KEY", secret),
        ("AWS_SESSION_TOKEN", token),
        ("PQM_LOG", "trace"),
    ];
    let url = format!("s3://{bucket}/s/");
    let run = cli(&run_args(&url, &[]), &env);
    assert_eq!(run.code, 1, "one bad object: {}", run.stderr);
    assert!(
        run.stderr.contains("TRACE") || run.stderr.contains("DEBUG"),
        "debug logging was on"
    );
    let status = cli(
        &[
            "status",
            &format!("s3://{bucket}"),
            json(&run)["run_id"].as_str().unwrap(),
            "--json",
        ],
        &env,
    );
    let journal_text: String = rt.block_on(async {
        let keys: Vec<String> = store
            .list_prefix("_pqmigrate/", None)
            .map(|c| c.unwrap().key)
            .collect()
            .await;
        let mut text = String::new();
        for key in keys {
            text.push_str(&String::from_utf8_lossy(&raw_bytes(&store, &key).await));
        }
        text
    });
    for (what, text) in [
        ("stdout", &run.stdout),
        ("stderr", &run.stderr),
        ("status", &status.stdout),
        ("journal", &journal_text),
    ] {
        assert!(!text.contains(secret), "the secret key appears in {what}");
        assert!(!text.contains(token), "the session token appears in {what}");
    }
    // Writes went only to the data set's own keys, the journal and the (released) lease.
    rt.block_on(async {
        let keys: Vec<String> = store.list_prefix("", None).map(|c| c.unwrap().key).collect().await;
        for key in keys {
            assert!(
                key.starts_with("s/sensorData_")
                    || key.starts_with("_pqmigrate/runs/")
                    || key == "_pqmigrate/leases/sensorData.json",
                "unexpected object {key}"
            );
        }
    });
}

#[test]
fn a_local_store_never_writes_outside_its_root() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("root");
    let outside = outer.path().join("escape.parq.snappy");
    std::fs::write(&outside, b"not to be touched").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Store::local(&root).unwrap();
        store
            .put(
                "d/sensorData_0001.parq.snappy",
                generate_file(&tiny(1), 1),
                &[],
                Default::default(),
            )
            .await
            .unwrap();
    });
    let manifest = outer.path().join("manifest.csv");
    std::fs::write(
        &manifest,
        "../escape.parq.snappy\n/../../escape.parq.snappy\nd/sensorData_0001.parq.snappy\n",
    )
    .unwrap();
    let url = format!("file://{}", root.display());
    let out = cli(&run_args(&url, &["--manifest", manifest.to_str().unwrap()]), &[]);
    assert_eq!(std::fs::read(&outside).unwrap(), b"not to be touched");
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let summary = json(&out);
    assert_eq!(summary["by_status"]["migrated"], 1);
    assert_eq!(summary["by_status"]["failed"], 2, "{summary}");
}

/// `stamp` takes the data set's lease, so beside a running `run` it is refused and no object
/// ends with a tag that disagrees with its footer; it tags exactly the version it read, and
/// changes a different version tag only with `--force`.
#[test]
fn stamp_beside_a_run_is_refused_and_changes_no_version_tag_without_force() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, bucket) = rt.block_on(new_bucket("stamp-race"));
    let known = rt.block_on(put_dataset(&store, "r", 500));
    let url = format!("s3://{bucket}/r/");
    let stamp_args = |url: &str, version: &str, extra: &[&str]| {
        let mut args: Vec<String> = ["stamp", url, "--schema", "sensorData", "--version", version, "--json"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };

    let child = spawn_cli(
        &run_args(&url, &["--concurrency", "4"]),
        &[("PQM_INJECT_FAULTS", "latency_ms=15")],
    );
    rt.block_on(wait_for_lease(&store));
    let args = stamp_args(&url, "2", &[]);
    let stamp = cli(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(stamp.code, 2, "{}\n{}", stamp.stdout, stamp.stderr);
    assert!(stamp.stderr.contains("is held by run"), "{}", stamp.stderr);
    let run = child.wait_with_output().unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    // Every object migrated once, with tag and footer agreeing.
    assert_eq!(rt.block_on(check_all(&store, &known)), (500, 0));

    // Fresh objects, one tagged 2 by hand: stamping 1 leaves that one alone unless forced.
    let tagged = "s/sensorData_0001.parq.snappy";
    rt.block_on(async {
        for i in 0..3 {
            let key = format!("s/sensorData_{i:04}.parq.snappy");
            let mut tags = owner_tag();
            if key == tagged {
                tags.push((pqmigrate::version_key(SCHEMA), "2".into()));
            }
            store
                .put(&key, generate_file(&tiny(3), i), &tags, Default::default())
                .await
                .unwrap();
        }
    });
    let fresh = format!("s3://{bucket}/s/");
    let args = stamp_args(&fresh, "1", &[]);
    let stamp = cli(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(stamp.code, 1, "{}\n{}", stamp.stdout, stamp.stderr);
    assert_eq!(json(&stamp)["stamped"], 2);
    assert!(
        stamp.stderr.contains(&format!(
            "{tagged}: already tagged version 2; not changed to 1 without --force"
        )),
        "{}",
        stamp.stderr
    );
    let version_tag = |key: &str| {
        rt.block_on(store.tags(key))
            .unwrap()
            .unwrap()
            .into_iter()
            .find(|(k, _)| *k == pqmigrate::version_key(SCHEMA))
            .map(|(_, v)| v)
    };
    assert_eq!(version_tag(tagged).as_deref(), Some("2"));
    let args = stamp_args(&fresh, "1", &["--force"]);
    let forced = cli(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(forced.code, 0, "{}\n{}", forced.stdout, forced.stderr);
    assert_eq!(json(&forced)["stamped"], 3);
    assert_eq!(version_tag(tagged).as_deref(), Some("1"));
    let tags = rt.block_on(store.tags(tagged)).unwrap().unwrap();
    assert!(tags.contains(&owner_tag()[0]), "other tags kept: {tags:?}");
}

/// A server that ignores `If-Match` and `If-None-Match` (here a proxy strips them) would let
/// two runs hold the lease and let a run overwrite another writer: `run` and `stamp` refuse it
/// before writing anything, naming the guarantee that is missing.
#[test]
fn a_store_that_ignores_conditions_is_refused_before_anything_is_written() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, bucket) = rt.block_on(new_bucket("strip"));
    let known = rt.block_on(put_dataset(&store, "s", 20));
    let (proxy, counts) = rt.block_on(http_proxy(&s3_endpoint(), ProxyMode::StripConditions));
    let url = format!("s3://{bucket}/s/");
    for command in [
        run_args(&url, &[]),
        vec!["stamp", url.as_str(), "--schema", SCHEMA, "--version", "2"],
    ] {
        let out = cli(&command, &[("PQM_S3_ENDPOINT", proxy.as_str())]);
        assert_eq!(out.code, 2, "{command:?}: {}\n{}", out.stdout, out.stderr);
        assert!(
            refused_for_stripped_conditions(&out.stderr),
            "{command:?}: {}",
            out.stderr
        );
    }
    assert!(counts.stripped.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    assert_eq!(rt.block_on(check_all(&store, &known)), (0, 20));
    assert_eq!(rt.block_on(rewritten_keys(&store, "s/")), BTreeSet::new());
    let runs = rt
        .block_on(pqmigrate::journal::list_runs(&store, "_pqmigrate/runs/"))
        .unwrap();
    assert!(runs.is_empty(), "no run started: {runs:?}");
}

/// Every tenth write (objects, journal, lease) is applied by the server and its answer dropped
/// on the way back, by a real TCP proxy: every object is still migrated exactly once, recorded
/// as migrated by the run, and rolled back.
#[test]
fn writes_whose_answers_are_lost_are_migrated_once_recorded_and_rolled_back() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, bucket) = rt.block_on(new_bucket("lost"));
    let known = rt.block_on(put_dataset(&store, "l", 200));
    let (proxy, counts) = rt.block_on(http_proxy(&s3_endpoint(), ProxyMode::LoseEveryNthWrite(10)));
    let url = format!("s3://{bucket}/l/");
    let out = cli(
        &run_args(&url, &["--concurrency", "8"]),
        &[("PQM_S3_ENDPOINT", proxy.as_str())],
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let lost = counts.lost.load(std::sync::atomic::Ordering::Relaxed);
    assert!(lost >= 20, "{lost} answers lost");
    let summary = json(&out);
    assert_eq!(summary["by_status"]["migrated"].as_u64(), Some(200), "{summary}");
    assert_eq!(rt.block_on(check_all(&store, &known)), (200, 0));
    // Exactly one write each: the original and the migration, nothing twice.
    let versions = rt.block_on(store.list_versions("l/")).unwrap();
    assert_eq!(versions.len(), 400, "two versions per object");
    let run_id = summary["run_id"].as_str().unwrap();
    let status = json(&cli(&["status", &format!("s3://{bucket}"), run_id, "--json"], &[]));
    assert!(
        status["changes"]["unrecorded"].as_array().unwrap().is_empty(),
        "{status}"
    );
    assert_eq!(keys_written_by(&format!("s3://{bucket}"), run_id).0.len(), 200);
    rollback_restores_every_original(&rt, &store, &bucket, run_id, &known);
}

/// Keys no object_store path can name (control characters; SeaweedFS itself folds `a//b` and
/// `./`) beside good ones: the listing goes on, each bad key is a per-object failure naming it,
/// the good objects migrate, the journal is finished, and the exit code is 1.
#[test]
fn hostile_keys_fail_alone_and_the_rest_migrates() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, bucket) = rt.block_on(new_bucket("hostile-keys"));
    let known = rt.block_on(put_dataset(&store, "h", 10));
    let hostile = [
        "h/tab\there/sensorData_0001.parq.snappy",
        "h/sensorData_new\nline.parq.snappy",
        "h/sensorData_\u{1}ctrl.parq.snappy",
        "h/sensorData_sp ace+plus%25.parq.snappy",
    ];
    rt.block_on(async {
        for key in hostile {
            let data = generate_file(&tiny(2), 0);
            store.s3_api().unwrap().put_object(key, data).await.unwrap();
        }
    });
    let url = format!("s3://{bucket}/h/");
    let out = cli(&run_args(&url, &[]), &[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let summary = json(&out);
    assert_eq!(summary["by_status"]["migrated"].as_u64(), Some(11), "{summary}");
    assert_eq!(summary["by_status"]["failed"].as_u64(), Some(3), "{summary}");
    let failures = summary["failures"].as_array().unwrap();
    for key in &hostile[..3] {
        let failure = failures
            .iter()
            .find(|f| f[0] == *key)
            .unwrap_or_else(|| panic!("{key:?} not reported: {summary}"));
        let message = failure[1].as_str().unwrap();
        assert!(message.contains("not a valid object key: "), "{message}");
    }
    assert_eq!(rt.block_on(check_all(&store, &known)), (10, 0));
    // The key with a space, a plus and a percent sign is an ordinary key and migrated.
    let plain = hostile[3];
    let migrated = rt.block_on(check_object(&store, plain, &[generate_file(&tiny(2), 0)], 3));
    assert_eq!(migrated, Found::Migrated { version: 3 });
    let run_id = summary["run_id"].as_str().unwrap();
    let status = json(&cli(&["status", &format!("s3://{bucket}"), run_id, "--json"], &[]));
    assert_eq!(
        status["summary"]["by_status"]["failed"].as_u64(),
        Some(3),
        "journal finished: {status}"
    );
}
