//! Large outputs stream out as multipart uploads whose completion is conditional: the same
//! guarantees as a single PUT (data, version tag and metadata together or not at all; a changed
//! object never overwritten; nothing left behind on failure), with memory bounded by a part.

mod support;

use pqmigrate::store::user_metadata;
use pqmigrate::transfer::ConditionalUpload;
use pqmigrate::{Error, Store, StoreOptions, version_key};
use pqmigrate_sensor_steps::{DataSpec, SCHEMA, generate_file};
use support::*;

/// A file of about 15 MB: three 5 MiB parts.
fn large() -> DataSpec {
    DataSpec {
        rows: 40_000,
        row_group_rows: 10_000,
        seed: 77,
    }
}

/// The bucket's store, uploading in parts above 1 MiB.
fn multipart_store(bucket: &str, endpoint: String) -> Store {
    Store::s3(
        bucket,
        &StoreOptions::default()
            .endpoint(endpoint)
            .max_retries(1)
            .multipart_threshold(1024 * 1024)
            .part_size(5 * 1024 * 1024),
    )
    .unwrap()
}

#[tokio::test]
async fn a_large_file_migrates_through_a_conditional_multipart_upload() {
    let (plain, bucket) = new_bucket("multipart").await;
    let key = "big/sensorData_000.parq.snappy";
    let original = generate_file(&large(), 0);
    assert!(original.len() > 12 * 1024 * 1024, "{} bytes", original.len());
    let before = plain
        .put(
            key,
            original.clone(),
            &[("owner".into(), "ml".into())],
            user_metadata(&[("source", "fleet-b")]),
        )
        .await
        .unwrap();

    let store = multipart_store(&bucket, s3_endpoint());
    let (from, done) = migrate_done(&store, key, SCHEMA, 3).await;
    assert_eq!((from, done.to, done.rows), (1, 3, 40_000));
    assert_eq!(done.old_version_id, before.version_id);

    let migrated = raw_bytes(&plain, key).await;
    assert_eq!(migrated.len() as u64, done.bytes_out);
    assert_features_match(&read_all(&original), &read_all(&migrated));
    assert_eq!(footer_version(&migrated, &version_key(SCHEMA)), Some(3));
    let api = plain.s3_api().unwrap();
    let mut tags = api.get_tags(key).await.unwrap();
    tags.sort();
    assert_eq!(
        tags,
        vec![
            ("owner".to_string(), "ml".to_string()),
            (version_key(SCHEMA), "3".to_string())
        ]
    );
    let head = plain.head(key).await.unwrap();
    assert_eq!(head.e_tag, done.new_e_tag);
    assert_eq!(head.version_id, done.new_version_id);
    assert_eq!(
        head.attributes
            .get(&object_store::Attribute::Metadata("source".into()))
            .map(|v| v.as_ref()),
        Some("fleet-b")
    );
    assert_eq!(api.list_versions(key).await.unwrap().len(), 2, "one write");
    assert!(api.open_multipart_uploads("big/").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_multipart_upload_never_overwrites_a_changed_object() {
    let (store, bucket) = new_bucket("multipart-race").await;
    let key = "race.parquet";
    store
        .put(key, generate_file(&small_spec(), 1), &[], Default::default())
        .await
        .unwrap();
    let info = store.object_info(key).await.unwrap();

    let store = multipart_store(&bucket, s3_endpoint());
    let mut upload = ConditionalUpload::new(&store, &info, &[(version_key(SCHEMA), "2".into())]).unwrap();
    upload
        .push(bytes::Bytes::from(vec![7u8; 6 * 1024 * 1024]))
        .await
        .unwrap();
    // Another writer replaces the object after the parts went out, before completion.
    let theirs = generate_file(&small_spec(), 2);
    store.put(key, theirs.clone(), &[], Default::default()).await.unwrap();
    let err = upload.finish().await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert!(err.is_retryable());

    assert_eq!(raw_bytes(&store, key).await, theirs);
    let api = store.s3_api().unwrap();
    assert!(
        api.open_multipart_uploads("").await.unwrap().is_empty(),
        "the upload was aborted"
    );
}

#[tokio::test]
async fn a_part_cut_midway_aborts_the_upload_and_leaves_the_original() {
    let (plain, bucket) = new_bucket("multipart-cut").await;
    let key = "cut/sensorData_001.parq.snappy";
    let original = generate_file(&large(), 1);
    let before = plain.put(key, original.clone(), &[], Default::default()).await.unwrap();

    let proxy = cutting_proxy(&s3_endpoint(), 2 * 1024 * 1024).await;
    // Streamed whole, so the parts sent are large enough to be cut.
    let store = multipart_store(&bucket, proxy).without_copied_parts();
    let err = migrate_object_err(&store, key).await;
    assert!(err.to_string().starts_with(key), "{err}");
    assert!(err.is_retryable(), "{err}");

    let head = plain.head(key).await.unwrap();
    assert_eq!((head.e_tag, head.version_id), (before.e_tag, before.version_id));
    assert_eq!(raw_bytes(&plain, key).await, original);
    assert!(plain.s3_api().unwrap().get_tags(key).await.unwrap().is_empty());
    // No upload is left open: the failed one was aborted.
    let api = plain.s3_api().unwrap();
    let mut open = api.open_multipart_uploads("cut/").await.unwrap();
    for _ in 0..20 {
        if open.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        open = api.open_multipart_uploads("cut/").await.unwrap();
    }
    assert!(open.is_empty(), "uploads left open: {open:?}");
}

async fn migrate_object_err(store: &Store, key: &str) -> Error {
    let registry = pqmigrate::Registry::from_inventory().unwrap();
    pqmigrate::migrate_object(store, &registry, key, &pqmigrate::MigrateOptions::new(SCHEMA, 3))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn local_disk_streams_through_a_staged_file() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions::default()
        .multipart_threshold(1024 * 1024)
        .part_size(5 * 1024 * 1024);
    let store = Store::local(dir.path()).unwrap().with_upload_sizes(&options);
    let key = "d/sensorData_002.parquet";
    let original = generate_file(&large(), 2);
    store.put(key, original.clone(), &[], Default::default()).await.unwrap();
    let (_, done) = migrate_done(&store, key, SCHEMA, 3).await;
    let migrated = raw_bytes(&store, key).await;
    assert_eq!(migrated.len() as u64, done.bytes_out);
    assert_features_match(&read_all(&original), &read_all(&migrated));
    let staging = dir.path().join("_pqmigrate").join("staging");
    let left: Vec<_> = walk(&staging);
    assert!(left.is_empty(), "staging files left behind: {left:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            if e.path().is_dir() {
                walk(&e.path())
            } else {
                vec![e.path()]
            }
        })
        .collect()
}

