//! The shipped state machines (`pqmigrate-lambda/deploy/*.asl.json`) run end to end in an ASL
//! interpreter (npm `aws-local-stepfunctions`, driven by `scripts/run_state_machine.mjs`), every
//! Lambda Task answered by the real bootstrap binaries through the Lambda Runtime API on
//! loopback, against SeaweedFS: the per-object machine as shipped over 200 seed events, and the
//! parent machine (scan, Distributed Map, close) as one run that `status` and `rollback` see.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use pqmigrate_sensor_steps::{SCHEMA, generate_file};
use serde_json::{Value, json};
use support::runtime_api::{RuntimeApi, gateway};
use support::*;

const OBJECTS: usize = 200;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The interpreter's entry file, installed by scripts/test.sh.
fn interpreter() -> PathBuf {
    let module = root().join("target/tools/node_modules/aws-local-stepfunctions/build/main.node.esm.js");
    assert!(
        module.exists(),
        "{} is missing: scripts/test.sh installs aws-local-stepfunctions",
        module.display()
    );
    module
}

/// `count` sandboxes of one function: bootstrap processes taking invocations from `api`.
fn sandboxes(name: &str, api: &RuntimeApi, count: usize, faults: Option<&str>) -> Vec<Child> {
    (0..count)
        .map(|i| {
            let mut extra = vec![("PQM_LOG", "error".to_string())];
            if let Some(faults) = faults {
                extra.push(("PQM_INJECT_FAULTS", format!("{faults},seed={}", 11 + i)));
            }
            api.spawn(name, &extra)
        })
        .collect()
}

/// Runs `definition` once per input in the interpreter; one result an execution, in order.
async fn run_machine(definition: &str, gateway: &str, executions: Vec<Value>, concurrency: usize) -> Vec<Value> {
    let input = json!({ "executions": executions, "concurrency": concurrency });
    let mut child = Command::new("node")
        .arg(root().join("scripts/run_state_machine.mjs"))
        .arg(root().join("pqmigrate-lambda/deploy").join(definition))
        .env("PQM_INVOKE_URL", gateway)
        .env("PQM_ASL_MODULE", interpreter())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node");
    let mut stdin = child.stdin.take().unwrap();
    // The driver runs while this runtime serves the gateway it calls.
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        stdin.write_all(input.to_string().as_bytes()).unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "the driver failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn stop(children: Vec<Child>) {
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
}

