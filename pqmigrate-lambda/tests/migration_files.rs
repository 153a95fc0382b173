//! The stock bootstrap's path, driven with JSON events over the memory store: no step compiled
//! in, the migration files read from a folder the event names. A scan begins the run and writes
//! the location into every manifest line; the per-object loop takes each object to version 3
//! one step an invocation; an edited file is read again in the same process, and the next scan
//! refuses to begin a run until the event accepts the change.

#![cfg(feature = "sql")]

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use pqmigrate_core::Store;
use pqmigrate_lambda::{CloseEvent, Config, INVALID_EVENT_ERROR, MigrateEvent, ScanEvent, Steps, migrate, scan};
use pqmigrate_sensor_steps::{DataSpec, SCHEMA, generate_file};
use serde_json::{Value, json};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/sql-migrations/sensorData");

fn footer_version(data: &bytes::Bytes) -> Option<u32> {
    pqmigrate_core::rewrite::Footer::parse("k", data)
        .unwrap()
        .version("k", &pqmigrate_core::version_key(SCHEMA))
        .unwrap()
}

fn scan_event(location: &str, extra: Value) -> ScanEvent {
    let mut event = json!({
        "bucket": "b", "prefixes": ["p/"], "type": ".parquet", "schema": "schema:sensorData:version",
        "desiredVersion": "3", "maxStepsPerInvocation": 1, "migrations": location
    });
    event
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(event).unwrap()
}

#[tokio::test]
async fn the_stock_path_migrates_with_files_and_refuses_an_edited_one() {
    let spec = DataSpec {
        rows: 300,
        row_group_rows: 100,
        seed: 3,
    };
    let store = Store::memory();
    for i in 0..2 {
        let key = format!("p/sensorData_{i}.parquet");
        store
            .put(&key, generate_file(&spec, i), &[], Default::default())
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("sensorData");
    std::fs::create_dir_all(&folder).unwrap();
    for name in ["V2__add_features.sql", "V3__rename_and_encode.sql"] {
        std::fs::copy(format!("{EXAMPLES}/{name}"), folder.join(name)).unwrap();
    }
    let location = dir.path().to_str().unwrap().to_string();
    let config = Config::over(store.clone());
    // No step compiled in and no location: refused, saying where steps come from.
    let steps = Steps::new([]).unwrap();
    let none = steps.for_event(&config, None).await.unwrap_err();
    assert_eq!(none.error_type, INVALID_EVENT_ERROR);
    assert!(none.message.contains("PQM_MIGRATIONS"), "{none}");
    let empty = tempfile::tempdir().unwrap();
    let nothing = steps.for_event(&config, empty.path().to_str()).await.unwrap_err();
    assert!(nothing.message.contains("no migration files"), "{nothing}");

    // The scan: every manifest line names the files.
    let registry = steps.for_event(&config, Some(&location)).await.unwrap();
    let result = scan::handle(&config, &registry, scan_event(&location, json!({})))
        .await
        .unwrap();
    assert_eq!(result.objects, 2);
    let (_, manifest) = store.get(&result.manifest_key, Default::default()).await.unwrap();
    let items: Vec<MigrateEvent> = std::str::from_utf8(&manifest)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(items.iter().all(|i| i.migrations.as_deref() == Some(location.as_str())));

    // The per-object loop, as the object machine drives the migrate function.
    for mut item in items {
        let mut states = Vec::new();
        for _ in 0..4 {
            let registry = steps.for_event(&config, item.migrations.as_deref()).await.unwrap();
            item = migrate::handle(&config, &registry, item).await.unwrap();
            states.push(item.state.clone());
            if item.state != "Migrating" {
                break;
            }
        }
        assert_eq!(states, ["Migrating", "Done"], "{:?}", item.error_cause);
        let (_, data) = store.get(&item.s3_key, Default::default()).await.unwrap();
        assert_eq!(footer_version(&data), Some(3), "{}", item.s3_key);
        let names: Vec<String> = ParquetRecordBatchReaderBuilder::try_new(data)
            .unwrap()
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        for column in ["magnitude", "angle", "x_norm", "quadrant", "sensor_kind"] {
            assert!(names.iter().any(|n| n == column), "{column} in {names:?}");
        }
    }
    let close: CloseEvent = serde_json::from_value(json!({
        "closeRun": result.run_id, "bucket": "b", "schema": "sensorData", "expected": result.expected
    }))
    .unwrap();
    let closed = scan::close(&config, close).await.unwrap();
    assert_eq!(
        (closed.counts.get("migrated"), closed.needs_attention),
        (Some(&2), 0),
        "{closed:?}"
    );

    // V2 is edited after it migrated both objects (in the first invocation of each chain): the
    // same process reads it again, and a scan refuses to begin a run, naming it.
    let edited = std::fs::read_to_string(folder.join("V2__add_features.sql"))
        .unwrap()
        .replace("atan2(y, x)", "atan2(x, y)");
    std::fs::write(folder.join("V2__add_features.sql"), edited).unwrap();
    let reloaded = steps.for_event(&config, Some(&location)).await.unwrap();
    assert_ne!(
        reloaded.step(SCHEMA, 1).unwrap().fingerprint(),
        registry.step(SCHEMA, 1).unwrap().fingerprint()
    );
    let refused = scan::handle(&config, &reloaded, scan_event(&location, json!({})))
        .await
        .unwrap_err();
    assert_eq!(refused.error_type, INVALID_EVENT_ERROR);
    assert!(refused.message.contains("V2__add_features.sql"), "{refused}");
    assert!(!refused.message.contains("V3__"), "{refused}");
    let accepted = scan::handle(
        &config,
        &reloaded,
        scan_event(&location, json!({"acceptChangedMigrations": true})),
    )
    .await
    .unwrap();
    assert_eq!(accepted.objects, 0, "both are at version 3 already");
}
