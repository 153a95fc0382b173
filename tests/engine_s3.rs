//! The core engine against a real S3 server (SeaweedFS from scripts/test.sh, or any endpoint in
//! PQM_S3_ENDPOINT): fused multi-step migration in one write, tags and metadata, conflicts,
//! failed uploads and bad input.

mod support;

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{Attribute, GetOptions, ObjectStoreExt};
use pqmigrate::{Error, MigrateOptions, Migration, Outcome, Registry, StepError, Store, migrate_object, user_metadata};
use pqmigrate_sensor_steps::{SCHEMA, STEP_COUNT, generate_file};
use support::*;

/// A step that panics, registered in this test binary under its own schema id.
struct Panics;
impl Migration for Panics {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef, StepError> {
        Ok(input.clone())
    }
    fn transform(&self, _: RecordBatch, _: &SchemaRef) -> Result<RecordBatch, StepError> {
        panic!("boom in a user step")
    }
}
pqmigrate::register_step!("panicky", 1 => 2, Panics);

fn registry() -> Registry {
    Registry::from_inventory().expect("valid registry")
}

fn key_version_tag() -> String {
    pqmigrate::version_key(SCHEMA)
}

#[test]
fn steps_from_the_separate_step_crate_are_registered() {
    let r = registry();
    let sensor: Vec<_> = r
        .steps()
        .filter(|s| s.schema == SCHEMA)
        .map(|s| (s.from, s.to, s.name))
        .collect();
    assert_eq!(sensor.len(), STEP_COUNT);
    assert_eq!(sensor, vec![(1, 2, "AddFeatures"), (2, 3, "RenameAndEncode")]);
    assert_eq!(r.len(), STEP_COUNT + 1, "sensorData steps plus this binary's own");
}

#[tokio::test]
async fn v1_object_migrates_to_v3_in_one_write_keeping_tags_and_metadata() {
    let (store, bucket) = new_bucket("fused").await;
    let key = "parquet/year=2019/month=3/day=01/sensorData_000.parq.snappy";
    let original = generate_file(&small_spec(), 0);
    let tags = [
        ("owner".to_string(), "data-team".to_string()),
        ("retention".to_string(), "7y".to_string()),
    ];
    let before = store
        .put(key, original.clone(), &tags, user_metadata(&[("source", "fleet-a")]))
        .await
        .unwrap();

    let done = migrate_done(&store, key, SCHEMA, 3).await;
    assert_eq!((done.from, done.to), (1, 3));
    assert_eq!(
        done.steps.iter().map(|s| (s.from, s.to)).collect::<Vec<_>>(),
        vec![(1, 2), (2, 3)]
    );
    assert_eq!(done.old_version_id, before.version_id);
    assert_eq!(done.rows, 2_500);
    assert_ne!(done.new_version_id, done.old_version_id);

    // Read back with a separate client.
    let other = other_client(&bucket);
    let migrated = raw_bytes(&other, key).await;
    let old = read_all(&original);
    let new = read_all(&migrated);
    assert_features_match(&old, &new);
    assert!(new.column_by_name("sensor_type").is_none());
    assert_eq!(
        new.column_by_name("sensor_kind").unwrap().as_ref(),
        old.column_by_name("sensor_type").unwrap().as_ref()
    );
    assert!(matches!(
        new.schema().field_with_name("device_id").unwrap().data_type(),
        DataType::Dictionary(_, _)
    ));
    let device = arrow::compute::cast(new.column_by_name("device_id").unwrap(), &DataType::Utf8).unwrap();
    assert_eq!(device.as_ref(), old.column_by_name("device_id").unwrap().as_ref());
    assert_eq!(footer_version(&migrated, &key_version_tag()), Some(3));

    let mut tags_after = other.s3_api().unwrap().get_tags(key).await.unwrap();
    tags_after.sort();
    assert_eq!(
        tags_after,
        vec![
            ("owner".to_string(), "data-team".to_string()),
            ("retention".to_string(), "7y".to_string()),
            (key_version_tag(), "3".to_string()),
        ]
    );
    let head = other
        .inner()
        .get_opts(
            &Path::from(key),
            GetOptions {
                head: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        head.attributes
            .get(&Attribute::Metadata("source".into()))
            .map(|v| v.as_ref()),
        Some("fleet-a")
    );

    // One write: exactly two versions exist, and the first is the original, byte for byte.
    let versions = other.s3_api().unwrap().list_versions(key).await.unwrap();
    assert_eq!(versions.len(), 2, "{versions:?}");
    let old_id = done.old_version_id.unwrap();
    assert_eq!(version_bytes(&other, key, &old_id).await, original);
}

#[tokio::test]
async fn object_tagged_v2_by_a_plain_tagging_call_gets_only_step_2_to_3() {
    let (store, _) = new_bucket("tagged-v2").await;
    let key = "parquet/sensorData_001.parq.snappy";
    let original = generate_file(&small_spec(), 1);
    store.put(key, original.clone(), &[], Default::default()).await.unwrap();
    store
        .s3_api()
        .unwrap()
        .put_tags(key, &[(key_version_tag(), "2".into())])
        .await
        .unwrap();

    let done = migrate_done(&store, key, SCHEMA, 3).await;
    assert_eq!((done.from, done.to, done.steps.len()), (2, 3, 1));
    let new = read_all(&raw_bytes(&store, key).await);
    assert!(new.column_by_name("sensor_kind").is_some(), "2->3 ran");
    assert!(new.column_by_name("magnitude").is_none(), "1->2 did not run");
    let tags = store.s3_api().unwrap().get_tags(key).await.unwrap();
    assert_eq!(tags, vec![(key_version_tag(), "3".to_string())]);

    let again = migrate_object(&store, &registry(), key, &MigrateOptions::new(SCHEMA, 3))
        .await
        .unwrap();
    assert_eq!(again, Outcome::AlreadyAtTarget { version: 3 });
    let ahead = migrate_object(&store, &registry(), key, &MigrateOptions::new(SCHEMA, 2))
        .await
        .unwrap();
    assert_eq!(ahead, Outcome::AheadOfTarget { version: 3 });
}

#[tokio::test]
async fn a_concurrent_writer_causes_a_conflict_never_an_overwrite() {
    let (store, bucket) = new_bucket("conflict").await;
    let key = "sensorData_002.parquet";
    store
        .put(key, generate_file(&small_spec(), 2), &[], Default::default())
        .await
        .unwrap();
    let replacement = generate_file(&small_spec(), 99);

    let racing = with_racing_writer(&store, replacement.clone());
    let err = migrate_object(&racing, &registry(), key, &MigrateOptions::new(SCHEMA, 3))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains(key));

    // The other writer's content stands; nothing of ours was written over it.
    let other = other_client(&bucket);
    assert_eq!(raw_bytes(&other, key).await, replacement);
    assert_eq!(other.s3_api().unwrap().list_versions(key).await.unwrap().len(), 2);

    // A retry migrates the new content.
    migrate_done(&store, key, SCHEMA, 3).await;
    assert_features_match(&read_all(&replacement), &read_all(&raw_bytes(&other, key).await));
}

