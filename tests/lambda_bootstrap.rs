//! The shipped bootstrap binaries (`examples/sensor-lambda`, with the sensorData steps linked
//! in) driven through the Lambda Runtime API on loopback, the way the Lambda service drives
//! them, against SeaweedFS: the seed's per-object loop with `maxStepsPerInvocation` 1 takes a
//! v1 object to v3, a missing step and a corrupt object end in their states, and the scan
//! writes a manifest of exactly what needs migration.

mod support;

use std::time::Duration;

use bytes::Bytes;
use pqmigrate_sensor_steps::{SCHEMA, generate_file};
use serde_json::{Value, json};
use support::runtime_api::{Answer, RuntimeApi};
use support::*;

fn event(bucket: &str, key: &str, desired: &str) -> Value {
    json!({
        "state": "Start",
        "s3Bucket": bucket,
        "s3Key": key,
        "schema": "schema:sensorData:version",
        "desiredVersion": desired,
        "maxStepsPerInvocation": 1
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_bootstraps_migrate_through_the_runtime_api() {
    let (store, bucket) = new_bucket("bootstraps").await;
    let original = generate_file(&small_spec(), 1);
    store
        .put("p/one.parquet", original.clone(), &[], Default::default())
        .await
        .unwrap();
    store
        .put(
            "p/bad.parquet",
            Bytes::from_static(b"not parquet"),
            &[],
            Default::default(),
        )
        .await
        .unwrap();
    store
        .put(
            "p/two.parquet",
            generate_file(&small_spec(), 2),
            &[],
            Default::default(),
        )
        .await
        .unwrap();

    // The scan: a manifest of exactly the objects that need migration.
    let api = RuntimeApi::start().await;
    let mut scan = api.spawn("bootstrap-scan", &[]);
    let scan_event = json!({
        "bucket": bucket, "prefixes": ["p/"], "type": ".parquet", "filter": "",
        "schema": "schema:sensorData:version", "desiredVersion": "3"
    });
    let Answer::Response(result) = api.invoke(scan_event, Duration::from_secs(60)).await else {
        panic!("the scan failed");
    };
    scan.kill().unwrap();
    scan.wait().unwrap();
    // Versions come from tags (no tag: version 1), so the corrupt object is listed too; its own
    // machine then ends in Error.
    assert_eq!(result["objects"], 3, "{result}");
    let (_, manifest) = store
        .get(result["manifestKey"].as_str().unwrap(), Default::default())
        .await
        .unwrap();
    let keys: Vec<String> = String::from_utf8_lossy(&manifest)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["s3Key"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(keys, vec!["p/bad.parquet", "p/one.parquet", "p/two.parquet"]);

    // The per-object loop, one step an invocation.
    let api = RuntimeApi::start().await;
    let mut migrate = api.spawn("bootstrap-migrate", &[]);
    let (states, _) = api.drive(event(&bucket, "p/one.parquet", "3")).await;
    assert_eq!(states, vec!["Migrating", "Done"]);
    assert_eq!(
        check_object(&store, "p/one.parquet", &[original], 3).await,
        Found::Migrated { version: 3 }
    );
    let (states, last) = api.drive(event(&bucket, "p/one.parquet", "4")).await;
    assert_eq!(states, vec!["MissingMigrationStep"], "{last}");
    assert_eq!(last["errorCause"], "Migration step 3->4 of sensorData is not defined");
    let (states, last) = api.drive(event(&bucket, "p/bad.parquet", "3")).await;
    assert_eq!(states, vec!["Error"]);
    assert!(
        last["errorCause"]
            .as_str()
            .unwrap()
            .starts_with("p/bad.parquet: not a readable Parquet file"),
        "{last}"
    );
    migrate.kill().unwrap();
    migrate.wait().unwrap();
    assert!(api.init_errors.lock().await.is_empty());
    let tag = version_key_tag(&store, "p/two.parquet").await;
    assert_eq!(tag, None, "only the objects invoked were touched");
}

async fn version_key_tag(store: &pqmigrate::Store, key: &str) -> Option<String> {
    let tags = store.tags(key).await.unwrap().unwrap_or_default();
    let name = pqmigrate::version_key(SCHEMA);
    tags.into_iter().find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// Answers of one invocation, a response or a panic naming the error.
async fn respond(api: &RuntimeApi, event: Value) -> Value {
    match api.invoke(event, Duration::from_secs(60)).await {
        Answer::Response(value) => value,
        Answer::Error { error_type, body } => panic!("{error_type}: {body}"),
    }
}

/// The stock bootstrap (`pqmigrate-bootstrap`, no step compiled in) serves the scan and migrate
/// functions as the template's `Handler` setting names them, with the migration files read from
/// the bucket: the data set reaches version 3 with the same values the compiled steps give; a
/// file replaced in the bucket is read again by the same sandbox; and the next scan refuses to
/// begin a run, naming the file, until the execution accepts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stock_bootstrap_migrates_with_files_read_from_the_bucket() {
    let (store, bucket) = new_bucket("stock-bootstrap").await;
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sql-migrations/sensorData");
    let files = "_pqmigrate/migrations/sensorData";
    for name in ["V2__add_features.sql", "V3__rename_and_encode.sql"] {
        let text = std::fs::read(format!("{examples}/{name}")).unwrap();
        store
            .put(&format!("{files}/{name}"), Bytes::from(text), &[], Default::default())
            .await
            .unwrap();
    }
    let originals: Vec<Bytes> = (0..2).map(|i| generate_file(&small_spec(), 10 + i)).collect();
    for (i, data) in originals.iter().enumerate() {
        store
            .put(
                &format!("p/sensorData_{i}.parquet"),
                data.clone(),
                &[],
                Default::default(),
            )
            .await
            .unwrap();
    }
    let location = format!("s3://{bucket}/_pqmigrate/migrations");
    let scan_event = json!({
        "bucket": bucket, "prefixes": ["p/"], "type": ".parquet", "schema": "schema:sensorData:version",
        "desiredVersion": "3", "maxStepsPerInvocation": 1, "migrations": location
    });
    let scan_api = RuntimeApi::start().await;
    let mut scan = scan_api.spawn("pqmigrate-bootstrap", &[("_HANDLER", "scan".into())]);
    let scanned = respond(&scan_api, scan_event.clone()).await;
    assert_eq!(scanned["objects"], 2, "{scanned}");
    let (_, manifest) = store
        .get(scanned["manifestKey"].as_str().unwrap(), Default::default())
        .await
        .unwrap();
    let items: Vec<Value> = String::from_utf8_lossy(&manifest)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(items.iter().all(|i| i["migrations"] == location.as_str()), "{items:?}");

    // The first object, one step an invocation, with the files as they were scanned.
    let api = RuntimeApi::start().await;
    let mut migrate = api.spawn("pqmigrate-bootstrap", &[("_HANDLER", "migrate".into())]);
    let (states, last) = api.drive(items[0].clone()).await;
    assert_eq!(states, vec!["Migrating", "Done"], "{last}");
    let (_, migrated) = store.get("p/sensorData_0.parquet", Default::default()).await.unwrap();
    let compiled = pqmigrate::Store::memory();
    compiled
        .put("o", originals[0].clone(), &[], Default::default())
        .await
        .unwrap();
    let registry = pqmigrate::Registry::from_inventory().unwrap();
    pqmigrate::migrate_object(&compiled, &registry, "o", &pqmigrate::MigrateOptions::new(SCHEMA, 3))
        .await
        .unwrap();
    let (_, expected) = compiled.get("o", Default::default()).await.unwrap();
    let (got, want) = (read_all(&migrated), read_all(&expected));
    assert_eq!(got.schema().fields(), want.schema().fields());
    assert_eq!(
        got.columns(),
        want.columns(),
        "the SQL files give the compiled steps' values"
    );

    // V3 is replaced in the bucket (no dictionary encoding of device_id now): the same sandbox
    // reads it again for the second object.
    store
        .put(
            &format!("{files}/V3__rename_and_encode.sql"),
            Bytes::from_static(b"SELECT * RENAME (sensor_type AS sensor_kind) FROM input"),
            &[],
            Default::default(),
        )
        .await
        .unwrap();
    let (states, last) = api.drive(items[1].clone()).await;
    assert_eq!(states, vec!["Migrating", "Done"], "{last}");
    let (_, second) = store.get("p/sensorData_1.parquet", Default::default()).await.unwrap();
    let device = |data: &Bytes| read_all(data).column_by_name("device_id").unwrap().data_type().clone();
    assert!(matches!(device(&migrated), arrow::datatypes::DataType::Dictionary(..)));
    assert_eq!(device(&second), arrow::datatypes::DataType::Utf8);
    migrate.kill().unwrap();
    migrate.wait().unwrap();

    // The run closes; the next scan refuses the changed file until the execution accepts it.
    let closed = respond(
        &scan_api,
        json!({"closeRun": scanned["runId"], "bucket": bucket, "schema": "sensorData", "expected": scanned["expected"]}),
    )
    .await;
    assert_eq!(closed["needsAttention"], 0, "{closed}");
    match scan_api.invoke(scan_event.clone(), Duration::from_secs(60)).await {
        Answer::Error { error_type, body } => {
            assert_eq!(error_type, "PqmInvalidEvent", "{body}");
            assert!(body.to_string().contains("V3__rename_and_encode.sql"), "{body}");
        }
        Answer::Response(r) => panic!("a changed file was accepted: {r}"),
    }
    let mut accepting = scan_event;
    accepting["acceptChangedMigrations"] = json!(true);
    let again = respond(&scan_api, accepting).await;
    assert_eq!(again["objects"], 0, "{again}");
    scan.kill().unwrap();
    scan.wait().unwrap();
    assert!(scan_api.init_errors.lock().await.is_empty() && api.init_errors.lock().await.is_empty());
}

/// The high-water mark of a process's resident memory, in kB (`VmHWM` of /proc/<pid>/status).
fn peak_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// One warm sandbox takes 100 objects, one after the other, as a Distributed Map hands them to
/// it: its peak memory after the hundredth is within a quarter of its peak after the tenth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sandbox_migrates_a_hundred_objects_in_flat_memory() {
    let (store, bucket) = new_bucket("flat-sandbox").await;
    let spec = pqmigrate_sensor_steps::DataSpec {
        rows: 10_000,
        row_group_rows: 2_500,
        seed: 7,
    };
    let data = generate_file(&spec, 0);
    for i in 0..100 {
        store
            .put(
                &format!("m/sensorData_{i:03}.parquet"),
                data.clone(),
                &[],
                Default::default(),
            )
            .await
            .unwrap();
    }
    let api = RuntimeApi::start().await;
    let mut sandbox = api.spawn("bootstrap-migrate", &[]);
    let mut after_ten = 0;
    for i in 0..100 {
        let mut item = event(&bucket, &format!("m/sensorData_{i:03}.parquet"), "3");
        item.as_object_mut().unwrap().remove("maxStepsPerInvocation");
        let (states, last) = api.drive(item).await;
        assert_eq!(states, vec!["Done"], "{last}");
        if i == 9 {
            after_ten = peak_kb(sandbox.id());
        }
    }
    let after_hundred = peak_kb(sandbox.id());
    sandbox.kill().unwrap();
    sandbox.wait().unwrap();
    assert!(
        after_hundred * 4 <= after_ten * 5,
        "peak memory {after_ten} kB after 10 objects, {after_hundred} kB after 100"
    );
    eprintln!("peak memory: {after_ten} kB after 10 objects, {after_hundred} kB after 100");
}
