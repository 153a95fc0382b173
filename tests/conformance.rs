//! One conformance suite, run against every store kind: memory, local disk, S3 and Azure Blob
//! (Azurite). The GCS emulator lacks generation preconditions, so there the probe's refusal is
//! what is tested (tests/cloud_stores.rs).

mod support;

use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use pqmigrate::{Error, MigrateOptions, Outcome, Registry, Store, migrate_object, version_key};
use pqmigrate_sensor_steps::{SCHEMA, generate_batch, generate_file};
use support::*;

/// A store under test and whatever keeps it alive.
struct Fixture {
    store: Store,
    _dir: Option<tempfile::TempDir>,
}

async fn memory() -> Fixture {
    Fixture {
        store: Store::memory(),
        _dir: None,
    }
}

async fn local() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    Fixture {
        store: Store::local(dir.path()).unwrap(),
        _dir: Some(dir),
    }
}

async fn s3() -> Fixture {
    Fixture {
        store: new_bucket("conformance").await.0,
        _dir: None,
    }
}

async fn azure() -> Fixture {
    Fixture {
        store: Cloud::Azure.new_store("conformance").0,
        _dir: None,
    }
}

fn missing(schema: &str, from: u32, to: u32) -> Outcome {
    Outcome::MissingStep {
        missing: pqmigrate::StepId {
            schema: schema.into(),
            from,
            to,
        },
    }
}

fn registry() -> Registry {
    Registry::from_inventory().unwrap()
}

async fn etag(store: &Store, key: &str) -> Option<String> {
    store.head(key).await.unwrap().e_tag
}

async fn migrates_v1_to_v3_and_records_the_version(f: Fixture) {
    let key = "data/sensorData_000.parquet";
    let original = generate_file(&small_spec(), 0);
    f.store
        .put(key, original.clone(), &[], Default::default())
        .await
        .unwrap();
    let (from, done) = migrate_done(&f.store, key, SCHEMA, 3).await;
    assert_eq!(
        (from, done.to, done.rows, done.bytes_in),
        (1, 3, 2_500, original.len() as u64)
    );
    let migrated = raw_bytes(&f.store, key).await;
    assert_eq!(done.bytes_out, migrated.len() as u64);
    assert_eq!(footer_version(&migrated, &version_key(SCHEMA)), Some(3));
    assert_features_match(&read_all(&original), &read_all(&migrated));
    assert_eq!(etag(&f.store, key).await, done.new_e_tag);
    let again = migrate_object(&f.store, &registry(), key, &MigrateOptions::new(SCHEMA, 3))
        .await
        .unwrap();
    assert_eq!((again.from, again.outcome), (Some(3), Outcome::AtTarget));
    assert_eq!(raw_bytes(&f.store, key).await, migrated, "a re-run writes nothing");
}

async fn steps_run_one_write_at_a_time_when_asked(f: Fixture) {
    let key = "sensorData_001.parquet";
    f.store
        .put(key, generate_file(&small_spec(), 1), &[], Default::default())
        .await
        .unwrap();
    let mut options = MigrateOptions::new(SCHEMA, 3);
    options.max_steps = Some(1);
    let first = migrate_object(&f.store, &registry(), key, &options).await.unwrap();
    assert!(
        matches!(&first.outcome, Outcome::Migrated(d) if (first.from, d.to) == (Some(1), 2)),
        "{first:?}"
    );
    let second = migrate_object(&f.store, &registry(), key, &options).await.unwrap();
    assert!(
        matches!(&second.outcome, Outcome::Migrated(d) if (second.from, d.to) == (Some(2), 3)),
        "{second:?}"
    );
    let data = raw_bytes(&f.store, key).await;
    assert_eq!(footer_version(&data, &version_key(SCHEMA)), Some(3));
    let footer = pqmigrate::rewrite::Footer::parse(key, &data).unwrap();
    let registry = Registry::from_inventory().unwrap();
    let fingerprint = |from| registry.step(SCHEMA, from).unwrap().fingerprint();
    let expected = format!("sensorData:1->2@{},sensorData:2->3@{}", fingerprint(1), fingerprint(2));
    assert_eq!(
        footer.value(pqmigrate::rewrite::STEPS_FOOTER_KEY),
        Some(expected.as_str())
    );
}

async fn a_missing_step_is_reported_and_the_object_untouched(f: Fixture) {
    let key = "sensorData_002.parquet";
    let original = generate_file(&small_spec(), 2);
    f.store
        .put(key, original.clone(), &[], Default::default())
        .await
        .unwrap();
    let outcome = migrate_object(&f.store, &registry(), key, &MigrateOptions::new(SCHEMA, 4))
        .await
        .unwrap();
    assert_eq!((outcome.from, outcome.outcome), (Some(1), missing(SCHEMA, 3, 4)));
    assert_eq!(raw_bytes(&f.store, key).await, original);
    let other = migrate_object(&f.store, &registry(), key, &MigrateOptions::new("otherSchema", 2))
        .await
        .unwrap();
    assert_eq!((other.from, other.outcome), (Some(1), missing("otherSchema", 1, 2)));
}

async fn a_concurrent_change_is_a_conflict(f: Fixture) {
    let key = "sensorData_003.parquet";
    f.store
        .put(key, generate_file(&small_spec(), 3), &[], Default::default())
        .await
        .unwrap();
    let theirs = generate_file(&small_spec(), 33);
    let racing = with_racing_writer(&f.store, theirs.clone());
    // Every store's conditional write goes through the seam, where the racing writer strikes
    // (local disk stages the output and renames it after checking the ETag).
    let err = migrate_object(&racing, &registry(), key, &MigrateOptions::new(SCHEMA, 3))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert_eq!(raw_bytes(&f.store, key).await, theirs);
}

async fn a_bad_footer_version_is_an_error(f: Fixture) {
    let key = "bad-footer.parquet";
    let batch = generate_batch(&small_spec(), 5, 100);
    let mut file = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.append_key_value_metadata(KeyValue::new(version_key(SCHEMA), "-1".to_string()));
    writer.close().unwrap();
    f.store
        .put(key, Bytes::from(file.clone()), &[], Default::default())
        .await
        .unwrap();
    let err = migrate_object(&f.store, &registry(), key, &MigrateOptions::new(SCHEMA, 3))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{key}: bad version value \"-1\" in footer `schema:sensorData:version`: expected a positive integer")
    );
    assert_eq!(raw_bytes(&f.store, key).await, Bytes::from(file));
}

macro_rules! conformance {
    ($($scenario:ident),* $(,)?) => {
        mod memory_store { $( #[tokio::test] async fn $scenario() { super::$scenario(super::memory().await).await } )* }
        mod local_store { $( #[tokio::test] async fn $scenario() { super::$scenario(super::local().await).await } )* }
        mod s3_store { $( #[tokio::test] async fn $scenario() { super::$scenario(super::s3().await).await } )* }
        mod azure_store { $( #[tokio::test] async fn $scenario() { super::$scenario(super::azure().await).await } )* }
    };
}

conformance!(
    migrates_v1_to_v3_and_records_the_version,
    steps_run_one_write_at_a_time_when_asked,
    a_missing_step_is_reported_and_the_object_untouched,
    a_concurrent_change_is_a_conflict,
    a_bad_footer_version_is_an_error,
);