#[tokio::test]
async fn an_upload_cut_midway_leaves_the_original_untouched() {
    let (store, bucket) = new_bucket("cut-upload").await;
    let key = "sensorData_003.parquet";
    let original = generate_file(&small_spec(), 3);
    let before = store
        .put(
            key,
            original.clone(),
            &[("owner".into(), "x".into())],
            Default::default(),
        )
        .await
        .unwrap();

    let proxy = cutting_proxy(&s3_endpoint(), 64 * 1024).await;
    let through_proxy = Store::s3(
        &bucket,
        &pqmigrate::StoreOptions {
            endpoint: Some(proxy),
            region: None,
            max_retries: Some(1),
            ..pqmigrate::StoreOptions::default()
        },
    )
    .unwrap();
    assert!(original.len() > 64 * 1024, "the file must be larger than the cut point");
    let err = migrate_object(&through_proxy, &registry(), key, &MigrateOptions::new(SCHEMA, 3))
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with(key), "{err}");
    assert!(err.is_retryable(), "a dropped connection is worth a retry: {err}");

    let head = store.inner().head(&Path::from(key)).await.unwrap();
    assert_eq!(head.e_tag, before.e_tag);
    assert_eq!(head.version, before.version_id);
    assert_eq!(raw_bytes(&store, key).await, original);
    assert_eq!(
        store.s3_api().unwrap().get_tags(key).await.unwrap(),
        vec![("owner".to_string(), "x".to_string())]
    );
    assert_eq!(store.s3_api().unwrap().list_versions(key).await.unwrap().len(), 1);
}

/// Puts `data` under `key` with `tags`, runs a migration, and checks it fails naming the key
/// and `cause`, with the object unchanged.
async fn assert_rejected(
    store: &Store,
    key: &str,
    data: Bytes,
    tags: &[(String, String)],
    options: &MigrateOptions,
    cause: &str,
) {
    let before = store.put(key, data.clone(), tags, Default::default()).await.unwrap();
    let err = migrate_object(store, &registry(), key, options).await.unwrap_err();
    let message = err.to_string();
    assert!(message.starts_with(key), "error should name {key}: {message}");
    assert!(message.contains(cause), "error should say {cause:?}: {message}");
    assert!(!err.is_retryable(), "{message}");
    let head = store.inner().head(&Path::from(key)).await.unwrap();
    assert_eq!(head.e_tag, before.e_tag, "{key} unchanged");
    assert_eq!(raw_bytes(store, key).await, data);
    assert_eq!(store.s3_api().unwrap().get_tags(key).await.unwrap(), tags);
}

#[tokio::test]
async fn bad_input_fails_per_object_with_a_clear_cause_and_leaves_it_unchanged() {
    let (store, _) = new_bucket("bad-input").await;
    let good = generate_file(&small_spec(), 4);
    let sensor = MigrateOptions::new(SCHEMA, 3);

    assert_rejected(
        &store,
        "panics.parquet",
        good.clone(),
        &[],
        &MigrateOptions::new("panicky", 2),
        "panicked: boom in a user step",
    )
    .await;

    let mut corrupt = good.to_vec();
    let middle = corrupt.len() / 2;
    for b in &mut corrupt[middle - 2000..middle + 2000] {
        *b ^= 0x5A;
    }
    assert_rejected(
        &store,
        "corrupt.parquet",
        Bytes::from(corrupt),
        &[],
        &sensor,
        "not a readable Parquet file",
    )
    .await;

    let truncated = good.slice(..good.len() / 3);
    assert_rejected(
        &store,
        "truncated.parquet",
        truncated,
        &[],
        &sensor,
        "not a readable Parquet file",
    )
    .await;

    let csv = Bytes::from_static(b"ts,x,y\n1,2,3\n");
    assert_rejected(
        &store,
        "not-parquet.parquet",
        csv,
        &[],
        &sensor,
        "not a readable Parquet file",
    )
    .await;

    let bad_tag = [(key_version_tag(), "abc".to_string())];
    assert_rejected(
        &store,
        "bad-tag.parquet",
        good.clone(),
        &bad_tag,
        &sensor,
        "bad version value \"abc\" in tag",
    )
    .await;
}