/// Every request kind of a listing and of a multipart upload passes through both decorators of
/// the seam: the rate limiter counts them, and the fault injector both counts them and throttles
/// some of them, which the store retries request by request.
#[tokio::test]
async fn listings_and_multipart_calls_pass_the_rate_limiter_and_the_fault_injector() {
    use pqmigrate::store::{RateLimit, RateLimiter, Request};
    use pqmigrate::test_support::fault::FaultConfig;
    use std::sync::Arc;

    let (plain, bucket) = new_bucket("seam").await;
    for i in 0..25 {
        let key = format!("listed/{i:02}.parquet");
        plain
            .put(&key, bytes::Bytes::from_static(b"x"), &[], Default::default())
            .await
            .unwrap();
    }
    let key = "listed/big.parquet";
    plain
        .put(key, generate_file(&small_spec(), 4), &[], Default::default())
        .await
        .unwrap();

    let limit = Arc::new(RateLimit::new(Arc::new(RateLimiter::new(1_000.0))));
    let faults = FaultConfig {
        seed: 11,
        throttle: 0.3,
        ..FaultConfig::default()
    };
    let (store, injector) = multipart_store(&bucket, s3_endpoint())
        .with_hook(limit.clone())
        .with_faults(faults);

    let listed: Vec<_> = futures::StreamExt::collect::<Vec<_>>(store.list_prefix("listed/", Some(10))).await;
    assert_eq!(listed.len(), 26, "every page followed despite the faults");
    assert!(listed.iter().all(Result::is_ok));

    let info = store.object_info(key).await.unwrap();
    let mut upload = ConditionalUpload::new(&store, &info, &[(version_key(SCHEMA), "2".into())]).unwrap();
    let payload = vec![9u8; 11 * 1024 * 1024];
    for chunk in payload.chunks(1024 * 1024) {
        upload.push(bytes::Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    upload.finish().await.unwrap();
    assert_eq!(raw_bytes(&plain, key).await.len(), payload.len());

    let (limited, seen, injected) = (limit.counts(), injector.counts(), injector.injected_counts());
    for request in [
        Request::List,
        Request::Head,
        Request::GetTags,
        Request::CreateMultipart,
        Request::UploadPart,
        Request::CompleteMultipart,
    ] {
        assert!(limited.get(request) > 0, "the limiter saw no {request:?}");
        // The injector wraps the limiter: it sees every request, and the ones it failed never
        // reached the limiter.
        assert_eq!(
            seen.get(request),
            limited.get(request) + injected.get(request),
            "{request:?}"
        );
    }
    assert_eq!(limited.get(Request::List), 3, "three pages of ten");
    assert_eq!(limited.get(Request::CompleteMultipart), 1);
    assert!(
        injected.get(Request::List) > 0,
        "a listing page was throttled and retried"
    );
    let multipart = injected.get(Request::CreateMultipart) + injected.get(Request::UploadPart);
    assert!(multipart > 0, "a multipart call was throttled and retried");
    assert_eq!(store.request_retries(), injector.injected());
    assert!(
        plain
            .s3_api()
            .unwrap()
            .open_multipart_uploads("listed/")
            .await
            .unwrap()
            .is_empty()
    );
}
