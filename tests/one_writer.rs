//! One writer per data set, whatever the command or the split, and bad input refused before
//! anything happens: the lease matrix of every pair of writers, a stamp beside a running shard
//! run, unreadable run records, a rollback whose answers are lost, symbolic links, table formats.

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use pqmigrate::Store;
use pqmigrate::lease::{Claim, Lease, lease_key};
use pqmigrate_sensor_steps::{DataSpec, SCHEMA, generate_file};
use support::*;

fn tiny(seed: u64) -> DataSpec {
    DataSpec {
        rows: 120,
        row_group_rows: 60,
        seed,
    }
}

/// Puts `count` version 1 files under `prefix`; returns their contents by key.
async fn put_dataset(store: &Store, prefix: &str, count: usize) -> BTreeMap<String, Bytes> {
    let files: BTreeMap<String, Bytes> = (0..count)
        .map(|i| {
            (
                format!("{prefix}/sensorData_{i:04}.parquet"),
                generate_file(&tiny(1), i as u64),
            )
        })
        .collect();
    stream::iter(files.clone())
        .for_each_concurrent(16, |(key, data)| {
            let store = store.clone();
            async move {
                store.put(&key, data, &[], Default::default()).await.unwrap();
            }
        })
        .await;
    files
}

/// How many versions the store keeps of each key under `prefix` (the original and one per write).
async fn writes(store: &Store, prefix: &str) -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    for v in store.list_versions(prefix).await.unwrap() {
        *count.entry(v.key).or_default() += 1;
    }
    count
}

fn run_ids(url: &str) -> Vec<String> {
    let out = cli(&["status", url, "--json"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    json(&out)
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["info"]["run_id"].as_str().unwrap().to_string())
        .collect()
}

fn run_id_of(out: &Output) -> String {
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    json(out)["run_id"].as_str().unwrap().to_string()
}

/// Every pair of writers of one data set: an unsharded run, shard 1/2 and shard 1/4 of splits to
/// version 3, a stamp, the rollback of a run and of a shard run. While the first holds the data
/// set (its claim taken as its session takes it), the second, a real command, is refused naming
/// the holder, unless both are shards of one split, which join. Afterwards every object was
/// written once, its tag equal to its footer.
#[test]
fn the_lease_matrix_refuses_every_pair_but_shards_of_one_split() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, bucket) = rt.block_on(new_bucket("matrix"));
    let root = format!("s3://{bucket}");
    let data = rt.block_on(put_dataset(&store, "c", 24));
    rt.block_on(put_dataset(&store, "a", 3));
    rt.block_on(put_dataset(&store, "b", 3));
    let (a_url, b_url, c_url) = (format!("{root}/a/"), format!("{root}/b/"), format!("{root}/c/"));
    // Earlier runs for the rollbacks to name: a plain run and a shard run, both to version 2.
    let plain_run = run_id_of(&cli(&["run", &a_url, "--schema", SCHEMA, "--to", "2", "--json"], &[]));
    let shard_run = run_id_of(&cli(
        &[
            "run", &b_url, "--schema", SCHEMA, "--to", "2", "--shard", "0/2", "--json",
        ],
        &[],
    ));
    let before = run_ids(&root);

    // The claims the commands' sessions take, first: (name, claim).
    let firsts = [
        ("unsharded run", Claim::of_run(3, None, false)),
        ("shard 0/2", Claim::of_run(3, Some("0/2"), false)),
        ("shard 0/4", Claim::of_run(3, Some("0/4"), false)),
        ("stamp", Claim::Exclusive),
        ("rollback of a run", Claim::of_run(2, None, true)),
        ("rollback of a shard run", Claim::of_run(2, Some("0/2"), true)),
    ];
    let run = |extra: &[&str]| {
        let mut args = vec!["run", c_url.as_str(), "--schema", SCHEMA, "--to", "3", "--json"];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let seconds: [(&str, Vec<String>); 6] = [
        ("unsharded run", run(&[])),
        ("shard 1/2", run(&["--shard", "1/2"])),
        ("shard 1/4", run(&["--shard", "1/4"])),
        (
            "stamp",
            ["stamp", &c_url, "--schema", SCHEMA, "--version", "3"]
                .map(String::from)
                .to_vec(),
        ),
        (
            "rollback of a run",
            ["rollback", &root, &plain_run].map(String::from).to_vec(),
        ),
        (
            "rollback of a shard run",
            ["rollback", &root, &shard_run].map(String::from).to_vec(),
        ),
    ];
    let mut joined = Vec::new();
    for (first, claim) in firsts {
        for (second, args) in &seconds {
            let holder = format!("holder-{}", first.replace(' ', "-"));
            let lease = rt
                .block_on(Lease::acquire(
                    &store,
                    &lease_key(SCHEMA),
                    claim,
                    &holder,
                    "t",
                    Duration::from_secs(60),
                ))
                .unwrap();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = cli(&args, &[]);
            let together = matches!(
                (first, *second),
                ("shard 0/2", "shard 1/2") | ("shard 0/4", "shard 1/4")
            );
            if together {
                assert_eq!(
                    out.code, 0,
                    "{first} then {second}: joined\n{}\n{}",
                    out.stdout, out.stderr
                );
                joined.push(run_id_of(&out));
            } else {
                assert_eq!(
                    out.code, 2,
                    "{first} then {second}: refused\n{}\n{}",
                    out.stdout, out.stderr
                );
                assert!(
                    out.stderr.contains(&format!("is held by run {holder}")) && out.stderr.contains("until"),
                    "{first} then {second}: {}",
                    out.stderr
                );
            }
            rt.block_on(lease.release()).unwrap();
        }
    }
    // Only the joined shards started runs; nothing else journaled anything.
    let mut expected = before.clone();
    expected.extend(joined);
    expected.sort();
    assert_eq!(run_ids(&root), expected);
    // The rest of the data set, then every object: written once, tag equal to footer.
    let rest = cli(&["run", &c_url, "--schema", SCHEMA, "--to", "3", "--json"], &[]);
    assert_eq!(rest.code, 0, "{}", rest.stderr);
    let counts = rt.block_on(writes(&store, "c/"));
    assert_eq!(counts.len(), data.len());
    assert!(
        counts.values().all(|n| *n == 2),
        "every object written once: {counts:?}"
    );
    rt.block_on(async {
        for (key, original) in &data {
            let found = check_object(&store, key, std::slice::from_ref(original), 3).await;
            assert_eq!(found, Found::Migrated { version: 3 }, "{key}");
        }
    });
    // The refused rollbacks touched nothing: the earlier runs' objects are at version 2.
    for prefix in ["a/", "b/"] {
        let counts = rt.block_on(writes(&store, prefix));
        assert!(counts.values().all(|n| *n <= 2), "{prefix}: {counts:?}");
    }
}

