//! The `pqmigrate` CLI (the sensor_data example binary: the CLI with the sensorData steps) on a
//! 1,000-object data set in SeaweedFS: plan counts, run, failures, re-run, status, rollback,
//! throttling, multi-page listing and the terminal summary.

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use pqmigrate::rewrite::rewrite;
use pqmigrate::{Registry, version_key};
use pqmigrate_sensor_steps::{DataSpec, SCHEMA, generate_file};
use support::*;

const DAYS: [&str; 3] = ["day=01", "day=02", "day=03"];

fn tiny() -> DataSpec {
    DataSpec {
        rows: 120,
        row_group_rows: 50,
        seed: 9,
    }
}

/// A file at `version` (1, 2 or 3), with its footer saying so (except v1, which has none).
fn file_at(index: u64, version: u32, footer_version: u32) -> Bytes {
    let v1 = generate_file(&tiny(), index);
    if version == 1 {
        return v1;
    }
    let registry = Registry::from_inventory().unwrap();
    let chain = registry.chain(SCHEMA, 1, version).unwrap();
    let footer = pqmigrate::rewrite::Footer::parse("x", &v1).unwrap();
    rewrite("x", v1, &footer, &chain, &version_key(SCHEMA), footer_version)
        .unwrap()
        .data
}

/// An object to put: key, content, tags.
type Fixture = (String, Bytes, Vec<(String, String)>);

/// What was put where, and what the plan should count.
struct DataSet {
    bucket: String,
    originals: BTreeMap<String, Bytes>,
    corrupt: Vec<String>,
    ahead: String,
    other_schema: String,
}

fn key(day: usize, name: &str) -> String {
    format!("parquet/year=2019/month=3/{}/{name}", DAYS[day % 3])
}

/// 1,000 objects: 600 at v1, 150 at v2, 200 at v3, one at v4, 2 corrupt, one of another schema,
/// 23 with the wrong suffix and 23 failing the name filter, spread over three day prefixes.
async fn build_dataset(name: &str) -> DataSet {
    let (store, bucket) = new_bucket(name).await;
    let tag = version_key(SCHEMA);
    let mut objects: Vec<Fixture> = Vec::new();
    let mut n = 0u64;
    let mut next = |objects: &mut Vec<_>, name: String, data: Bytes, tags: Vec<(String, String)>| {
        objects.push((key(n as usize, &name), data, tags));
        n += 1;
    };
    let v2 = file_at(10_000, 2, 2);
    let v3 = file_at(20_000, 3, 3);
    for i in 0..600 {
        next(
            &mut objects,
            format!("sensorData_{i:04}.parq.snappy"),
            generate_file(&tiny(), i),
            vec![],
        );
    }
    for i in 600..750 {
        next(
            &mut objects,
            format!("sensorData_{i:04}.parq.snappy"),
            v2.clone(),
            vec![(tag.clone(), "2".into())],
        );
    }
    for i in 750..950 {
        next(
            &mut objects,
            format!("sensorData_{i:04}.parq.snappy"),
            v3.clone(),
            vec![(tag.clone(), "3".into())],
        );
    }
    next(
        &mut objects,
        "sensorData_0950.parq.snappy".into(),
        file_at(30_000, 3, 4),
        vec![(tag.clone(), "4".into())],
    );
    let mut corrupt = Vec::new();
    for i in 951..953 {
        let mut bytes = generate_file(&tiny(), i).to_vec();
        let len = bytes.len();
        bytes.truncate(len - 100);
        bytes.extend_from_slice(b"garbage!PAR1");
        next(
            &mut objects,
            format!("sensorData_{i:04}.parq.snappy"),
            Bytes::from(bytes),
            vec![],
        );
        corrupt.push(objects.last().unwrap().0.clone());
    }
    next(
        &mut objects,
        "sensorData_0953.parq.snappy".into(),
        generate_file(&tiny(), 953),
        vec![("schema:weather:version".into(), "1".into())],
    );
    for i in 0..23 {
        next(
            &mut objects,
            format!("sensorData_{i:04}.parquet"),
            generate_file(&tiny(), 1),
            vec![],
        );
        next(
            &mut objects,
            format!("weather_{i:04}.parq.snappy"),
            generate_file(&tiny(), 1),
            vec![],
        );
    }
    assert_eq!(objects.len(), 1000);
    let ahead = objects[950].0.clone();
    let other_schema = objects[953].0.clone();
    // Outside the prefixes: never scanned.
    objects.push((
        "archive/sensorData_0001.parq.snappy".into(),
        generate_file(&tiny(), 1),
        vec![],
    ));

    let originals = objects.iter().map(|(k, d, _)| (k.clone(), d.clone())).collect();
    stream::iter(objects)
        .for_each_concurrent(32, |(key, data, tags)| {
            let store = store.clone();
            async move {
                store.put(&key, data, &tags, Default::default()).await.unwrap();
            }
        })
        .await;
    DataSet {
        bucket,
        originals,
        corrupt,
        ahead,
        other_schema,
    }
}

