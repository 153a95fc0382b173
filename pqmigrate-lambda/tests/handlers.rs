//! The handlers driven directly with JSON events, as Step Functions sends them, over the memory
//! store: no server, no runtime. The live-server and Runtime API tests at the workspace root run
//! the same handlers against SeaweedFS.

use bytes::Bytes;
use pqmigrate_core::lease::{current_lease, lease_key};
use pqmigrate_core::{Registry, Store};
use pqmigrate_lambda::{Config, MigrateEvent, ScanEvent, migrate, scan};
use pqmigrate_sensor_steps::{DataSpec, SCHEMA, generate_file};

fn spec() -> DataSpec {
    DataSpec {
        rows: 200,
        row_group_rows: 100,
        seed: 1,
    }
}

async fn store_with(keys: &[&str]) -> Store {
    let store = Store::memory();
    for (i, key) in keys.iter().enumerate() {
        store
            .put(key, generate_file(&spec(), i as u64), &[], Default::default())
            .await
            .unwrap();
    }
    store
}

fn event(json: &str) -> MigrateEvent {
    serde_json::from_str(json).unwrap()
}

fn footer_version(data: &Bytes) -> Option<u32> {
    pqmigrate_core::rewrite::Footer::parse("k", data)
        .unwrap()
        .version("k", &pqmigrate_core::version_key(SCHEMA))
        .unwrap()
}

#[tokio::test]
async fn the_per_object_event_loops_to_the_target_one_step_an_invocation() {
    let store = store_with(&["d/sensorData_0.parquet"]).await;
    let config = Config::over(store.clone());
    let registry = Registry::from_inventory().unwrap();
    let mut event = event(
        r#"{"state":"Start","s3Bucket":"any","s3Key":"d/sensorData_0.parquet",
            "schema":"schema:sensorData:version","desiredVersion":"3","maxStepsPerInvocation":1}"#,
    );
    let mut states = Vec::new();
    for _ in 0..5 {
        event = migrate::handle(&config, &registry, event).await.unwrap();
        states.push(event.state.clone());
        if event.state != "Migrating" {
            break;
        }
    }
    assert_eq!(states, ["Migrating", "Done"]);
    let answer = serde_json::to_value(&event).unwrap();
    assert_eq!(answer["s3Key"], "d/sensorData_0.parquet");
    let (_, data) = store.get("d/sensorData_0.parquet", Default::default()).await.unwrap();
    assert_eq!(footer_version(&data), Some(3));
}

#[tokio::test]
async fn a_missing_step_and_a_corrupt_object_end_in_their_states() {
    let store = store_with(&["d/sensorData_0.parquet"]).await;
    store
        .put(
            "d/broken.parquet",
            Bytes::from_static(b"PAR1 not really"),
            &[],
            Default::default(),
        )
        .await
        .unwrap();
    let config = Config::over(store.clone());
    let registry = Registry::from_inventory().unwrap();
    let missing = migrate::handle(
        &config,
        &registry,
        event(r#"{"state":"Start","s3Bucket":"b","s3Key":"d/sensorData_0.parquet","schema":"sensorData","desiredVersion":4}"#),
    )
    .await
    .unwrap();
    assert_eq!(missing.state, "MissingMigrationStep");
    let (_, data) = store.get("d/sensorData_0.parquet", Default::default()).await.unwrap();
    assert_eq!(data, generate_file(&spec(), 0), "left as it was");
    let broken = migrate::handle(
        &config,
        &registry,
        event(
            r#"{"state":"Start","s3Bucket":"b","s3Key":"d/broken.parquet","schema":"sensorData","desiredVersion":"2"}"#,
        ),
    )
    .await
    .unwrap();
    assert_eq!(broken.state, "Error");
    let cause = broken.error_cause.unwrap_or_default();
    assert!(
        cause.contains("d/broken.parquet") && cause.contains("Parquet"),
        "{cause}"
    );
}

#[tokio::test]
async fn the_scan_begins_a_run_that_holds_the_data_set_and_refuses_a_table() {
    let store = store_with(&["p/sensorData_0.parquet", "p/sensorData_1.parquet"]).await;
    let config = Config::over(store.clone());
    let registry = Registry::from_inventory().unwrap();
    let scan_event: ScanEvent = serde_json::from_str(
        r#"{"bucket":"b","prefixes":["p/"],"type":".parquet","filter":"sensorData_",
            "schema":"schema:sensorData:version","desiredVersion":"3"}"#,
    )
    .unwrap();
    let result = scan::handle(&config, &registry, scan_event.clone()).await.unwrap();
    assert_eq!(result.objects, 2);
    let (_, manifest) = store.get(&result.manifest_key, Default::default()).await.unwrap();
    let lines: Vec<serde_json::Value> = std::str::from_utf8(&manifest)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l["runId"] == result.run_id.as_str()), "{lines:?}");
    // The run holds the data set: a second scan is refused, naming the holder.
    let (holder, lapsed) = current_lease(&store, &lease_key(SCHEMA)).await.unwrap().unwrap();
    assert_eq!((holder.run_id.as_str(), lapsed), (result.run_id.as_str(), false));
    let again = scan::handle(&config, &registry, scan_event).await.unwrap_err();
    assert!(again.message.contains(&result.run_id), "{again}");
    // A prefix inside a Delta Lake table is refused before anything is written.
    let delta = store_with(&["t/part-0.parquet", "t/_delta_log/00000000000000000000.json"]).await;
    let table: ScanEvent =
        serde_json::from_str(r#"{"bucket":"b","prefixes":["t/"],"schema":"sensorData","desiredVersion":"3"}"#).unwrap();
    let refused = scan::handle(&Config::over(delta.clone()), &registry, table)
        .await
        .unwrap_err();
    assert!(refused.message.contains("Delta Lake table at t/"), "{refused}");
    assert!(current_lease(&delta, &lease_key(SCHEMA)).await.unwrap().is_none());
}
