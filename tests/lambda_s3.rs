//! The Lambda adapter's handlers against S3, called as the Lambda runtime calls them, with the
//! seed's event JSON; and the shipped Step Functions and SAM definitions.

mod support;

use std::collections::BTreeSet;

use bytes::Bytes;
use pqmigrate::{Registry, version_key};
use pqmigrate_lambda::batch::{BatchEvent, handle as batch};
use pqmigrate_lambda::{Config, MigrateEvent, RETRYABLE_ERROR, ScanEvent, migrate, scan};
use pqmigrate_sensor_steps::{SCHEMA, generate_file};
use support::*;

fn config() -> Config {
    Config {
        store: s3_options(),
        ..Config::default()
    }
}

fn seed_event(bucket: &str, key: &str, desired: &str) -> MigrateEvent {
    let json = format!(
        r#"{{"state": "Start", "s3Bucket": "{bucket}", "s3Key": "{key}", "schema": "schema:sensorData:version", "desiredVersion": "{desired}"}}"#
    );
    serde_json::from_str(&json).unwrap()
}

/// Invokes the migrate handler until the state is terminal, as the seed's state machine does;
/// returns the states seen.
async fn drive(config: &Config, mut event: MigrateEvent) -> (Vec<String>, MigrateEvent) {
    let registry = Registry::from_inventory().unwrap();
    let mut states = Vec::new();
    for _ in 0..10 {
        event = migrate::handle(config, &registry, event)
            .await
            .expect("no retryable error");
        states.push(event.state.clone());
        if ["Done", "Error", "MissingMigrationStep"].contains(&event.state.as_str()) {
            break;
        }
    }
    (states, event)
}

#[tokio::test]
async fn the_state_machine_loop_takes_a_v1_object_to_v3() {
    let (store, bucket) = new_bucket("lambda-loop").await;
    let key = "parquet/year=2019/month=3/day=01/sensorData_001.parq.snappy";
    let original = generate_file(&small_spec(), 1);
    store.put(key, original.clone(), &[], Default::default()).await.unwrap();

    let mut event = seed_event(&bucket, key, "3");
    event.max_steps_per_invocation = Some(1);
    let (states, last) = drive(&config(), event).await;
    assert_eq!(states, vec!["Migrating", "Done"]);
    assert_eq!(last.error_cause, None);
    let migrated = raw_bytes(&store, key).await;
    assert_eq!(footer_version(&migrated, &version_key(SCHEMA)), Some(3));
    assert_features_match(&read_all(&original), &read_all(&migrated));
    assert_eq!(
        store.s3_api().unwrap().get_tags(key).await.unwrap(),
        vec![(version_key(SCHEMA), "3".to_string())]
    );

    // Fused by default: one invocation, one write.
    store
        .put("one.parquet", original, &[], Default::default())
        .await
        .unwrap();
    let (states, _) = drive(&config(), seed_event(&bucket, "one.parquet", "3")).await;
    assert_eq!(states, vec!["Done"]);
}

#[tokio::test]
async fn a_missing_step_and_a_corrupt_object_end_in_their_states() {
    let (store, bucket) = new_bucket("lambda-states").await;
    store
        .put("a.parquet", generate_file(&small_spec(), 2), &[], Default::default())
        .await
        .unwrap();
    let (states, last) = drive(&config(), seed_event(&bucket, "a.parquet", "4")).await;
    assert_eq!(states.last().map(String::as_str), Some("MissingMigrationStep"));
    assert_eq!(
        last.error_cause.as_deref(),
        Some("Migration step 3->4 of sensorData is not defined")
    );

    store
        .put(
            "bad.parquet",
            Bytes::from_static(b"definitely not parquet"),
            &[],
            Default::default(),
        )
        .await
        .unwrap();
    let (states, last) = drive(&config(), seed_event(&bucket, "bad.parquet", "3")).await;
    assert_eq!(states, vec!["Error"]);
    let cause = last.error_cause.unwrap();
    assert!(cause.starts_with("bad.parquet: not a readable Parquet file"), "{cause}");
    assert_eq!(
        raw_bytes(&store, "bad.parquet").await,
        Bytes::from_static(b"definitely not parquet")
    );
}