/// Real processes: while a shard run is at work, a stamp, an unsharded run and a shard of
/// another split are refused; when it ends, its shard is at version 3 with every step, the
/// other shard untouched and untagged.
#[test]
fn a_stamp_beside_a_running_shard_run_is_refused() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, bucket) = rt.block_on(new_bucket("stamp-shard"));
    let data = rt.block_on(put_dataset(&store, "s", 60));
    let url = format!("s3://{bucket}/s/");
    let mut shard = Command::new(cli_binary());
    shard
        .args([
            "run",
            &url,
            "--schema",
            SCHEMA,
            "--to",
            "3",
            "--shard",
            "0/2",
            "--concurrency",
            "1",
            "--json",
        ])
        .env("PQM_S3_ENDPOINT", s3_endpoint())
        .env("PQM_INJECT_FAULTS", "latency_ms=40")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = shard.spawn().unwrap();
    let started = Instant::now();
    while rt
        .block_on(pqmigrate::lease::current_lease(&store, &lease_key(SCHEMA)))
        .unwrap()
        .is_none()
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the shard run never took the lease"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let refused = [
        vec!["stamp", &url, "--schema", SCHEMA, "--version", "3"],
        vec!["run", &url, "--schema", SCHEMA, "--to", "3"],
        vec!["run", &url, "--schema", SCHEMA, "--to", "3", "--shard", "1/4"],
        vec!["run", &url, "--schema", SCHEMA, "--to", "2", "--shard", "1/2"],
    ];
    for args in refused {
        let out = cli(&args, &[]);
        assert_eq!(out.code, 2, "{args:?}: {}\n{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("as shard 0/2 of a split to version 3"),
            "{}",
            out.stderr
        );
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let migrated = summary["by_status"]["migrated"].as_u64().unwrap() as usize;
    assert!(migrated > 10 && migrated < 50, "{summary}");
    rt.block_on(async {
        let mut found = BTreeMap::new();
        for (key, original) in &data {
            let f = check_object(&store, key, std::slice::from_ref(original), 3).await;
            *found.entry(format!("{f:?}")).or_insert(0usize) += 1;
        }
        assert_eq!(found.get("Migrated { version: 3 }"), Some(&migrated), "{found:?}");
        assert_eq!(found.get("Untouched"), Some(&(data.len() - migrated)), "{found:?}");
    });
}

