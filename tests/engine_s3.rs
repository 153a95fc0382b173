//! The core engine against a real S3 server (SeaweedFS from scripts/test.sh, or any endpoint in
//! PQM_S3_ENDPOINT): fused multi-step migration in one write, tags and metadata, conflicts,
//! failed uploads and bad input.

mod support;

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

use bytes::Bytes;
use object_store::Attribute;
use pqmigrate::store::user_metadata;
use pqmigrate::{Error, MigrateOptions, Migration, Outcome, Registry, StepError, Store, migrate_object};
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

    let (from, done) = migrate_done(&store, key, SCHEMA, 3).await;
    assert_eq!((from, done.to), (1, 3));
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
    let head = other.head(key).await.unwrap();
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

/// The storage class, server-side encryption, content headers and user metadata of an object
/// survive its rewrite (a class other than STANDARD would otherwise silently become STANDARD,
/// an encrypted object an unencrypted one).
#[tokio::test]
async fn storage_class_and_content_headers_are_kept() {
    let (store, _) = new_bucket("storage-class").await;
    let key = "sensorData_010.parquet";
    let mut attributes = user_metadata(&[("source", "fleet-b")]);
    attributes.insert(Attribute::StorageClass, "STANDARD_IA".into());
    attributes.insert(Attribute::ContentType, "application/vnd.apache.parquet".into());
    attributes.insert(Attribute::CacheControl, "max-age=60".into());
    let aes = pqmigrate::store::Encryption {
        algorithm: "AES256".into(),
        kms_key_id: None,
    };
    let encrypted = pqmigrate::store::WriteOptions {
        attributes: attributes.clone(),
        encryption: Some(aes.clone()),
        ..Default::default()
    };
    store
        .write(key, generate_file(&small_spec(), 10), encrypted)
        .await
        .unwrap();
    let before = store.head(key).await.unwrap();
    assert_eq!(
        before.encryption.as_ref(),
        Some(&aes),
        "the server keeps the encryption"
    );
    assert_eq!(
        before.attributes.get(&Attribute::StorageClass).map(|v| v.as_ref()),
        Some("STANDARD_IA"),
        "the server keeps the class"
    );
    migrate_done(&store, key, SCHEMA, 3).await;
    let after = store.head(key).await.unwrap();
    assert_ne!(after.e_tag, before.e_tag);
    assert_eq!(after.encryption, before.encryption, "encrypted as before");
    for attribute in [
        Attribute::StorageClass,
        Attribute::ContentType,
        Attribute::CacheControl,
        Attribute::Metadata("source".into()),
    ] {
        assert_eq!(
            after.attributes.get(&attribute),
            before.attributes.get(&attribute),
            "{attribute:?}"
        );
    }
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

    let (from, done) = migrate_done(&store, key, SCHEMA, 3).await;
    assert_eq!((from, done.to, done.steps.len()), (2, 3, 1));
    let new = read_all(&raw_bytes(&store, key).await);
    assert!(new.column_by_name("sensor_kind").is_some(), "2->3 ran");
    assert!(new.column_by_name("magnitude").is_none(), "1->2 did not run");
    let tags = store.s3_api().unwrap().get_tags(key).await.unwrap();
    assert_eq!(tags, vec![(key_version_tag(), "3".to_string())]);

    let again = migrate_object(&store, &registry(), key, &MigrateOptions::new(SCHEMA, 3))
        .await
        .unwrap();
    assert_eq!((again.from, again.outcome), (Some(3), Outcome::AtTarget));
    let ahead = migrate_object(&store, &registry(), key, &MigrateOptions::new(SCHEMA, 2))
        .await
        .unwrap();
    assert_eq!((ahead.from, ahead.outcome), (Some(3), Outcome::AheadOfTarget));
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

/// Tag edits do not change the ETag, so the write's condition cannot see them. An edit made
/// while the object is rewritten sends it back to be read again; one made after the last check
/// (just before the write) is carried over from the version read. No edit is reverted, and an
/// object replaced with new data and new tags ends with those tags, never the old ones.
#[tokio::test]
async fn tag_edits_during_a_rewrite_are_never_reverted() {
    use pqmigrate::store::Request;
    let (store, _) = new_bucket("tag-edits").await;
    let owner = vec![("owner".to_string(), "fleet".to_string())];
    let expected = |extra: &[(&str, &str)]| {
        let mut tags = owner.clone();
        tags.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        tags.push((key_version_tag(), "3".to_string()));
        tags.sort();
        tags
    };
    let sorted_tags = |store: Store, key: &'static str| async move {
        let mut tags = store.tags(key).await.unwrap().unwrap();
        tags.sort();
        tags
    };
    let (during, late, replaced) = ("during.parquet", "late.parquet", "replaced.parquet");
    for (i, key) in [during, late, replaced].into_iter().enumerate() {
        store
            .put(key, generate_file(&small_spec(), i as u64), &owner, Default::default())
            .await
            .unwrap();
    }
    let options = MigrateOptions::new(SCHEMA, 3);

    // An edit while the data is read: the object is refused, unchanged, and a retry keeps it.
    let editing = store.clone().with_hook(OtherWriter::tag_editor(Request::Get, false));
    let err = migrate_object(&editing, &registry(), during, &options)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TagsChanged { .. }) && err.is_retryable(), "{err}");
    assert_eq!(raw_bytes(&store, during).await, generate_file(&small_spec(), 0));
    migrate_done(&editing, during, SCHEMA, 3).await;
    assert_eq!(sorted_tags(store.clone(), during).await, expected(&[EDITED_TAG]));

    // An edit just before the write lands on the version read, and is carried over.
    let late_editing = store.clone().with_hook(OtherWriter::tag_editor(Request::Put, true));
    let (_, done) = migrate_done(&late_editing, late, SCHEMA, 3).await;
    assert_eq!(sorted_tags(store.clone(), late).await, expected(&[EDITED_TAG]));
    assert_eq!(
        store
            .tags_at(late, done.new_version_id.as_deref())
            .await
            .unwrap()
            .map(|mut t| {
                t.sort();
                t
            }),
        Some(expected(&[EDITED_TAG]))
    );

    // New data and new tags while the old data is read: the write is refused, and the retry
    // migrates the new data with the new tags.
    let new_data = generate_file(&small_spec(), 77);
    let new_tags = vec![("owner".to_string(), "someone-else".to_string())];
    let replacing = {
        let (data, tags) = (new_data.clone(), new_tags.clone());
        store.clone().with_hook(OtherWriter::new(
            Request::Get,
            false,
            Arc::new(move |io, key| {
                let (data, tags) = (data.clone(), tags.clone());
                Box::pin(async move {
                    let options = pqmigrate::store::WriteOptions {
                        tags,
                        ..Default::default()
                    };
                    io.put(&key, data.into(), options).await.map(|_| ())
                })
            }),
        ))
    };
    let err = migrate_object(&replacing, &registry(), replaced, &options)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    migrate_done(&replacing, replaced, SCHEMA, 3).await;
    assert_features_match(&read_all(&new_data), &read_all(&raw_bytes(&store, replaced).await));
    let mut want = new_tags.clone();
    want.push((key_version_tag(), "3".to_string()));
    want.sort();
    assert_eq!(sorted_tags(store.clone(), replaced).await, want);
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
        &pqmigrate::StoreOptions::default().endpoint(proxy).max_retries(1),
    )
    .unwrap();
    assert!(original.len() > 64 * 1024, "the file must be larger than the cut point");
    let err = migrate_object(&through_proxy, &registry(), key, &MigrateOptions::new(SCHEMA, 3))
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with(key), "{err}");
    assert!(err.is_retryable(), "a dropped connection is worth a retry: {err}");

    let head = store.head(key).await.unwrap();
    assert_eq!(head.e_tag, before.e_tag);
    assert_eq!(head.version_id, before.version_id);
    assert_eq!(raw_bytes(&store, key).await, original);
    assert_eq!(
        store.s3_api().unwrap().get_tags(key).await.unwrap(),
        vec![("owner".to_string(), "x".to_string())]
    );
    assert_eq!(store.s3_api().unwrap().list_versions(key).await.unwrap().len(), 1);
}