#[tokio::test]
async fn a_throttled_store_gives_the_retryable_error_type() {
    let (store, bucket) = new_bucket("lambda-throttle").await;
    store
        .put("t.parquet", generate_file(&small_spec(), 3), &[], Default::default())
        .await
        .unwrap();
    let throttled = Config {
        faults: Some(pqmigrate::test_support::fault::FaultConfig::parse("throttle=1.0").unwrap()),
        ..config()
    };
    let registry = Registry::from_inventory().unwrap();
    let err = migrate::handle(&throttled, &registry, seed_event(&bucket, "t.parquet", "3"))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, RETRYABLE_ERROR);
    assert!(err.message.contains("503 SlowDown"), "{}", err.message);
    let diagnostic: lambda_runtime::Diagnostic = err.into();
    assert_eq!(diagnostic.error_type, "PqmRetryable");
}

#[tokio::test]
async fn the_scan_manifest_lists_exactly_what_plan_says_needs_migration() {
    let (store, bucket) = new_bucket("lambda-scan").await;
    for i in 0..12u64 {
        let key = format!("parquet/day={:02}/sensorData_{i:03}.parq.snappy", i % 3);
        let tags = match i % 4 {
            0 => vec![(version_key(SCHEMA), "3".to_string())],
            1 => vec![(version_key(SCHEMA), "2".to_string())],
            _ => vec![],
        };
        store
            .put(&key, generate_file(&small_spec(), i), &tags, Default::default())
            .await
            .unwrap();
    }
    store
        .put(
            "parquet/day=01/other.csv",
            Bytes::from_static(b"x"),
            &[],
            Default::default(),
        )
        .await
        .unwrap();
    let event: ScanEvent = serde_json::from_str(&format!(
        r#"{{"bucket": "{bucket}", "prefixes": ["parquet/"], "type": ".parq.snappy", "filter": "sensorData_", "schema": "schema:sensorData:version", "desiredVersion": "3"}}"#
    ))
    .unwrap();
    let result = scan::handle(&config(), &Registry::from_inventory().unwrap(), event)
        .await
        .unwrap();
    assert_eq!(result.objects, 9);
    assert_eq!(result.counts["at_target"], 3);

    let manifest = raw_bytes(&store, &result.manifest_key).await;
    let items: Vec<MigrateEvent> = String::from_utf8(manifest.to_vec())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("each JSONL line is a migrate event"))
        .collect();
    assert!(
        items
            .iter()
            .all(|i| i.state == "Start" && i.desired_version.0 == 3 && i.s3_bucket == bucket)
    );
    let from_manifest: BTreeSet<String> = items.into_iter().map(|i| i.s3_key).collect();

    let plan = cli(
        &[
            "plan",
            &format!("s3://{bucket}"),
            "--prefix",
            "parquet/",
            "--type",
            ".parq.snappy",
            "--filter",
            "sensorData_",
            "--schema",
            "sensorData",
            "--to",
            "3",
            "--list",
            "--json",
        ],
        &[],
    );
    let plan = json(&plan);
    let from_plan: BTreeSet<String> = plan["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["status"] == "needs_migration")
        .map(|e| e["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(from_manifest, from_plan);
}

#[tokio::test]
async fn batch_operations_tasks_get_their_result_codes() {
    let (store, bucket) = new_bucket("lambda-batch").await;
    store
        .put("ok.parquet", generate_file(&small_spec(), 4), &[], Default::default())
        .await
        .unwrap();
    store
        .put("bad.parquet", Bytes::from_static(b"nope"), &[], Default::default())
        .await
        .unwrap();
    let event: BatchEvent = serde_json::from_str(&format!(
        r#"{{
        "invocationSchemaVersion": "2.0",
        "invocationId": "YXNkbGZqYWRmaiBhc2RmdW9hZHNmZGpmaGFzbGtkaGZza2RmaAo",
        "job": {{ "id": "f3cc4f60-61f6-4a2b-8a21-d07600c373ce", "userArguments": {{ "schema": "schema:sensorData:version", "desiredVersion": "3" }} }},
        "tasks": [
            {{ "taskId": "t1", "s3Bucket": "{bucket}", "s3Key": "ok.parquet", "s3VersionId": null }},
            {{ "taskId": "t2", "s3Bucket": "{bucket}", "s3Key": "bad.parquet", "s3VersionId": null }},
            {{ "taskId": "t3", "s3Bucket": "{bucket}", "s3Key": "ok.parquet", "s3VersionId": null }}
        ]
    }}"#
    ))
    .unwrap();
    let response = batch(&config(), &Registry::from_inventory().unwrap(), event)
        .await
        .unwrap();
    let codes: Vec<(&str, &str)> = response
        .results
        .iter()
        .map(|r| (r.task_id.as_str(), r.result_code.as_str()))
        .collect();
    assert_eq!(
        codes,
        vec![("t1", "Succeeded"), ("t2", "PermanentFailure"), ("t3", "Succeeded")]
    );
    assert_eq!(response.results[2].result_string, "already at version 3");
    assert_eq!(response.invocation_schema_version, "2.0");
    assert_eq!(
        footer_version(&raw_bytes(&store, "ok.parquet").await, &version_key(SCHEMA)),
        Some(3)
    );
}

