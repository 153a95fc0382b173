//! Another program replaces objects while a run reads them, on local disk (written over in
//! place, as a plain copy does) and on S3: a changed object is a conflict, retried from its
//! head, never recorded as "not a readable Parquet file"; afterwards every object is one of
//! the contents it was given, or a full migration of one of them with its version recorded.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pqmigrate::executor::RunOptions;
use pqmigrate::scan::ScanSpec;
use pqmigrate::store::RetryPolicy;
use pqmigrate::{MigrateOptions, Migrator, Registry, RunReport, Status, Store};
use pqmigrate_sensor_steps::{DataSpec, SCHEMA, generate_file};
use support::*;

const OBJECTS: u64 = 60;

fn contents(i: u64) -> [Bytes; 2] {
    let spec = |seed| DataSpec {
        rows: 3000,
        row_group_rows: 500,
        seed,
    };
    [generate_file(&spec(1), i), generate_file(&spec(2), i)]
}

fn key(i: u64) -> String {
    format!("w/sensorData_{i:03}.parquet")
}

/// Puts the data set's first contents in `store`, then runs it to version 3 through `reading`
/// (the same store, with another writer acting on each object while it is read); returns the
/// report and the keys the other writer replaced.
async fn run_beside(store: &Store, reading: Store) -> RunReport {
    for i in 0..OBJECTS {
        store
            .put(&key(i), contents(i)[0].clone(), &[], Default::default())
            .await
            .unwrap();
    }
    Migrator::new(
        reading,
        Arc::new(Registry::from_inventory().unwrap()),
        MigrateOptions::new(SCHEMA, 3),
    )
    .scan(
        ScanSpec::default()
            .prefixes(["w/".to_string()])
            .suffix(".parquet")
            .concurrency(8),
    )
    .run_options(
        RunOptions::default()
            .concurrency(4)
            .retry(RetryPolicy {
                interval: Duration::from_millis(20),
                max_attempts: 6,
                backoff_rate: 1.5,
                max_delay: Duration::from_millis(200),
            })
            .attempt_timeout(Some(Duration::from_secs(60))),
    )
    .run()
    .await
    .unwrap()
}

/// The other content of the object `key`.
fn other_content(key: &str) -> Bytes {
    let i: u64 = key
        .trim_start_matches("w/sensorData_")
        .trim_end_matches(".parquet")
        .parse()
        .unwrap();
    contents(i)[1].clone()
}

/// Every failure is a conflict; none is "not a readable Parquet file".
fn only_conflicts(report: &RunReport, replaced: usize) {
    assert_eq!(
        replaced as u64, OBJECTS,
        "the other writer replaced every object while it was read"
    );
    assert!(report.summary.failures.is_empty(), "{:?}", report.summary);
    assert_eq!(report.summary.count(Status::Migrated), OBJECTS, "{:?}", report.summary);
}

#[test]
fn local_files_written_over_in_place_while_read_are_conflicts() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::local(dir.path()).unwrap();
    let root = dir.path().to_path_buf();
    // Written over in place, as a plain copy does (same file, new bytes), when its data is read.
    let writer = Arc::new(OtherWriter::new(
        pqmigrate::store::Request::Get,
        false,
        Arc::new(move |_io, key| {
            std::fs::write(root.join(&key), other_content(&key)).unwrap();
            Box::pin(async { Ok(()) })
        }),
    ));
    let report = rt.block_on(run_beside(&store, store.clone().with_hook(writer.clone())));
    only_conflicts(&report, writer.acted_on().len());
    // Every file is a migration of the other writer's content (local disk keeps the version in
    // the footer and the file's metadata).
    rt.block_on(async {
        for i in 0..OBJECTS {
            let data = raw_bytes(&store, &key(i)).await;
            assert_eq!(
                footer_version(&data, &pqmigrate::version_key(SCHEMA)),
                Some(3),
                "{}",
                key(i)
            );
            assert_eq!(
                floats(&read_all(&contents(i)[1]), "x"),
                floats(&read_all(&data), "x"),
                "{}: migrated from the content it had when written",
                key(i)
            );
        }
    });
}

#[test]
fn s3_objects_replaced_while_read_are_conflicts() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, bucket) = rt.block_on(new_bucket("changed-read"));
    let writer = Arc::new(OtherWriter::new(
        pqmigrate::store::Request::Get,
        false,
        Arc::new(move |io, key| {
            let data = other_content(&key);
            Box::pin(async move { io.put(&key, data.into(), Default::default()).await.map(|_| ()) })
        }),
    ));
    let report = rt.block_on(run_beside(&store, store.clone().with_hook(writer.clone())));
    only_conflicts(&report, writer.acted_on().len());
    let _ = bucket;
    rt.block_on(async {
        for i in 0..OBJECTS {
            let found = check_object(&store, &key(i), &contents(i), 3).await;
            assert_eq!(found, Found::Migrated { version: 3 }, "{}", key(i));
        }
    });
}