/// Each bad value refused with exit 2 and one message naming it and what is allowed, before any
/// request that writes: no journal, no folder, no object touched.
#[test]
fn bad_input_is_refused_before_anything_happens() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, bucket) = rt.block_on(new_bucket("bad-input"));
    let data = rt.block_on(put_dataset(&store, "d", 4));
    let url = format!("s3://{bucket}/d/");
    let base = ["run", url.as_str(), "--schema", SCHEMA, "--to", "3"];
    let cases: [(&[&str], &str); 8] = [
        (&["--concurrency", "0"], "invalid value '0' for '--concurrency"),
        (&["--max-requests-per-second", "0"], "the rate must be a number above 0"),
        (&["--max-requests-per-second=-2"], "the rate must be a number above 0"),
        (
            &["--scan-concurrency", "0"],
            "invalid value '0' for '--scan-concurrency",
        ),
        (&["--to", "0"], "versions start at 1"),
        (&["--to", "99"], "step sensorData:98->99 is missing"),
        (&["--schema", ""], "the schema id is empty"),
        (&["--schema", "otherSchema"], "no step of \"otherSchema\" is registered"),
    ];
    for (extra, message) in cases {
        let mut args: Vec<&str> = base.to_vec();
        // A later --to or --schema replaces the one in the base.
        for flag in ["--to", "--schema"] {
            if extra.first() == Some(&flag) {
                let at = args.iter().position(|a| *a == flag).unwrap();
                args.drain(at..at + 2);
            }
        }
        args.extend_from_slice(extra);
        let out = cli(&args, &[]);
        assert_eq!(out.code, 2, "{extra:?}: {}\n{}", out.stdout, out.stderr);
        assert!(out.stderr.contains(message), "{extra:?}: {}", out.stderr);
    }
    let stamp = cli(&["stamp", &url, "--schema", SCHEMA, "--version", "0"], &[]);
    assert_eq!(stamp.code, 2, "{}", stamp.stderr);
    let rollback = cli(&["rollback", &url, "r", "--concurrency", "0"], &[]);
    assert_eq!(rollback.code, 2, "{}", rollback.stderr);
    // Wrong credentials and an unreachable endpoint: the probe's failure is a refusal.
    // (SeaweedFS as the tests start it takes any credentials: Azurite checks its account key.)
    let (_, container) = Cloud::Azure.new_store("bad-credentials");
    let azure_base = ["run", container.as_str(), "--schema", SCHEMA, "--to", "3"];
    let wrong = cli(
        &azure_base,
        &[("AZURE_STORAGE_ACCOUNT_KEY", "bm90LXRoZS1hY2NvdW50LWtleQ==")],
    );
    assert_eq!(wrong.code, 2, "{}", wrong.stderr);
    assert!(wrong.stderr.contains("403"), "{}", wrong.stderr);
    assert!(
        wrong.stderr.contains("could not be reached or checked"),
        "{}",
        wrong.stderr
    );
    let unreachable = cli(&base, &[("PQM_S3_ENDPOINT", "http://127.0.0.1:1")]);
    assert_eq!(unreachable.code, 2, "{}", unreachable.stderr);
    assert!(
        unreachable.stderr.contains("Connection refused"),
        "{}",
        unreachable.stderr
    );
    // Nothing happened: no run, every object as it was.
    assert!(run_ids(&format!("s3://{bucket}")).is_empty());
    rt.block_on(async {
        for (key, original) in &data {
            assert_eq!(&raw_bytes(&store, key).await, original, "{key}");
        }
    });
    // A local root that does not exist is refused, never created.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir");
    let out = cli(
        &[
            "run",
            &format!("file://{}", missing.display()),
            "--schema",
            SCHEMA,
            "--to",
            "3",
        ],
        &[],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("is not an existing folder"), "{}", out.stderr);
    assert!(!dir.path().join("no").exists(), "never created");
}

