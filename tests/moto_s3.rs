//! The second S3 implementation of the test matrix, moto server, which accepts a stale
//! `If-Match` on CompleteMultipartUpload while honouring every other condition. The probe must
//! find exactly that gap, and a run there must be safe: outputs go out as single conditional
//! PUTs, so another writer's change is never overwritten.

mod support;

use bytes::Bytes;
use pqmigrate::transfer::Guarantees;
use pqmigrate::{Error, MigrateOptions, Outcome, Registry, StoreOptions, migrate_object};
use pqmigrate_sensor_steps::{DataSpec, SCHEMA, generate_file};
use support::*;

fn moto(multipart_threshold: usize) -> StoreOptions {
    StoreOptions::default()
        .endpoint(moto_endpoint())
        .max_retries(2)
        .multipart_threshold(multipart_threshold)
        .part_size(5 * 1024 * 1024)
}

/// A file whose rewrite is larger than one 5 MiB part, so it would go out in parts.
fn large_file(seed: u64) -> Bytes {
    let spec = DataSpec {
        rows: 60_000,
        row_group_rows: 20_000,
        seed,
    };
    generate_file(&spec, seed)
}

#[tokio::test]
async fn the_probe_finds_exactly_the_missing_multipart_condition_and_a_run_there_is_safe() {
    let options = moto(6 * 1024 * 1024);
    let (store, _) = new_bucket_on(&options, "moto").await;
    let found = pqmigrate::test_support::probe(&store).await.unwrap();
    assert_eq!(
        found,
        Guarantees {
            conditional_create: true,
            conditional_put: true,
            conditional_complete: Some(false),
            tags_round_trip: Some(true),
            metadata_round_trips: Some(true),
            versioning: true,
        }
    );
    assert_eq!(found.refusal(), None, "not refused: the unsafe call is avoided");
    assert!(found.single_put_only());

    let registry = Registry::from_inventory().unwrap();
    let options = MigrateOptions::new(SCHEMA, 3);
    let original = large_file(1);
    assert!(original.len() > 6 * 1024 * 1024, "{} bytes", original.len());
    let theirs = large_file(2);

    // The gap is real: a multipart rewrite there overwrites a change made meanwhile.
    let key = "unsafe/sensorData_000.parquet";
    store.put(key, original.clone(), &[], Default::default()).await.unwrap();
    let racing = with_racing_writer(&store, theirs.clone());
    let record = migrate_object(&racing, &registry, key, &options).await.unwrap();
    assert!(matches!(record.outcome, Outcome::Migrated(_)), "{record:?}");
    assert_ne!(
        raw_bytes(&store, key).await,
        theirs,
        "moto accepted the stale completion"
    );

    // The store the probe checked writes single conditional PUTs: the change stands.
    let checked = pqmigrate::transfer::checked(store.clone()).await.unwrap();
    let key = "safe/sensorData_000.parquet";
    store.put(key, original.clone(), &[], Default::default()).await.unwrap();
    let racing = with_racing_writer(&checked, theirs.clone());
    let err = migrate_object(&racing, &registry, key, &options).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert_eq!(raw_bytes(&store, key).await, theirs, "the other writer's change stands");

    // And without another writer the checked store migrates the large file in one PUT.
    let key = "safe/sensorData_001.parquet";
    store.put(key, original.clone(), &[], Default::default()).await.unwrap();
    let (from, done) = migrate_done(&checked, key, SCHEMA, 3).await;
    assert_eq!((from, done.to), (1, 3));
    assert!(done.bytes_out > 6 * 1024 * 1024);
    assert_features_match(&read_all(&original), &read_all(&raw_bytes(&store, key).await));
}

/// The CLI on moto: the probe's finding is said, and the run migrates every object.
#[test]
fn a_cli_run_on_moto_migrates_with_single_puts() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, bucket) = rt.block_on(new_bucket_on(&moto(6 * 1024 * 1024), "moto-cli"));
    let files: Vec<(String, Bytes)> = (0..12)
        .map(|i| {
            (
                format!("d/sensorData_{i:03}.parq.snappy"),
                generate_file(&small_spec(), i),
            )
        })
        .collect();
    rt.block_on(async {
        for (key, data) in &files {
            store.put(key, data.clone(), &[], Default::default()).await.unwrap();
        }
    });
    let url = format!("s3://{bucket}/d/");
    let endpoint = moto_endpoint();
    let out = cli(
        &["run", &url, "--schema", SCHEMA, "--to", "3", "--json"],
        &[("PQM_S3_ENDPOINT", endpoint.as_str())],
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("a stale If-Match on CompleteMultipartUpload is accepted"),
        "{}",
        out.stderr
    );
    assert_eq!(json(&out)["by_status"]["migrated"].as_u64(), Some(12));
    rt.block_on(async {
        for (key, data) in &files {
            assert_eq!(
                check_object(&store, key, std::slice::from_ref(data), 3).await,
                Found::Migrated { version: 3 }
            );
        }
    });
}

/// An object encrypted with its own KMS key is rewritten with that key (moto keeps and reports
/// the key of each object).
#[tokio::test]
async fn an_object_keeps_its_kms_key_through_the_rewrite() {
    let (store, _) = new_bucket_on(&moto(16 * 1024 * 1024), "moto-kms").await;
    let store = pqmigrate::transfer::checked(store).await.unwrap();
    let key = "k/sensorData_000.parquet";
    let kms = pqmigrate::store::Encryption {
        algorithm: "aws:kms".into(),
        kms_key_id: Some("arn:aws:kms:us-east-1:123456789012:key/pqm-test".into()),
    };
    let options = pqmigrate::store::WriteOptions {
        encryption: Some(kms.clone()),
        ..Default::default()
    };
    store
        .write(key, generate_file(&small_spec(), 4), options)
        .await
        .unwrap();
    assert_eq!(store.head(key).await.unwrap().encryption.as_ref(), Some(&kms));
    migrate_done(&store, key, SCHEMA, 3).await;
    assert_eq!(store.head(key).await.unwrap().encryption, Some(kms));
}
