//! Moving only the bytes that change, on SeaweedFS and on local disk: the input's data region is
//! copied in place (S3 `UploadPartCopy` pinned to the ETag and version read; `copy_file_range`
//! on local disk), only the read columns come down, and only the computed chunks and the new
//! footer go up. Counted by the engine and, on S3, by a byte-counting proxy in front of the
//! server. A server without copied parts, a source changed before its copy, and damage in the
//! copied region each end as they must.

mod support;

use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use pqmigrate::rewrite::{Footer, rewrite};
use pqmigrate::store::Request;
use pqmigrate::{Error, MigrateOptions, Migrated, Outcome, Registry, Store, WritePath, migrate_object, version_key};
use pqmigrate_sensor_steps::{DataSpec, SCHEMA, generate_file};
use support::*;

/// About 37 MB, four row groups: a data region well above a 5 MiB part.
fn spec() -> DataSpec {
    DataSpec {
        rows: 100_000,
        row_group_rows: 25_000,
        seed: 21,
    }
}

async fn migrate(store: &Store, key: &str, verify: bool) -> pqmigrate::Result<Migrated> {
    let registry = Registry::from_inventory().unwrap();
    let mut options = MigrateOptions::new(SCHEMA, 3);
    options.verify_copied = verify;
    let record = migrate_object(store, &registry, key, &options).await?;
    match record.outcome {
        Outcome::Migrated(done) => Ok(*done),
        other => panic!("{key}: expected migrated, got {other:?}"),
    }
}

/// The footer, and the chunks of the columns the sensor steps read (x, y, device_id; the
/// renamed sensor_type is not read): what a trusting append must download at most.
fn needed_bytes(data: &Bytes) -> (u64, u64) {
    let footer = Footer::parse("f", data).unwrap();
    let start = footer.footer_start().unwrap();
    let meta = parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(data)
        .unwrap();
    let read: u64 = meta
        .row_groups()
        .iter()
        .flat_map(|rg| rg.columns())
        .filter(|c| ["x", "y", "device_id"].contains(&c.column_path().string().as_str()))
        .map(|c| c.byte_range().1)
        .sum();
    (data.len() as u64 - start, read)
}

fn expected_output(original: &Bytes) -> Bytes {
    let footer = Footer::parse("f", original).unwrap();
    let chain = Registry::from_inventory().unwrap().chain(SCHEMA, 1, 3).unwrap();
    rewrite("f", original.clone(), &footer, &chain, &version_key(SCHEMA), 3)
        .unwrap()
        .data
}