/// A junk run record is named and skipped by `status` and stops no rollback; a rollback whose
/// write answers are lost recognises its own writes by their attempt id and restores all.
#[test]
fn a_junk_run_record_and_lost_answers_stop_no_rollback() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, bucket) = rt.block_on(new_bucket("junk-lost"));
    let data = rt.block_on(put_dataset(&store, "j", 60));
    let root = format!("s3://{bucket}");
    let run = run_id_of(&cli(
        &["run", &format!("{root}/j/"), "--schema", SCHEMA, "--to", "3", "--json"],
        &[],
    ));
    rt.block_on(store.put(
        "_pqmigrate/runs/x/run.json",
        Bytes::from_static(b"{ not json"),
        &[],
        Default::default(),
    ))
    .unwrap();
    let status = cli(&["status", &root], &[]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(status.stdout.contains(&run), "{}", status.stdout);
    assert!(
        status
            .stderr
            .contains("run record _pqmigrate/runs/x/run.json cannot be read and is skipped"),
        "{}",
        status.stderr
    );
    let (proxy, counts) = rt.block_on(http_proxy(&s3_endpoint(), ProxyMode::LoseEveryNthWrite(4)));
    let rollback = cli(
        &["rollback", &root, &run, "--json"],
        &[("PQM_S3_ENDPOINT", proxy.as_str())],
    );
    assert_eq!(rollback.code, 0, "{}\n{}", rollback.stdout, rollback.stderr);
    assert!(counts.lost.load(std::sync::atomic::Ordering::Relaxed) >= 10);
    let summary = json(&rollback);
    assert_eq!(summary["by_status"]["migrated"].as_u64(), Some(60), "{summary}");
    assert!(summary["failures"].as_array().unwrap().is_empty(), "{summary}");
    rt.block_on(async {
        for (key, original) in &data {
            assert_eq!(&raw_bytes(&store, key).await, original, "{key} restored");
        }
    });
}

/// A key that is a symbolic link under a local root fails alone, naming the key, and stays a
/// link; the files beside it migrate and roll back.
#[cfg(unix)]
#[test]
fn symbolic_links_under_a_local_root_are_refused_and_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("d")).unwrap();
    let mut originals = BTreeMap::new();
    for i in 0..3u64 {
        let path = root.join(format!("d/sensorData_{i}.parquet"));
        let data = generate_file(&tiny(2), i);
        std::fs::write(&path, &data).unwrap();
        originals.insert(path, data);
    }
    let link = root.join("d/sensorData_link.parquet");
    std::os::unix::fs::symlink(root.join("d/sensorData_0.parquet"), &link).unwrap();
    let url = format!("file://{}", root.display());
    let out = cli(&["run", &url, "--schema", SCHEMA, "--to", "3", "--json"], &[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let summary = json(&out);
    assert_eq!(summary["by_status"]["migrated"].as_u64(), Some(3), "{summary}");
    let failures = summary["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{summary}");
    assert_eq!(failures[0][0], "d/sensorData_link.parquet");
    assert!(
        failures[0][1].as_str().unwrap().contains("is a symbolic link"),
        "{summary}"
    );
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    let run = summary["run_id"].as_str().unwrap();
    let rollback = cli(&["rollback", &url, run], &[]);
    assert_eq!(rollback.code, 0, "{}\n{}", rollback.stdout, rollback.stderr);
    for (path, data) in &originals {
        assert_eq!(&std::fs::read(path).unwrap(), data, "{}", path.display());
    }
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
}

/// A Delta Lake table written by `deltalake` and an Iceberg table written by `pyiceberg`: a run
/// or a stamp at or under either is refused naming the table, and nothing is written; the
/// override lets a run start.
#[test]
fn delta_and_iceberg_tables_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let made = Command::new("python3")
        .args(["tests/interop/make_tables.py", root.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let url = format!("file://{}", root.display());
    let snapshot = || {
        let mut files = BTreeMap::new();
        for entry in walk(root) {
            files.insert(entry.clone(), std::fs::read(&entry).unwrap());
        }
        files
    };
    let before = snapshot();
    let tables = [
        (
            "lake/delta/",
            "Delta Lake table at lake/delta/ (_delta_log/ found there)",
        ),
        ("lake/delta/part-", "Delta Lake table at lake/delta/"),
        (
            "lake/ice/db/readings/data/",
            "Iceberg table at lake/ice/db/readings/ (metadata/",
        ),
    ];
    let refused = |out: &Output, table: &str| {
        assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains(table) && out.stderr.contains("breaks the table for every reader"),
            "{}",
            out.stderr
        );
    };
    for (prefix, table) in tables {
        refused(
            &cli(&["run", &url, "--schema", SCHEMA, "--to", "3", "--prefix", prefix], &[]),
            table,
        );
    }
    // The same tables in a bucket, byte for byte: run and stamp are refused there too.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, bucket) = rt.block_on(new_bucket("tables"));
    rt.block_on(async {
        for (path, data) in &before {
            let key = path.strip_prefix(root).unwrap().to_str().unwrap();
            store
                .put(key, Bytes::from(data.clone()), &[], Default::default())
                .await
                .unwrap();
        }
    });
    let s3 = format!("s3://{bucket}");
    for (prefix, table) in tables {
        refused(
            &cli(&["run", &s3, "--schema", SCHEMA, "--to", "3", "--prefix", prefix], &[]),
            table,
        );
        refused(
            &cli(
                &["stamp", &s3, "--schema", SCHEMA, "--version", "2", "--prefix", prefix],
                &[],
            ),
            table,
        );
    }
    assert!(run_ids(&s3).is_empty());
    let tags = rt.block_on(
        store.tags(
            before
                .keys()
                .next()
                .unwrap()
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap(),
        ),
    );
    assert_eq!(tags.unwrap(), Some(vec![]), "nothing stamped");
    let after = snapshot();
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>());
    assert!(before == after, "nothing written");
    let allowed = cli(
        &[
            "run",
            &url,
            "--schema",
            SCHEMA,
            "--to",
            "3",
            "--prefix",
            "lake/delta/",
            "--suffix",
            ".parquet",
            "--allow-table-files",
            "--json",
        ],
        &[],
    );
    assert_eq!(
        allowed.code, 1,
        "the table's file is no sensorData file: {}",
        allowed.stderr
    );
    assert_eq!(
        json(&allowed)["by_status"]["failed"].as_u64(),
        Some(1),
        "{}",
        allowed.stdout
    );
}

