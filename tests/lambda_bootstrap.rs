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

/// Invokes the migrate bootstrap until the state is terminal, as the shipped state machine's
/// Choice loop does; returns the states and the last event.
async fn drive(api: &RuntimeApi, mut event: Value) -> (Vec<String>, Value) {
    let mut states = Vec::new();
    for _ in 0..6 {
        event = match api.invoke(event, Duration::from_secs(60)).await {
            Answer::Response(next) => next,
            Answer::Error { error_type, body } => panic!("{error_type}: {body}"),
        };
        let state = event["state"].as_str().unwrap().to_string();
        states.push(state.clone());
        if ["Done", "Error", "MissingMigrationStep"].contains(&state.as_str()) {
            break;
        }
    }
    (states, event)
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
    let (states, _) = drive(&api, event(&bucket, "p/one.parquet", "3")).await;
    assert_eq!(states, vec!["Migrating", "Done"]);
    assert_eq!(
        check_object(&store, "p/one.parquet", &[original], 3).await,
        Found::Migrated { version: 3 }
    );
    let (states, last) = drive(&api, event(&bucket, "p/one.parquet", "4")).await;
    assert_eq!(states, vec!["MissingMigrationStep"], "{last}");
    assert_eq!(last["errorCause"], "Migration step 3->4 of sensorData is not defined");
    let (states, last) = drive(&api, event(&bucket, "p/bad.parquet", "3")).await;
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