async fn put_all(store: &pqmigrate::Store, objects: &[(String, Bytes)]) {
    futures::stream::iter(objects)
        .for_each_concurrent(16, |(key, data)| async move {
            store.put(key, data.clone(), &[], Default::default()).await.unwrap();
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_object_machine_as_shipped_takes_two_hundred_seed_events_to_their_end_states() {
    let (store, bucket) = new_bucket("object-machine").await;
    let good: Vec<(String, Bytes)> = (0..OBJECTS - 2)
        .map(|i| {
            (
                format!("p/sensorData_{i:03}.parq.snappy"),
                generate_file(&small_spec(), i as u64),
            )
        })
        .collect();
    let corrupt = vec![
        (
            "p/sensorData_900.parq.snappy".to_string(),
            Bytes::from_static(b"not parquet"),
        ),
        ("p/sensorData_901.parq.snappy".to_string(), good[0].1.slice(..1000)),
    ];
    put_all(&store, &good).await;
    put_all(&store, &corrupt).await;
    let event = |key: &str, desired: &str| {
        json!({
            "state": "Start", "s3Bucket": bucket, "s3Key": key,
            "schema": "schema:sensorData:version", "desiredVersion": desired,
            "maxStepsPerInvocation": 1
        })
    };
    let mut executions: Vec<Value> = good.iter().map(|(k, _)| event(k, "3")).collect();
    executions.extend(corrupt.iter().map(|(k, _)| event(k, "3")));
    // Two objects already migrated, asked for a version no step reaches.
    executions[0] = event(&good[0].0, "4");
    executions[1] = event(&good[1].0, "4");

    // Four sandboxes whose store throttles a third of all requests (retried inside the
    // handler); every tenth invocation is handed a deadline shorter than the handler's margin,
    // so it answers PqmRetryable and the machine's Retry invokes it again.
    let api = Arc::new(RuntimeApi::start().await);
    let migrate = sandboxes("bootstrap-migrate", &api, 4, Some("throttle=0.3"));
    let (url, counts) = gateway(HashMap::from([("PqmMigrate".to_string(), api.clone())]), Some(10)).await;
    let results = run_machine("object.asl.json", &url, executions.clone(), 16).await;
    stop(migrate);
    assert!(api.init_errors.lock().await.is_empty());
    assert_eq!(results.len(), OBJECTS);

    // The two asked for version 4: the chain is checked whole before anything is written.
    for (i, result) in results.iter().enumerate().take(2) {
        assert_eq!(result["status"], "FAILED", "{result}");
        assert_eq!(result["error"], "MissingMigrationStep", "{result}");
        assert_eq!(result["cause"], "Migration step 3->4 of sensorData is not defined");
        let found = check_object(&store, &good[i].0, std::slice::from_ref(&good[i].1), 3).await;
        assert_eq!(found, Found::Untouched);
    }
    for (i, (key, original)) in good.iter().enumerate().skip(2) {
        assert_eq!(results[i]["status"], "SUCCEEDED", "{key}: {}", results[i]);
        assert_eq!(results[i]["output"]["state"], "Done", "{}", results[i]);
        let found = check_object(&store, key, std::slice::from_ref(original), 3).await;
        assert_eq!(found, Found::Migrated { version: 3 }, "{key}");
    }
    for (i, (key, data)) in corrupt.iter().enumerate() {
        let result = &results[good.len() + i];
        assert_eq!(result["status"], "FAILED", "{result}");
        assert_eq!(result["error"], "MigrationError", "{result}");
        assert!(result["cause"].as_str().unwrap().starts_with(key.as_str()), "{result}");
        assert_eq!(&raw_bytes(&store, key).await, data, "{key}: untouched");
    }
    // One invocation a step (v1 -> v2 -> v3) for each object migrated, one for each other, and
    // one more for each retried. Every invocation handed a short deadline is retried, but for
    // those of the four objects whose checks end them before any rewrite starts (a deadline
    // bounds the rewrite).
    let invocations = counts.invocations.lock().unwrap()["PqmMigrate"];
    let errors = counts.errors.lock().unwrap().clone();
    let retried = errors.get("PqmRetryable").copied().unwrap_or(0);
    let short = invocations / 10;
    assert!(
        retried <= short && retried + 4 >= short,
        "{short} short deadlines: {counts:?}"
    );
    assert!(retried > 0, "{counts:?}");
    assert_eq!(
        errors.values().sum::<u64>(),
        retried,
        "no other error left an invocation: {errors:?}"
    );
    assert_eq!(invocations, (OBJECTS as u64 - 4) * 2 + 4 + retried, "{counts:?}");
    eprintln!("object machine: {OBJECTS} executions, {invocations} invocations, {retried} retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_parent_machine_runs_a_migration_that_status_and_rollback_see() {
    let (store, bucket) = new_bucket("parent-machine").await;
    let objects: Vec<(String, Bytes)> = (0..OBJECTS)
        .map(|i| {
            (
                format!("p/sensorData_{i:03}.parq.snappy"),
                generate_file(&small_spec(), i as u64),
            )
        })
        .collect();
    put_all(&store, &objects).await;
    // Ahead of the target: the scan leaves it out and the run lists it as skipped.
    let ahead = "p/sensorData_999.parq.snappy";
    let tag = vec![(pqmigrate::version_key(SCHEMA), "4".to_string())];
    store
        .put(ahead, generate_file(&small_spec(), 999), &tag, Default::default())
        .await
        .unwrap();

    let scan_api = Arc::new(RuntimeApi::start().await);
    let migrate_api = Arc::new(RuntimeApi::start().await);
    let mut children = sandboxes("bootstrap-scan", &scan_api, 1, None);
    children.extend(sandboxes("bootstrap-migrate", &migrate_api, 4, None));
    let (url, counts) = gateway(
        HashMap::from([
            ("PqmScan".to_string(), scan_api.clone()),
            ("PqmMigrate".to_string(), migrate_api.clone()),
        ]),
        None,
    )
    .await;
    let input = json!({
        "bucket": bucket, "prefixes": ["p/"], "type": ".parq.snappy", "filter": "sensorData_",
        "schema": "schema:sensorData:version", "desiredVersion": "3",
        "maxStepsPerInvocation": 1, "maxConcurrency": 16, "toleratedFailurePercentage": 5
    });
    let result = run_machine("parent.asl.json", &url, vec![input], 1).await.remove(0);
    stop(children);
    assert!(scan_api.init_errors.lock().await.is_empty() && migrate_api.init_errors.lock().await.is_empty());

    for (key, original) in &objects {
        let found = check_object(&store, key, std::slice::from_ref(original), 3).await;
        assert_eq!(found, Found::Migrated { version: 3 }, "{key}");
    }
    assert_eq!(
        store.tags(ahead).await.unwrap().unwrap_or_default(),
        tag,
        "skipped, untouched"
    );
    // The machine's own verdict, closed from the run's journal.
    assert_eq!(result["status"], "SUCCEEDED", "{result}");
    let output = &result["output"];
    assert_eq!(
        output["counts"],
        json!({"migrated": OBJECTS, "ahead_of_target": 1}),
        "{result}"
    );
    assert_eq!(output["needsAttention"], 0, "{result}");
    assert_eq!(
        counts.invocations.lock().unwrap()["PqmScan"],
        2,
        "the scan and the close"
    );
    // The run the machine made, as the CLI sees it.
    let run_id = output["runId"].as_str().unwrap().to_string();
    let url = format!("s3://{bucket}/");
    let shown = cli(&["status", &url, &run_id, "--json"], &[]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let shown = json(&shown);
    assert_eq!(shown["summary"]["by_status"]["migrated"], OBJECTS, "{shown}");
    assert_eq!(shown["summary"]["by_status"]["ahead_of_target"], 1, "{shown}");
    assert_eq!(shown["changes"]["recorded"], OBJECTS, "{shown}");
    let rollback = cli(&["rollback", &url, &run_id, "--json"], &[]);
    assert_eq!(rollback.code, 0, "{}\n{}", rollback.stdout, rollback.stderr);
    for (key, original) in &objects {
        assert_eq!(&raw_bytes(&store, key).await, original, "{key}: rolled back");
    }
}

/// The Distributed Map fields the interpreter does not run (ItemReader, ResultWriter, tolerated
/// failures, the processor mode), checked against what the Step Functions documentation allows
/// (docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html and the pages on
/// ResultWriter, ToleratedFailurePercentage and ItemProcessor).
#[test]
fn the_distributed_map_parts_the_interpreter_skips_are_as_documented() {
    let text = std::fs::read_to_string(root().join("pqmigrate-lambda/deploy/parent.asl.json")).unwrap();
    let parent: Value = serde_json::from_str(&text).unwrap();
    let map = &parent["States"]["MigrateObjects"];
    assert_eq!(map["Type"], "Map");
    let config = &map["ItemProcessor"]["ProcessorConfig"];
    assert_eq!(config["Mode"], "DISTRIBUTED");
    assert!(
        ["STANDARD", "EXPRESS"].contains(&config["ExecutionType"].as_str().unwrap()),
        "{config}"
    );

    let reader = &map["ItemReader"];
    assert_eq!(reader["Resource"], "arn:aws:states:::s3:getObject");
    let input_type = reader["ReaderConfig"]["InputType"].as_str().unwrap();
    assert!(["CSV", "JSON", "JSONL", "MANIFEST"].contains(&input_type));
    assert_eq!(input_type, "JSONL", "the scan writes one JSON event a line");
    let fields = parameter_names(reader);
    for field in &fields {
        assert!(["Bucket", "Key", "VersionId"].contains(&field.as_str()), "{field}");
    }
    assert!(fields.contains(&"Bucket".to_string()) && fields.contains(&"Key".to_string()));

    let writer = &map["ResultWriter"];
    assert_eq!(writer["Resource"], "arn:aws:states:::s3:putObject");
    for field in parameter_names(writer) {
        assert!(["Bucket", "Prefix"].contains(&field.as_str()), "{field}");
    }
    for path in ["ToleratedFailurePercentagePath", "MaxConcurrencyPath"] {
        assert!(
            map[path].as_str().unwrap().starts_with("$."),
            "{path}: a reference path"
        );
    }
    assert!(
        map.get("ToleratedFailurePercentage").is_none(),
        "the value or its path, not both"
    );
    assert!(map.get("MaxConcurrency").is_none(), "the value or its path, not both");
}

/// The parameter names of an ItemReader or ResultWriter, a `.$` (taken from the input) cut off.
fn parameter_names(field: &Value) -> Vec<String> {
    field["Parameters"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.trim_end_matches(".$").to_string())
        .collect()
}