/// Every file under `dir`, skipping pqmigrate's own folder.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.ends_with("_pqmigrate") {
            continue;
        }
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// A file whose tag says 3 while its footer says 2: `plan` trusts the tag (its documented
/// shortcut), `validate` reads every footer and names the file with both values.
#[test]
fn validate_names_every_object_whose_tag_and_footer_disagree() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, bucket) = rt.block_on(new_bucket("validate"));
    rt.block_on(put_dataset(&store, "v", 4));
    let url = format!("s3://{bucket}/v/");
    run_id_of(&cli(&["run", &url, "--schema", SCHEMA, "--to", "2", "--json"], &[]));
    let clean = cli(&["validate", &url, "--schema", SCHEMA], &[]);
    assert_eq!(clean.code, 0, "{}\n{}", clean.stdout, clean.stderr);
    assert!(
        clean
            .stdout
            .contains("4 objects checked: 0 whose tag and footer disagree"),
        "{}",
        clean.stdout
    );
    let edited = "v/sensorData_0002.parquet";
    let tags = vec![(pqmigrate::version_key(SCHEMA), "3".to_string())];
    rt.block_on(store.put_tags(edited, &tags)).unwrap();
    let plan = json(&cli(
        &["plan", &url, "--schema", SCHEMA, "--to", "3", "--json", "--list"],
        &[],
    ));
    let entry = plan["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == edited)
        .unwrap();
    assert_eq!(entry["status"], "at_target", "the plan trusts the tag: {entry}");
    let out = cli(&["validate", &url, "--schema", SCHEMA], &[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(&format!("{edited}: tag says 3, footer says 2")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("4 objects checked: 1 whose tag and footer disagree, 0 unreadable"),
        "{}",
        out.stdout
    );
    let out = cli(&["validate", &url, "--schema", SCHEMA, "--json"], &[]);
    let lines: Vec<serde_json::Value> = out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["key"], edited);
    assert_eq!(
        (lines[0]["tag"].as_u64(), lines[0]["footer"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(lines[1]["disagree"], 1);
}