#[test]
fn shipped_definitions_are_generated_and_valid() {
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/pqmigrate-lambda/deploy");
    for (name, content) in pqmigrate_lambda::definitions::shipped_files() {
        let shipped = std::fs::read_to_string(format!("{deploy}/{name}"))
            .unwrap_or_else(|e| panic!("{name}: {e}; regenerate with `cargo run -p pqmigrate-lambda --bin pqmigrate-lambda-definitions -- write pqmigrate-lambda/deploy`"));
        assert_eq!(shipped, content, "{name} drifted; regenerate it");
    }
    // SAM resolves CodeUri against the template's folder: each must name the folder the
    // build lines of docs/lambda.md fill, target/lambda/<handler>/ of the workspace.
    let template: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{deploy}/template.json")).unwrap()).unwrap();
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/lambda.md")).unwrap();
    assert!(readme.contains("cp target/x86_64-unknown-linux-gnu/release/bootstrap-$h target/lambda/$h/bootstrap"));
    let lexical = |path: std::path::PathBuf| {
        let mut out = std::path::PathBuf::new();
        for part in path.components() {
            match part {
                std::path::Component::ParentDir => {
                    out.pop();
                }
                std::path::Component::CurDir => {}
                other => out.push(other),
            }
        }
        out
    };
    let mut functions = 0;
    for (name, resource) in template["Resources"].as_object().unwrap() {
        let Some(uri) = resource["Properties"]["CodeUri"].as_str() else {
            continue;
        };
        functions += 1;
        let handler = uri.trim_end_matches('/').rsplit('/').next().unwrap();
        assert_eq!(
            lexical(std::path::Path::new(deploy).join(uri)),
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/lambda")
                .join(handler),
            "{name}: CodeUri {uri}"
        );
    }
    assert_eq!(functions, 2);
    // The invocation's deadline comes before the Task's timeout, and a Task timeout is not
    // retried blindly.
    let object: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{deploy}/object.asl.json")).unwrap()).unwrap();
    let task = object["States"]
        .as_object()
        .unwrap()
        .values()
        .find(|s| s["Type"] == "Task")
        .unwrap();
    for (name, resource) in template["Resources"].as_object().unwrap() {
        if let Some(timeout) = resource["Properties"]["Timeout"].as_u64() {
            assert!(timeout < task["TimeoutSeconds"].as_u64().unwrap(), "{name}: {timeout}");
        }
    }
    let retried: Vec<&str> = task["Retry"][0]["ErrorEquals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        !retried.contains(&"States.Timeout") && retried.contains(&"PqmRetryable"),
        "{retried:?}"
    );
    let tools = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/tools/node_modules/.bin/asl-validator"
    );
    for asl in ["object.asl.json", "parent.asl.json"] {
        let out = std::process::Command::new(tools)
            .args(["--json-path", &format!("{deploy}/{asl}")])
            .output()
            .unwrap_or_else(|e| panic!("asl-validator (npm, installed by scripts/test.sh into target/tools): {e}"));
        assert!(
            out.status.success(),
            "{asl}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = std::process::Command::new("cfn-lint")
        .arg(format!("{deploy}/template.json"))
        .output()
        .unwrap_or_else(|e| panic!("cfn-lint (PyPI, installed by scripts/test.sh): {e}"));
    assert!(
        out.status.success(),
        "cfn-lint: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The handlers run the capability probe too (once per store and process): a store that ignores
/// conditions is refused with a type the state machines do not retry, naming the guarantee, and
/// nothing is written.
#[tokio::test]
async fn handlers_refuse_a_store_that_ignores_conditions() {
    let (store, bucket) = new_bucket("lambda-strip").await;
    let original = generate_file(&small_spec(), 5);
    store
        .put("s.parquet", original.clone(), &[], Default::default())
        .await
        .unwrap();
    let (proxy, _) = http_proxy(&s3_endpoint(), ProxyMode::StripConditions).await;
    let stripped = Config {
        store: s3_options().endpoint(proxy),
        ..Config::default()
    };
    let registry = Registry::from_inventory().unwrap();
    let err = migrate::handle(&stripped, &registry, seed_event(&bucket, "s.parquet", "3"))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, pqmigrate_lambda::STORE_REFUSED_ERROR, "{err}");
    assert!(refused_for_stripped_conditions(&err.message), "{err}");
    let scan_event: ScanEvent = serde_json::from_str(&format!(
        r#"{{"bucket": "{bucket}", "schema": "schema:sensorData:version", "desiredVersion": "3", "prefixes": [""], "type": ".parquet", "filter": ""}}"#
    ))
    .unwrap();
    let err = scan::handle(&stripped, &registry, scan_event).await.unwrap_err();
    assert_eq!(err.error_type, pqmigrate_lambda::STORE_REFUSED_ERROR, "{err}");
    assert_eq!(raw_bytes(&store, "s.parquet").await, original);
    assert_eq!(store.tags("s.parquet").await.unwrap(), Some(vec![]));
}

/// An invocation whose deadline leaves no time answers the retryable type before it, and the
/// retry (the state machine's) completes.
#[tokio::test]
async fn an_invocation_out_of_time_answers_retryable_and_the_retry_completes() {
    let (store, bucket) = new_bucket("lambda-deadline").await;
    store
        .put("d.parquet", generate_file(&small_spec(), 6), &[], Default::default())
        .await
        .unwrap();
    let registry = Registry::from_inventory().unwrap();
    let started = std::time::Instant::now();
    let deadline = std::time::SystemTime::now() + std::time::Duration::from_millis(500);
    let err = migrate::handle_until(
        &config(),
        &registry,
        seed_event(&bucket, "d.parquet", "3"),
        Some(deadline),
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_type, RETRYABLE_ERROR, "{err}");
    assert!(err.message.contains("timed out"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_millis(500),
        "answered before the deadline"
    );
    let (states, _) = drive(&config(), seed_event(&bucket, "d.parquet", "3")).await;
    assert_eq!(states, vec!["Done"]);
}

/// A large file whose invocation runs out of time part-way through its rewrite: the handler
/// stops before the deadline, aborts its multipart upload (none is left open), leaves the object
/// as it was and answers retryable; the retry, with time enough, completes.
#[tokio::test]
async fn a_large_file_out_of_time_leaves_no_upload_open_and_the_retry_completes() {
    let (store, bucket) = new_bucket("lambda-deadline-large").await;
    let original = generate_file(&pqmigrate_sensor_steps::DataSpec::default(), 7);
    assert!(original.len() > 30 << 20, "a seed-sized file: {}", original.len());
    store
        .put("big.parquet", original.clone(), &[], Default::default())
        .await
        .unwrap();
    let slow = Config {
        store: s3_options().multipart_threshold(5 << 20).part_size(5 << 20),
        faults: Some(pqmigrate::test_support::fault::FaultConfig::parse("latency_ms=400").unwrap()),
        ..Config::default()
    };
    // The probe runs once a sandbox; this invocation is not the sandbox's first.
    slow.checked_store(&bucket).await.unwrap();
    let registry = Registry::from_inventory().unwrap();
    let started = std::time::Instant::now();
    let time = std::time::Duration::from_millis(3000);
    let err = migrate::handle_until(
        &slow,
        &registry,
        seed_event(&bucket, "big.parquet", "3"),
        Some(std::time::SystemTime::now() + time),
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_type, RETRYABLE_ERROR, "{err}");
    assert!(started.elapsed() < time, "answered before the deadline");
    let open = store.s3_api().unwrap().open_multipart_uploads("big").await.unwrap();
    assert!(open.is_empty(), "no multipart upload left open: {open:?}");
    assert_eq!(raw_bytes(&store, "big.parquet").await, original, "untouched");
    let (states, _) = drive(&config(), seed_event(&bucket, "big.parquet", "3")).await;
    assert_eq!(states, vec!["Done"]);
    let found = check_object(&store, "big.parquet", std::slice::from_ref(&original), 3).await;
    assert_eq!(found, Found::Migrated { version: 3 });
}

/// A Lambda migration is a run: the scan begins it (lease, `run.json`) and records the objects
/// it leaves out with the reason; each migrate invocation records its object under the run
/// (a chain split over invocations as one migration from the object's first version); closing
/// it writes the summary, names what needs attention and frees the data set. `status` and
/// `rollback` of the CLI then work on it as on a CLI run: every object back byte for byte.
#[tokio::test]
async fn a_lambda_migration_is_a_run_that_status_and_rollback_see() {
    let (store, bucket) = new_bucket("lambda-run").await;
    let mut originals = std::collections::BTreeMap::new();
    for i in 0..8u64 {
        let key = format!("parquet/day={:02}/sensorData_{i:03}.parq.snappy", i % 2);
        let tags = match i % 4 {
            0 => vec![(version_key(SCHEMA), "3".to_string())],
            1 => vec![(version_key(SCHEMA), "2".to_string())],
            _ => vec![],
        };
        let data = generate_file(&small_spec(), i);
        store.put(&key, data.clone(), &tags, Default::default()).await.unwrap();
        if i % 4 != 0 {
            originals.insert(key, data);
        }
    }
    // One the scan hands out and the migration finds corrupt; one the scan leaves out (its
    // version tag is not a number).
    let corrupt = "parquet/day=01/sensorData_900.parq.snappy";
    store
        .put(
            corrupt,
            Bytes::from_static(b"PAR1 but not parquet"),
            &[],
            Default::default(),
        )
        .await
        .unwrap();
    let bad_tag = "parquet/day=01/sensorData_901.parq.snappy";
    store
        .put(
            bad_tag,
            generate_file(&small_spec(), 901),
            &[(version_key(SCHEMA), "two".to_string())],
            Default::default(),
        )
        .await
        .unwrap();
    let registry = Registry::from_inventory().unwrap();
    let request: pqmigrate_lambda::ScanRequest = serde_json::from_str(&format!(
        r#"{{"bucket": "{bucket}", "prefixes": ["parquet/"], "type": ".parq.snappy", "schema": "schema:sensorData:version", "desiredVersion": "3", "maxStepsPerInvocation": 1}}"#
    ))
    .unwrap();
    let pqmigrate_lambda::ScanResponse::Scanned(scanned) =
        scan::handle_request(&config(), &registry, request).await.unwrap()
    else {
        panic!("a scan answers with its manifest");
    };
    assert_eq!((scanned.objects, scanned.skipped, scanned.expected), (7, 1, 10));
    // Another run cannot start on the data set while this one holds it.
    let busy = cli(
        &[
            "run",
            &format!("s3://{bucket}/parquet/"),
            "--schema",
            "sensorData",
            "--to",
            "3",
        ],
        &[],
    );
    assert_ne!(busy.code, 0);
    assert!(busy.stderr.contains(&scanned.run_id), "{}", busy.stderr);

    let manifest = raw_bytes(&store, &scanned.manifest_key).await;
    for line in String::from_utf8(manifest.to_vec()).unwrap().lines() {
        let item: MigrateEvent = serde_json::from_str(line).unwrap();
        assert_eq!(item.run_id.as_deref(), Some(scanned.run_id.as_str()));
        assert_eq!(item.max_steps_per_invocation, Some(1));
        let key = item.s3_key.clone();
        let (states, last) = drive(&config(), item).await;
        let want = if key == corrupt { "Error" } else { "Done" };
        assert_eq!(
            states.last().map(String::as_str),
            Some(want),
            "{key}: {states:?} {last:?}"
        );
    }
    let close: pqmigrate_lambda::ScanRequest = serde_json::from_value(serde_json::json!({
        "closeRun": scanned.run_id, "bucket": bucket, "schema": scanned.schema,
        "expected": scanned.expected, "failOnAttention": true
    }))
    .unwrap();
    let pqmigrate_lambda::ScanResponse::Closed(closed) =
        scan::handle_request(&config(), &registry, close).await.unwrap()
    else {
        panic!("a close answers with the run's counts");
    };
    assert_eq!(closed.counts["migrated"], 6, "{closed:?}");
    assert_eq!(closed.counts["at_target"], 2, "{closed:?}");
    assert_eq!(closed.counts["failed"], 2, "{closed:?}");
    assert_eq!(closed.needs_attention, 2, "{closed:?}");
    assert!(
        closed.cause.contains(corrupt) && closed.cause.contains(bad_tag),
        "{}",
        closed.cause
    );

    let status = json(&cli(
        &["status", &format!("s3://{bucket}"), &scanned.run_id, "--json"],
        &[],
    ));
    assert_eq!(status["summary"]["by_status"]["migrated"], 6, "{status}");
    // One change per object, though the chains ran in two invocations each.
    assert_eq!(status["changes"]["recorded"], 6, "{status}");
    assert_eq!(status["changes"]["objects"], 6, "{status}");
    for (key, original) in &originals {
        let migrated = raw_bytes(&store, key).await;
        assert_eq!(footer_version(&migrated, &version_key(SCHEMA)), Some(3), "{key}");
        let tags = store.tags(key).await.unwrap().unwrap();
        assert!(
            tags.contains(&(version_key(SCHEMA), "3".to_string())),
            "{key}: {tags:?}"
        );
        if !key.ends_with("1.parq.snappy") && !key.ends_with("5.parq.snappy") {
            // Untagged (version 1): both steps ran, the features are computed.
            assert_features_match(&read_all(original), &read_all(&migrated));
        }
    }
    let rollback = cli(&["rollback", &format!("s3://{bucket}"), &scanned.run_id, "--json"], &[]);
    assert_eq!(rollback.code, 0, "{}\n{}", rollback.stdout, rollback.stderr);
    assert_eq!(json(&rollback)["by_status"]["migrated"], 6);
    for (key, original) in &originals {
        assert_eq!(&raw_bytes(&store, key).await, original, "{key} restored byte for byte");
    }
}