/// A one-row-group Parquet file of float64 or int64 columns.
fn parquet_of(columns: &[(&str, DataType)]) -> Bytes {
    use arrow::array::{ArrayRef, Float64Array, Int64Array};
    let arrays: Vec<(&str, ArrayRef)> = columns
        .iter()
        .map(|(name, t)| {
            let array: ArrayRef = match t {
                DataType::Int64 => std::sync::Arc::new(Int64Array::from(vec![1, 2, 3])),
                _ => std::sync::Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])),
            };
            (*name, array)
        })
        .collect();
    let batch = RecordBatch::try_from_iter(arrays).unwrap();
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    Bytes::from(out)
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
    let head = store.head(key).await.unwrap();
    assert_eq!(head.e_tag, before.e_tag, "{key} unchanged");
    assert_eq!(raw_bytes(store, key).await, data);
    let mut after = store.s3_api().unwrap().get_tags(key).await.unwrap();
    let mut before_tags = tags.to_vec();
    after.sort();
    before_tags.sort();
    assert_eq!(after, before_tags);
}

#[tokio::test]
async fn keys_that_need_url_encoding_migrate() {
    let (store, bucket) = new_bucket("odd-keys").await;
    let registry = registry();
    for key in [
        "day=01/a b+c%d&e=é.parq.snappy",
        "x/ünïcödé (copy) #1.parquet",
        "semi;colon,comma'quote.parquet",
    ] {
        let original = generate_file(&small_spec(), 8);
        store
            .put(
                key,
                original.clone(),
                &[("owner".into(), "a b/c".into())],
                Default::default(),
            )
            .await
            .unwrap();
        let record = migrate_object(&store, &registry, key, &MigrateOptions::new(SCHEMA, 3))
            .await
            .unwrap();
        assert!(matches!(record.outcome, Outcome::Migrated(_)), "{key}: {record:?}");
        let other = other_client(&bucket);
        assert_features_match(&read_all(&original), &read_all(&raw_bytes(&other, key).await));
        let mut tags = other.s3_api().unwrap().get_tags(key).await.unwrap();
        tags.sort();
        assert_eq!(
            tags,
            vec![
                ("owner".to_string(), "a b/c".to_string()),
                (key_version_tag(), "3".to_string())
            ],
            "{key}"
        );
    }
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

    assert_rejected(
        &store,
        "empty.parquet",
        Bytes::new(),
        &[],
        &sensor,
        "0 bytes is too small for a Parquet file",
    )
    .await;

    let noise: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert_rejected(
        &store,
        "noise.parquet",
        Bytes::from(noise),
        &[],
        &sensor,
        "not a readable Parquet file",
    )
    .await;

    let no_y = parquet_of(&[("x", DataType::Float64)]);
    assert_rejected(
        &store,
        "no-y.parquet",
        no_y,
        &[],
        &sensor,
        "cannot migrate schema: input column \"y\" is missing",
    )
    .await;

    let int_y = parquet_of(&[("x", DataType::Float64), ("y", DataType::Int64)]);
    let cause = "cannot migrate schema: input column \"y\" is Int64 but must be float64";
    assert_rejected(&store, "int-y.parquet", int_y, &[], &sensor, cause).await;

    for value in ["0", "-1", "99999999999"] {
        let tag = [(key_version_tag(), value.to_string())];
        let cause = format!("bad version value \"{value}\" in tag");
        assert_rejected(
            &store,
            &format!("bad-tag-{value}.parquet"),
            good.clone(),
            &tag,
            &sensor,
            &cause,
        )
        .await;
    }

    // The footer says 2 (a file pqmigrate wrote) but the tag was set to 3 by hand.
    let registry = registry();
    let chain = registry.chain(SCHEMA, 1, 2).unwrap();
    let footer = pqmigrate::rewrite::Footer::parse("f", &good).unwrap();
    let v2 = pqmigrate::rewrite::rewrite("f", good.clone(), &footer, &chain, &key_version_tag(), 2)
        .unwrap()
        .data;
    let tag3 = [(key_version_tag(), "3".to_string())];
    let cause = "version tag says 3 but the Parquet footer says 2";
    assert_rejected(&store, "disagree.parquet", v2, &tag3, &sensor, cause).await;

    let ten: Vec<(String, String)> = (0..10).map(|i| (format!("team{i}"), "x".to_string())).collect();
    let cause = "writing the version tag would give the object 11 tags; S3 allows 10";
    assert_rejected(&store, "ten-tags.parquet", good.clone(), &ten, &sensor, cause).await;

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

/// A rollback streams each object back through the same conditional upload as a migration
/// (multipart for large ones), keeps the storage class, encryption and tags, refuses an object changed since
/// the run naming it, and is a run of its own that can be repeated.
#[tokio::test]
async fn rollback_streams_keeps_the_class_and_refuses_changed_objects() {
    use pqmigrate::Status;
    use pqmigrate::rollback::{RollbackOptions, rollback_run};
    let options = s3_options()
        .multipart_threshold(5 * 1024 * 1024)
        .part_size(5 * 1024 * 1024);
    let (store, _) = new_bucket_on(&options, "rollback-stream").await;
    let large = pqmigrate_sensor_steps::DataSpec {
        rows: 60_000,
        row_group_rows: 20_000,
        seed: 3,
    };
    let owner = vec![("owner".to_string(), "fleet".to_string())];
    let aes = pqmigrate::store::Encryption {
        algorithm: "AES256".into(),
        kms_key_id: None,
    };
    let mut originals = Vec::new();
    for i in 0..3u64 {
        let key = format!("r/sensorData_{i:03}.parquet");
        let data = generate_file(&large, i);
        let mut attributes = user_metadata(&[("source", "fleet-c")]);
        attributes.insert(Attribute::StorageClass, "STANDARD_IA".into());
        let options = pqmigrate::store::WriteOptions {
            tags: owner.clone(),
            attributes,
            encryption: Some(aes.clone()),
            ..Default::default()
        };
        store.write(&key, data.clone(), options).await.unwrap();
        originals.push((key, data));
    }
    assert!(originals[0].1.len() > 6 * 1024 * 1024, "large enough for parts");
    let report = run_to_3(&store, "r/", 3).await;
    // Another writer changes one object after the run.
    let changed = &originals[2].0;
    let rollback = roll_back_around_a_change(&store, &report, changed, 2).await;
    for (key, data) in &originals[..2] {
        assert_eq!(&raw_bytes(&store, key).await, data, "{key} byte for byte");
        assert_eq!(store.tags(key).await.unwrap().unwrap(), owner);
        let head = store.head(key).await.unwrap();
        assert_eq!(
            head.attributes.get(&Attribute::StorageClass).map(|v| v.as_ref()),
            Some("STANDARD_IA"),
            "{key}"
        );
        assert_eq!(
            head.attributes
                .get(&Attribute::Metadata("source".into()))
                .map(|v| v.as_ref()),
            Some("fleet-c")
        );
        assert_eq!(head.encryption.as_ref(), Some(&aes), "{key}: encrypted as before");
        assert_eq!(
            head.attributes
                .get(&Attribute::Metadata("pqm-run".into()))
                .map(|v| v.as_ref()),
            Some(rollback.info.run_id.as_str()),
            "the restore names the rollback"
        );
    }
    let open = store.s3_api().unwrap().open_multipart_uploads("r/").await.unwrap();
    assert!(open.is_empty(), "{open:?}");
    // The rollback's journal: listed, finished, a record per object.
    let journal = pqmigrate::journal::read_run(&store, "_pqmigrate/runs/", &rollback.info.run_id)
        .await
        .unwrap();
    assert_eq!(journal.records.len(), 3);
    assert_eq!(journal.intents.len(), 2, "an intent before each restore");
    assert_eq!(journal.summary.unwrap(), rollback.summary);
    // Again: the two restored are already restored, the changed one still refused.
    let again = rollback_run(
        &store,
        "_pqmigrate/runs/",
        &report.info.run_id,
        &RollbackOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(again.summary.count(Status::AtTarget), 2, "{:?}", again.summary);
    assert_eq!(again.summary.count(Status::Failed), 1);
}

/// Sleeps once, at the first part uploaded or copied: an upload that cannot finish before a
/// deadline.
#[derive(Debug, Default)]
struct SlowPart {
    slept: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl pqmigrate::store::Hook for SlowPart {
    async fn before(
        &self,
        request: pqmigrate::store::Request,
        _key: &str,
        _conditional: bool,
        _inner: &pqmigrate::store::SharedIo,
    ) -> pqmigrate::Result<()> {
        if matches!(
            request,
            pqmigrate::store::Request::UploadPart | pqmigrate::store::Request::UploadPartCopy
        ) && !self.slept.swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tokio::time::sleep(std::time::Duration::from_secs(4)).await;
        }
        Ok(())
    }
}

/// A rewrite that cannot finish before its deadline (a Lambda invocation's) is abandoned in
/// time: the multipart upload it started is aborted before it returns a retryable timeout, the
/// object is unchanged, and the next attempt completes.
#[tokio::test]
async fn a_rewrite_past_its_deadline_aborts_its_upload_and_returns_retryable() {
    let options = s3_options()
        .multipart_threshold(5 * 1024 * 1024)
        .part_size(5 * 1024 * 1024);
    let (store, _) = new_bucket_on(&options, "deadline").await;
    let key = "big/sensorData_000.parquet";
    let spec = pqmigrate_sensor_steps::DataSpec {
        rows: 60_000,
        row_group_rows: 20_000,
        seed: 5,
    };
    let original = generate_file(&spec, 5);
    store.put(key, original.clone(), &[], Default::default()).await.unwrap();
    let slow = Arc::new(SlowPart::default());
    let slowed = store.clone().with_hook(slow.clone());
    let mut migrate = MigrateOptions::new(SCHEMA, 3);
    let started = std::time::Instant::now();
    migrate.deadline = Some(tokio::time::Instant::now() + std::time::Duration::from_secs(2));
    let err = migrate_object(&slowed, &registry(), key, &migrate).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }) && err.is_retryable(), "{err}");
    assert!(
        slow.slept.load(std::sync::atomic::Ordering::Relaxed),
        "a part upload had started"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let open = store.s3_api().unwrap().open_multipart_uploads("big/").await.unwrap();
    assert!(open.is_empty(), "aborted before returning: {open:?}");
    assert_eq!(raw_bytes(&store, key).await, original);
    let (from, done) = migrate_done(&store, key, SCHEMA, 3).await;
    assert_eq!((from, done.to), (1, 3));
}

/// On a versioned bucket too: two runs (1->2, then 2->3) undone newest first leave every object
/// as it was, byte for byte.
#[tokio::test]
async fn runs_on_s3_are_undone_newest_first() {
    let (store, _) = new_bucket("newest-first").await;
    undo_newest_first(&store, "n/").await;
}