fn dataset_args(bucket: &str) -> Vec<String> {
    let mut args = vec![format!("s3://{bucket}")];
    for day in DAYS {
        args.push("--prefix".into());
        args.push(format!("parquet/year=2019/month=3/{day}/"));
    }
    args.extend(
        [
            "--schema",
            "schema:sensorData:version",
            "--type",
            ".parq.snappy",
            "--filter",
            "sensorData_",
        ]
        .map(String::from),
    );
    args
}

fn with<'a>(command: &'a str, dataset: &'a [String], extra: &'a [&'a str]) -> Vec<&'a str> {
    let mut args = vec![command];
    args.extend(dataset.iter().map(String::as_str));
    args.extend(extra);
    args
}

#[test]
fn plan_run_rerun_status_and_rollback_of_a_thousand_objects() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ds = rt.block_on(build_dataset("cli-thousand"));
    let args = dataset_args(&ds.bucket);

    // Plan, listing 100 keys a page so every prefix takes several pages.
    let plan = cli(
        &with("plan", &args, &["--to", "3", "--json", "--page-size", "100"]),
        &[],
    );
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let totals = &json(&plan)["totals"];
    assert_eq!(totals["objects"], 954);
    let classes = &totals["by_status"];
    assert_eq!(classes["needs_migration"], 752);
    assert_eq!(classes["at_target"], 200);
    assert_eq!(classes["ahead_of_target"], 1);
    assert_eq!(classes["other_schema"], 1);
    assert!(
        classes.get("missing_step").is_none() && classes.get("unreadable").is_none(),
        "{classes}"
    );
    assert_eq!(totals["by_version"]["1"], 602);
    assert_eq!(totals["by_version"]["2"], 150);

    // Run: every eligible object migrated, the two corrupt ones reported by key and cause.
    let run = cli(
        &with("run", &args, &["--to", "3", "--json", "--concurrency", "16"]),
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let summary = json(&run);
    assert_eq!(summary["by_status"]["migrated"], 750);
    assert_eq!(summary["by_status"]["failed"], 2);
    assert_eq!(summary["by_status"]["at_target"], 200);
    assert_eq!(summary["by_status"]["ahead_of_target"], 1);
    let failures: Vec<String> = summary["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f[1].as_str().unwrap().to_string())
        .collect();
    for key in &ds.corrupt {
        let f = failures
            .iter()
            .find(|f| f.starts_with(key.as_str()))
            .unwrap_or_else(|| panic!("{key} not reported: {failures:?}"));
        assert!(f.contains("not a readable Parquet file"), "{f}");
    }
    let first_run = summary["run_id"].as_str().unwrap().to_string();

    let store = other_client(&ds.bucket);
    rt.block_on(async {
        assert_eq!(
            raw_bytes(&store, &ds.ahead).await,
            ds.originals[&ds.ahead],
            "v4 object untouched"
        );
        assert_eq!(
            raw_bytes(&store, &ds.other_schema).await,
            ds.originals[&ds.other_schema]
        );
        let sample = "parquet/year=2019/month=3/day=01/sensorData_0000.parq.snappy";
        let migrated = raw_bytes(&store, sample).await;
        assert_features_match(&read_all(&ds.originals[sample]), &read_all(&migrated));
        assert_eq!(
            store.s3_api().unwrap().get_tags(sample).await.unwrap(),
            vec![(version_key(SCHEMA), "3".to_string())]
        );
        // Replace the corrupt files with good ones.
        for (i, key) in ds.corrupt.iter().enumerate() {
            store
                .put(key, generate_file(&tiny(), 5000 + i as u64), &[], Default::default())
                .await
                .unwrap();
        }
    });

    let rerun = cli(&with("run", &args, &["--to", "3", "--json"]), &[]);
    assert_eq!(rerun.code, 0, "{}", rerun.stderr);
    let second = json(&rerun);
    assert_eq!(second["by_status"]["migrated"], 2, "exactly the two replaced files");
    assert_eq!(second["by_status"]["at_target"], 950);

    let status = cli(&["status", &format!("s3://{}", ds.bucket), "--json"], &[]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    let runs = json(&status);
    assert_eq!(runs.as_array().unwrap().len(), 2, "{runs}");
    assert_eq!(runs[0]["info"]["run_id"], first_run.as_str());
    assert_eq!(runs[0]["unrecorded_writes"], 0, "a finished run recorded every write");

    // Rollback of the first run: every object it migrated has its original bytes back.
    let rollback = cli(&["rollback", &format!("s3://{}", ds.bucket), &first_run, "--json"], &[]);
    assert_eq!(rollback.code, 0, "{}\n{}", rollback.stdout, rollback.stderr);
    let summary = json(&rollback);
    assert_eq!(summary["rolls_back"], first_run.as_str());
    assert_eq!(summary["by_status"]["migrated"], 750, "{summary}");
    // The rollback is a run of its own: status lists it, with a record per object restored.
    let rollback_run = summary["run_id"].as_str().unwrap();
    let journal = json(&cli(
        &["status", &format!("s3://{}", ds.bucket), rollback_run, "--json"],
        &[],
    ));
    assert_eq!(journal["info"]["rolls_back"], first_run.as_str());
    let restored: Vec<&str> = journal["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "migrated")
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(restored.len(), 750);
    // Rolling back again changes nothing: every object is already restored.
    let again = cli(&["rollback", &format!("s3://{}", ds.bucket), &first_run, "--json"], &[]);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    let again = json(&again);
    assert_eq!(again["by_status"]["at_target"], 750, "{again}");
    assert_eq!(again["by_status"]["migrated"], serde_json::Value::Null, "{again}");
    rt.block_on(async {
        let checks = stream::iter(restored.iter().map(|k| k.to_string()))
            .map(|key| {
                let store = store.clone();
                let expected = ds.originals[&key].clone();
                async move { (raw_bytes(&store, &key).await == expected, key) }
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
        let wrong: Vec<_> = checks.iter().filter(|(ok, _)| !ok).map(|(_, k)| k).collect();
        assert!(wrong.is_empty(), "not restored byte for byte: {wrong:?}");
        // Tags come back with the content: none on a v1 file, the v2 tag on a v2 file.
        let api = store.s3_api().unwrap();
        assert_eq!(
            api.get_tags(&key(0, "sensorData_0000.parq.snappy")).await.unwrap(),
            vec![]
        );
        assert_eq!(
            api.get_tags(&key(600, "sensorData_0600.parq.snappy")).await.unwrap(),
            vec![(version_key(SCHEMA), "2".to_string())]
        );
    });
}

#[test]
fn a_throttling_store_still_completes_and_the_summary_counts_retries() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, bucket) = rt.block_on(new_bucket("cli-throttle"));
    rt.block_on(async {
        for i in 0..40 {
            store
                .put(
                    &format!("p/sensorData_{i:03}.parquet"),
                    generate_file(&tiny(), i),
                    &[],
                    Default::default(),
                )
                .await
                .unwrap();
        }
    });
    let url = format!("s3://{bucket}/p/");
    let out = cli(
        &[
            "run",
            &url,
            "--schema",
            "sensorData",
            "--to",
            "3",
            "--json",
            "--interval-ms",
            "20",
            "--max-attempts",
            "12",
        ],
        &[("PQM_INJECT_FAULTS", "throttle=0.2,seed=11")],
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let summary = json(&out);
    assert_eq!(summary["by_status"]["migrated"], 40, "{summary}");
    let retried = summary["retries"].as_u64().unwrap() + summary["request_retries"].as_u64().unwrap();
    assert!(
        retried > 20,
        "about a fifth of some 240 requests were throttled and retried: {summary}"
    );
    rt.block_on(async {
        for i in 0..40 {
            let key = format!("p/sensorData_{i:03}.parquet");
            let data = raw_bytes(&store, &key).await;
            assert_eq!(footer_version(&data, &version_key(SCHEMA)), Some(3), "{key}");
        }
    });
}

#[test]
fn listing_follows_every_page() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (store, _) = new_bucket("pages").await;
        stream::iter(0..257)
            .for_each_concurrent(32, |i| {
                let store = store.clone();
                async move {
                    store
                        .put(&format!("d/k{i:04}"), Bytes::from_static(b"x"), &[], Default::default())
                        .await
                        .unwrap();
                }
            })
            .await;
        let keys: Vec<String> = store
            .list_prefix("d/k", Some(10))
            .map(|c| c.unwrap().key)
            .collect()
            .await;
        assert_eq!(keys.len(), 257);
        let unique: std::collections::BTreeSet<_> = keys.iter().collect();
        assert_eq!(unique.len(), 257);
        let some: Vec<String> = store
            .list_prefix("d/k01", Some(7))
            .map(|c| c.unwrap().key)
            .collect()
            .await;
        assert_eq!(some.len(), 100, "raw prefix, not a directory");
    });
}

#[test]
fn the_terminal_summary_matches_the_journal() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, bucket) = rt.block_on(new_bucket("cli-pty"));
    rt.block_on(async {
        for i in 0..12 {
            store
                .put(
                    &format!("t/sensorData_{i:03}.parquet"),
                    generate_file(&tiny(), i),
                    &[],
                    Default::default(),
                )
                .await
                .unwrap();
        }
        store
            .put(
                "t/sensorData_bad.parquet",
                Bytes::from_static(b"not parquet at all"),
                &[],
                Default::default(),
            )
            .await
            .unwrap();
    });
    let command = format!(
        "{} run s3://{bucket}/t/ --schema sensorData --to 3 --concurrency 2",
        cli_binary().display()
    );
    let out = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env("PQM_S3_ENDPOINT", s3_endpoint())
        .output()
        .unwrap();
    // The bar redraws with carriage returns and erase-line codes; the summary follows it.
    let screen = strip_ansi(&String::from_utf8_lossy(&out.stdout).replace('\r', "\n"));
    assert!(
        screen.contains("objects/s"),
        "a progress bar was drawn on the terminal:\n{screen}"
    );
    assert_eq!(out.status.code(), Some(1), "{screen}");
    let row = |name: &str| -> u64 {
        screen
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .and_then(|l| {
                l.split_whitespace()
                    .nth(1 + name.matches(' ').count())
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or_else(|| panic!("no {name} row in:\n{screen}"))
    };
    let run_id = screen
        .lines()
        .find_map(|l| {
            l.strip_prefix("run ")
                .map(|r| r.split_whitespace().next().unwrap().to_string())
        })
        .unwrap_or_else(|| panic!("no run line in:\n{screen}"));
    assert!(
        screen.contains("t/sensorData_bad.parquet: not a readable Parquet file"),
        "{screen}"
    );
    assert!(screen.contains("objects"), "{screen}");

    let journal = cli(&["status", &format!("s3://{bucket}"), &run_id, "--json"], &[]);
    let journal = json(&journal);
    let records = journal["records"].as_array().unwrap();
    let count = |status: &str| records.iter().filter(|r| r["status"] == status).count() as u64;
    assert_eq!(row("migrated"), count("migrated"));
    assert_eq!(row("failed"), count("failed"));
    assert_eq!(row("objects"), records.len() as u64);
    assert_eq!((count("migrated"), count("failed")), (12, 1));
}

/// The text of a terminal capture without its control sequences (`ESC [ ... letter`), each of
/// which ends a line, as the terminal shows it.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            out.push('\n');
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn rollback_refuses_without_bucket_versioning() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let bucket = rt.block_on(async {
        let (store, bucket) = new_bucket("no-versioning").await;
        store.s3_api().unwrap().set_versioning(false).await.unwrap();
        store
            .put(
                "u/sensorData_1.parquet",
                generate_file(&tiny(), 1),
                &[],
                Default::default(),
            )
            .await
            .unwrap();
        bucket
    });
    let run = cli(
        &[
            "run",
            &format!("s3://{bucket}/u/"),
            "--schema",
            "sensorData",
            "--to",
            "2",
            "--json",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run_id = json(&run)["run_id"].as_str().unwrap().to_string();
    let out = cli(&["rollback", &format!("s3://{bucket}"), &run_id], &[]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("versioning"), "{}", out.stderr);
}

#[test]
fn usage_errors_exit_2() {
    let out = cli(&["run", "s3://b", "--schema", "s"], &[]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--to"), "{}", out.stderr);
    let out = cli(&["plan", "ftp://x", "--schema", "s", "--to", "2"], &[]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("unsupported scheme"), "{}", out.stderr);
}

#[test]
fn the_binary_registers_both_sensor_steps() {
    let out = cli(&["steps", "--json"], &[]);
    let steps = json(&out);
    let steps: Vec<(u64, u64)> = steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["from"].as_u64().unwrap(), s["to"].as_u64().unwrap()))
        .collect();
    assert_eq!(steps, vec![(1, 2), (2, 3)]);
}

/// A store that silently drops tags (object_store's `AWS_DISABLE_TAGGING`) would strip every
/// migrated object of its version tag and its other tags: `run` and `stamp` refuse it before
/// writing anything, naming the missing guarantee.
#[test]
fn a_store_that_drops_tags_is_refused_before_anything_is_written() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, bucket) = rt.block_on(new_bucket("no-tags"));
    let key = "d/sensorData_000.parq.snappy";
    let original = generate_file(&tiny(), 0);
    let owner = vec![("owner".to_string(), "fleet".to_string())];
    rt.block_on(store.put(key, original.clone(), &owner, Default::default()))
        .unwrap();
    let url = format!("s3://{bucket}/d/");
    let env = [("AWS_DISABLE_TAGGING", "true")];
    for command in [
        vec!["run", url.as_str(), "--schema", "sensorData", "--to", "3"],
        vec!["stamp", url.as_str(), "--schema", "sensorData", "--version", "2"],
    ] {
        let out = cli(&command, &env);
        assert_eq!(out.code, 2, "{command:?}: {}\n{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("tags written with an object did not read back"),
            "{command:?}: {}",
            out.stderr
        );
    }
    rt.block_on(async {
        assert_eq!(raw_bytes(&store, key).await, original);
        assert_eq!(store.tags(key).await.unwrap().unwrap(), owner);
        let runs = pqmigrate::journal::list_runs(&store, "_pqmigrate/runs/").await.unwrap();
        assert!(runs.is_empty(), "no run started: {runs:?}");
    });
    // The same store without the setting passes the probe and migrates.
    let out = cli(&["run", url.as_str(), "--schema", "sensorData", "--to", "3"], &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
}