#[tokio::test]
async fn a_trusting_append_on_s3_moves_only_the_read_columns_and_the_new_bytes() {
    let (plain, bucket) = new_bucket("append-trust").await;
    let key = "a/sensorData_000.parquet";
    let original = generate_file(&spec(), 1);
    let before = plain
        .put(
            key,
            original.clone(),
            &[("team".to_string(), "ml".to_string())],
            Default::default(),
        )
        .await
        .unwrap();
    let (endpoint, counts) = http_proxy(&s3_endpoint(), ProxyMode::Count).await;
    let store = Store::s3(&bucket, &s3_options().endpoint(endpoint)).unwrap();
    let (up0, down0) = (counts.up.load(Relaxed), counts.down.load(Relaxed));
    let done = migrate(&store, key, false).await.unwrap();
    let (up, down) = (counts.up.load(Relaxed) - up0, counts.down.load(Relaxed) - down0);

    let migrated = raw_bytes(&plain, key).await;
    let region = Footer::parse("f", &original).unwrap().footer_start().unwrap() as usize;
    assert_eq!(done.path, WritePath::Appended, "{done:?}");
    assert_eq!(done.copied, region as u64);
    assert_eq!(
        &migrated[..region],
        &original[..region],
        "the data region is copied as it was"
    );
    assert_eq!(done.sent, (migrated.len() - region) as u64, "only the tail is sent");
    assert_eq!(done.bytes_out, migrated.len() as u64);

    // Received: the footer (one 64 KiB read at most) and the read columns' chunks.
    let (footer, read) = needed_bytes(&original);
    let allowance = 64 * 1024;
    assert!(
        done.received as f64 <= 1.1 * (footer + read) as f64 + allowance as f64,
        "received {} for a footer of {footer} and read chunks of {read}",
        done.received
    );
    assert!(done.received < original.len() as u64 / 5, "{}", done.received);
    // The wire agrees, requests' own heads and the journal-free calls included.
    assert!(
        down < done.received + 256 * 1024,
        "the proxy saw {down} bytes come down"
    );
    assert!(up < done.sent + 256 * 1024, "the proxy saw {up} bytes go up");

    // The values are the full rewrite's; version, tags and metadata as on any migration.
    assert_eq!(read_all(&migrated), read_all(&expected_output(&original)));
    assert_eq!(footer_version(&migrated, &version_key(SCHEMA)), Some(3));
    let tags = plain.tags(key).await.unwrap().unwrap();
    assert!(tags.contains(&(version_key(SCHEMA), "3".to_string())), "{tags:?}");
    assert!(tags.contains(&("team".to_string(), "ml".to_string())), "{tags:?}");
    // The version read is kept beside the new one: rollback's source.
    let old = version_bytes(&plain, key, before.version_id.as_deref().unwrap()).await;
    assert_eq!(old, original);
    assert!(
        plain
            .s3_api()
            .unwrap()
            .open_multipart_uploads("a/")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_checked_append_reads_the_region_but_sends_only_the_new_bytes() {
    let (store, _) = new_bucket("append-checked").await;
    let key = "b/sensorData_000.parquet";
    let original = generate_file(&spec(), 2);
    store.put(key, original.clone(), &[], Default::default()).await.unwrap();
    let done = migrate(&store, key, true).await.unwrap();
    let migrated = raw_bytes(&store, key).await;
    let region = Footer::parse("f", &original).unwrap().footer_start().unwrap();
    assert_eq!(done.path, WritePath::Appended);
    assert!(
        done.received >= region,
        "every copied page is checked: {}",
        done.received
    );
    assert_eq!(done.sent + done.copied, migrated.len() as u64);
    assert!(done.sent < original.len() as u64 / 5, "{}", done.sent);
    assert_eq!(read_all(&migrated), read_all(&expected_output(&original)));
}

/// Damage in a column no step reads: the checked append refuses it (nothing is written); the
/// trusting one carries it into the new version, as `--trust-copied-columns` says.
#[tokio::test]
async fn damage_in_the_copied_region_is_refused_by_the_checked_append() {
    let (store, _) = new_bucket("append-damage").await;
    let key = "c/sensorData_000.parquet";
    let original = generate_file(&spec(), 3);
    let meta = parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(&original)
        .unwrap();
    let (start, len) = meta
        .row_group(1)
        .columns()
        .iter()
        .find(|c| c.column_path().string() == "v07")
        .unwrap()
        .byte_range();
    let mut damaged = original.to_vec();
    for b in &mut damaged[(start + len / 3) as usize..(start + len / 3 + 64) as usize] {
        *b ^= 0x5a;
    }
    let damaged = Bytes::from(damaged);
    let put = store.put(key, damaged.clone(), &[], Default::default()).await.unwrap();
    let err = migrate(&store, key, true).await.unwrap_err();
    assert!(matches!(err, Error::NotParquet { .. }), "{err}");
    assert!(
        err.to_string().starts_with(key) && err.to_string().contains("row group 1"),
        "{err}"
    );
    let head = store.head(key).await.unwrap();
    assert_eq!(head.e_tag, put.e_tag, "nothing was written");
    assert!(
        store
            .s3_api()
            .unwrap()
            .open_multipart_uploads("c/")
            .await
            .unwrap()
            .is_empty()
    );
}

/// A server without `UploadPartCopy`: the first object finds out and is streamed whole, and so
/// is every later one, without asking again.
#[tokio::test]
async fn a_server_without_copied_parts_gets_whole_files_streamed() {
    let (plain, bucket) = new_bucket("append-refused").await;
    let originals: Vec<Bytes> = (0..2).map(|i| generate_file(&spec(), 10 + i)).collect();
    for (i, data) in originals.iter().enumerate() {
        plain
            .put(
                &format!("d/sensorData_{i:03}.parquet"),
                data.clone(),
                &[],
                Default::default(),
            )
            .await
            .unwrap();
    }
    let (endpoint, counts) = http_proxy(&s3_endpoint(), ProxyMode::RefuseCopies).await;
    let store = Store::s3(&bucket, &s3_options().endpoint(endpoint)).unwrap();
    let first = migrate(&store, "d/sensorData_000.parquet", false).await.unwrap();
    assert_eq!(first.path, WritePath::Streamed);
    let because = first.streamed_because.clone().unwrap();
    assert!(
        because.contains("refused a copied part") && because.contains("NotImplemented"),
        "{because}"
    );
    let asked = counts.refused.load(Relaxed);
    // The region's parts were asked for at once; a refusal (501) is not retried.
    assert!((1..=2).contains(&asked), "{asked} copied parts asked for");
    let second = migrate(&store, "d/sensorData_001.parquet", false).await.unwrap();
    assert_eq!(second.path, WritePath::Streamed);
    assert_eq!(second.streamed_because.as_deref(), Some("the store copies no parts"));
    assert_eq!(counts.refused.load(Relaxed), asked, "not asked again");
    for (i, data) in originals.iter().enumerate() {
        let key = format!("d/sensorData_{i:03}.parquet");
        assert!(matches!(
            check_object(&plain, &key, std::slice::from_ref(data), 3).await,
            Found::Migrated { version: 3 }
        ));
    }
    assert!(
        plain
            .s3_api()
            .unwrap()
            .open_multipart_uploads("d/")
            .await
            .unwrap()
            .is_empty()
    );
}

/// Another writer replaces the object just before its region is copied: the copy is pinned to
/// the ETag read, so it fails as a conflict (retryable), nothing of ours is written, and the
/// upload is aborted.
#[tokio::test]
async fn a_source_replaced_before_its_copy_is_a_conflict() {
    let (plain, _) = new_bucket("append-race").await;
    let key = "e/sensorData_000.parquet";
    let original = generate_file(&spec(), 4);
    let theirs = generate_file(&small_spec(), 5);
    plain.put(key, original.clone(), &[], Default::default()).await.unwrap();
    let replacement = theirs.clone();
    let writer = OtherWriter::new(
        Request::UploadPartCopy,
        false,
        std::sync::Arc::new(move |io, key| {
            let data = replacement.clone();
            Box::pin(async move { io.put(&key, data.into(), Default::default()).await.map(|_| ()) })
        }),
    );
    let store = plain.clone().with_hook(writer);
    let err = migrate(&store, key, false).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }) && err.is_retryable(), "{err}");
    assert_eq!(raw_bytes(&plain, key).await, theirs);
    assert!(
        plain
            .s3_api()
            .unwrap()
            .open_multipart_uploads("e/")
            .await
            .unwrap()
            .is_empty()
    );
}

/// Local disk: the data region is copied by the kernel into the staged file, the new bytes
/// appended, and the file renamed into place.
#[tokio::test]
async fn local_disk_copies_the_region_in_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::local(dir.path()).unwrap();
    let key = "f/sensorData_000.parquet";
    let original = generate_file(&spec(), 6);
    store.put(key, original.clone(), &[], Default::default()).await.unwrap();
    let done = migrate(&store, key, false).await.unwrap();
    let migrated = Bytes::from(std::fs::read(dir.path().join(key)).unwrap());
    let region = Footer::parse("f", &original).unwrap().footer_start().unwrap() as usize;
    assert_eq!(done.path, WritePath::Appended, "{done:?}");
    assert_eq!(&migrated[..region], &original[..region]);
    assert_eq!(done.sent, (migrated.len() - region) as u64);
    assert_eq!(read_all(&migrated), read_all(&expected_output(&original)));
    let staging = dir.path().join("_pqmigrate").join("staging");
    let left: Vec<_> = std::fs::read_dir(&staging)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.iter().all(|p| p.is_dir()), "staging files left behind: {left:?}");
}
