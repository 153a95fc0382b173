//! Azure Blob (Azurite) and Google Cloud Storage (gcp-storage-emulator) beside S3: what the
//! capability probe finds on each, a whole CLI run on Azure over a data set with objects at
//! every version, metadata to keep, corrupt objects and distractors, and a file several times
//! larger than the run's memory migrated on Azure in blocks, its data region copied by the
//! service.

mod support;

use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use pqmigrate::store::{CopySource, metadata};
use pqmigrate::transfer::ConditionalUpload;
use pqmigrate::{Error, MigrateOptions, Store, migrate_object, version_key};
use pqmigrate_sensor_steps::{DataSpec, SCHEMA, generate_batch, generate_file};
use support::*;

#[tokio::test]
async fn the_probe_finds_azures_conditional_writes_and_commits_metadata_and_index_tags() {
    let (store, _) = Cloud::Azure.new_store("probe");
    let found = pqmigrate::test_support::probe(&store).await.unwrap();
    assert!(found.conditional_create, "{found:?}");
    assert!(found.conditional_put, "{found:?}");
    assert_eq!(found.metadata_round_trips, Some(true), "{found:?}");
    assert_eq!(found.tags_round_trip, Some(true), "blob index tags: {found:?}");
    assert_eq!(
        found.conditional_complete,
        Some(true),
        "a block list committed under a stale If-Match is refused"
    );
    assert!(!found.versioning, "no listable versions here");
    assert!(found.refusal().is_none());
}

/// With tagging turned off in the client (`AZURE_DISABLE_TAGGING`), tags sent with a blob never
/// arrive: the probe finds it, and the run is refused, naming the guarantee, before it writes.
#[tokio::test]
async fn an_azure_client_that_drops_tags_is_refused_before_anything_is_written() {
    use futures::TryStreamExt;
    let (store, url) = Cloud::Azure.new_store("notags");
    let key = "sensors/sensorData_000.parquet";
    let data = generate_file(&small_spec(), 7);
    put(&store, key, &data, None).await;
    let out = cli(
        &["run", &url, "--schema", SCHEMA, "--to", "3", "--json"],
        &[("AZURE_DISABLE_TAGGING", "true")],
    );
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("did not read back"), "{}", out.stderr);
    assert_eq!(raw_bytes(&store, key).await, data, "the object is untouched");
    let keys: Vec<String> = store
        .list_prefix("", None)
        .map_ok(|listed| listed.key)
        .try_collect()
        .await
        .unwrap();
    assert!(
        keys.iter().all(|k| k == key || k.starts_with("_pqmigrate/probe/")),
        "no lease, journal or data written: {keys:?}"
    );
    // The same store with tags on passes the probe.
    assert!(pqmigrate::transfer::checked(store.clone()).await.is_ok());
}

/// gcp-storage-emulator stores object_store's XML-API writes but answers them without an ETag
/// or a generation, and ignores `x-goog-if-generation-match`: no conditional write can be made
/// there, so the probe must refuse the store before a run writes anything.
#[tokio::test]
async fn a_gcs_emulator_without_generations_is_refused_before_anything_is_written() {
    let (store, url) = Cloud::Gcs.new_store("probe");
    let err = pqmigrate::transfer::checked(store.clone()).await.unwrap_err();
    assert!(err.report().contains("ETag Header missing"), "{}", err.report());

    let out = cli(&["run", &url, "--schema", SCHEMA, "--to", "3", "--json"], &[]);
    assert_ne!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("ETag Header missing"), "{}", out.stderr);
    // The emulator lists through its JSON API only.
    let bucket = url.trim_start_matches("gs://").trim_end_matches('/');
    let listed = std::process::Command::new("python3")
        .args([
            concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cloud_bucket.py"),
            "gcs-list",
            bucket,
        ])
        .output()
        .unwrap();
    assert!(listed.status.success());
    // The emulator serves no XML-API DELETE either, so each probe's scratch object stays; no
    // lease, journal or data was written.
    let left = String::from_utf8_lossy(&listed.stdout);
    let left: Vec<&str> = left.lines().collect();
    assert_eq!(left.len(), 2, "one probe object a refusal: {left:?}");
    assert!(left.iter().all(|k| k.starts_with("_pqmigrate/probe/")), "{left:?}");
}

fn file_at_footer_version(seed: u64, version: &str) -> Bytes {
    let batch = generate_batch(&small_spec(), seed, 200);
    let mut file = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.append_key_value_metadata(KeyValue::new(version_key(SCHEMA), version.to_string()));
    writer.close().unwrap();
    Bytes::from(file)
}

async fn put(store: &Store, key: &str, data: &Bytes, owner: Option<&str>) {
    put_tagged(store, key, data, owner, &[]).await;
}

async fn put_tagged(store: &Store, key: &str, data: &Bytes, owner: Option<&str>, tags: &[(String, String)]) {
    let attributes = match owner {
        Some(owner) => pqmigrate::store::user_metadata(&[("owner", owner)]),
        None => Default::default(),
    };
    store.put(key, data.clone(), tags, attributes).await.unwrap();
}

#[tokio::test]
async fn a_run_on_azure_migrates_every_version_keeps_metadata_and_reports_bad_objects() {
    let (store, url) = Cloud::Azure.new_store("run");
    let team = ("team".to_string(), "ml".to_string());
    let mut v1 = Vec::new();
    for i in 0..6 {
        let key = format!("sensors/sensorData_{i:03}.parquet");
        let data = generate_file(&small_spec(), i);
        // Every third has an index tag of the user's own, and one says version 1 outright.
        let mut tags = Vec::new();
        if i % 3 == 0 {
            tags.push(team.clone());
        }
        if i == 1 {
            tags.push((version_key(SCHEMA), "1".to_string()));
        }
        put_tagged(&store, &key, &data, (i % 2 == 0).then_some("team-a"), &tags).await;
        v1.push((key, data));
    }
    // One object already at 2, one at the target, one ahead of it.
    let at_two = "sensors/sensorData_100.parquet";
    let two_source = generate_file(&small_spec(), 100);
    put(&store, at_two, &two_source, None).await;
    migrate_object(&store, &registry(), at_two, &MigrateOptions::new(SCHEMA, 2))
        .await
        .unwrap();
    let at_three = "sensors/sensorData_101.parquet";
    // Written elsewhere at 3 and 4, tag and footer agreeing (a missing tag means version 1).
    let tagged = |v: &str| vec![(version_key(SCHEMA), v.to_string())];
    put_tagged(&store, at_three, &file_at_footer_version(101, "3"), None, &tagged("3")).await;
    let ahead = "sensors/sensorData_102.parquet";
    let ahead_bytes = file_at_footer_version(102, "4");
    put_tagged(&store, ahead, &ahead_bytes, None, &tagged("4")).await;
    // Bad objects and distractors.
    let corrupt = "sensors/sensorData_200.parquet";
    let full = generate_file(&small_spec(), 200);
    let corrupt_bytes = full.slice(..full.len() / 2);
    put(&store, corrupt, &corrupt_bytes, None).await;
    let not_parquet = "sensors/sensorData_201.parquet";
    let text = Bytes::from_static(b"timestamp,x\n1,2\n");
    put(&store, not_parquet, &text, None).await;
    let distractor = "sensors/readme.txt";
    put(&store, distractor, &text, None).await;

    let run = cli(
        &[
            "run", &url, "--schema", SCHEMA, "--to", "3", "--suffix", ".parquet", "--json",
        ],
        &[],
    );
    assert_eq!(run.code, 1, "objects need attention: {}\n{}", run.stdout, run.stderr);
    let summary = json(&run);
    assert_eq!(summary["by_status"]["migrated"], 7, "{summary}");
    assert_eq!(summary["by_status"]["at_target"], 1, "{summary}");
    assert_eq!(summary["by_status"]["failed"], 2, "{summary}");
    assert_eq!(summary["by_status"]["ahead_of_target"], 1, "{summary}");
    let failed: Vec<String> = summary["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.to_string())
        .collect();
    assert!(failed.iter().any(|f| f.contains(corrupt)), "{failed:?}");
    assert!(failed.iter().any(|f| f.contains(not_parquet)), "{failed:?}");

    let run_id = summary["run_id"].as_str().unwrap().to_string();
    for (i, (key, original)) in v1.iter().enumerate() {
        let data = raw_bytes(&store, key).await;
        assert_eq!(footer_version(&data, &version_key(SCHEMA)), Some(3), "{key}");
        assert_features_match(&read_all(original), &read_all(&data));
        // The version is an index tag now, written with the blob; the user's tag came along.
        let tags = store.tags(key).await.unwrap().expect("Azure has index tags");
        assert!(
            tags.contains(&(version_key(SCHEMA), "3".to_string())),
            "{key}: {tags:?}"
        );
        assert_eq!(tags.contains(&team), i % 3 == 0, "{key}: {tags:?}");
        assert_eq!(tags.len(), 1 + usize::from(i % 3 == 0), "{key}: {tags:?}");
        let head = store.head(key).await.unwrap();
        assert_eq!(metadata(&head.attributes, "pqm-run"), Some(run_id.as_str()), "{key}");
        let owner = (i % 2 == 0).then_some("team-a");
        assert_eq!(
            metadata(&head.attributes, "owner"),
            owner,
            "{key}: the user's metadata is kept"
        );
    }
    let from_two = raw_bytes(&store, at_two).await;
    assert_eq!(footer_version(&from_two, &version_key(SCHEMA)), Some(3));
    assert_eq!(
        store.tags(at_two).await.unwrap().unwrap(),
        vec![(version_key(SCHEMA), "3".to_string())]
    );
    assert_eq!(
        store.tags(ahead).await.unwrap().unwrap(),
        tagged("4"),
        "ahead of the target: its tag untouched"
    );
    assert_features_match(&read_all(&two_source), &read_all(&from_two));
    assert_eq!(
        raw_bytes(&store, ahead).await,
        ahead_bytes,
        "ahead of the target: untouched"
    );
    assert_eq!(raw_bytes(&store, corrupt).await, corrupt_bytes, "corrupt: untouched");
    assert_eq!(raw_bytes(&store, not_parquet).await, text);
    assert_eq!(raw_bytes(&store, distractor).await, text);

    // A re-run takes only what is left; status sees the run; rollback is refused, clearly.
    let again = cli(
        &[
            "run", &url, "--schema", SCHEMA, "--to", "3", "--suffix", ".parquet", "--json",
        ],
        &[],
    );
    let again = json(&again);
    assert_eq!(again["by_status"]["migrated"], serde_json::Value::Null, "{again}");
    assert_eq!(again["by_status"]["at_target"], 8, "{again}");
    let status = cli(&["status", &url, "--json"], &[]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(status.stdout.contains(&run_id), "{}", status.stdout);
    let rollback = cli(&["rollback", &url, &run_id], &[]);
    assert_ne!(rollback.code, 0);
    assert!(
        rollback.stderr.contains("keeps no previous versions"),
        "{}",
        rollback.stderr
    );
    assert_eq!(
        footer_version(&raw_bytes(&store, &v1[0].0).await, &version_key(SCHEMA)),
        Some(3)
    );
}

/// The most memory a run on Azure may take, whatever the size of the file: the file below is
/// more than three times as large.
const MEMORY_BOUND: u64 = 96 * 1024 * 1024;

#[test]
fn a_file_larger_than_the_memory_bound_migrates_on_azure_in_blocks_copied_in_place() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, url) = Cloud::Azure.new_store("large");
    let key = "sensors/sensorData_large.parquet";
    let spec = DataSpec {
        rows: 1_000_000,
        row_group_rows: 50_000,
        seed: 5,
    };
    let original = generate_file(&spec, 0);
    let size = original.len() as u64;
    assert!(size > 3 * MEMORY_BOUND, "{size}");
    rt.block_on(put(&store, key, &original, Some("team-a")));

    let run = cli(&["run", &url, "--schema", SCHEMA, "--to", "2", "--json"], &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let summary = json(&run);
    assert_eq!(summary["by_status"]["migrated"], 1, "{summary}");
    assert_eq!(summary["appended"], 1, "{summary}");
    let copied = summary["copied"].as_u64().unwrap();
    let sent = summary["sent"].as_u64().unwrap();
    // The data region stayed in the service (Put Block From URL); what went up is the new
    // columns and the footer.
    assert!(copied > size * 9 / 10, "copied {copied} of {size}: {summary}");
    assert!(sent < size / 4, "sent {sent} of {size}: {summary}");
    let peak = summary["peak_rss_bytes"].as_u64().expect("peak memory reported");
    println!(
        "{} MB file on Azurite: peak memory {} MB, copied {} MB, sent {} MB",
        size >> 20,
        peak >> 20,
        copied >> 20,
        sent >> 20
    );
    assert!(
        peak < MEMORY_BOUND,
        "peak memory {} MB for a {} MB file",
        peak >> 20,
        size >> 20
    );

    let migrated = rt.block_on(raw_bytes(&store, key));
    assert_eq!(&migrated[..copied as usize], &original[..copied as usize]);
    assert_eq!(footer_version(&migrated, &version_key(SCHEMA)), Some(2));
    assert_features_match(&read_all(&original), &read_all(&migrated));
    rt.block_on(async {
        let tags = store.tags(key).await.unwrap().unwrap();
        assert_eq!(tags, vec![(version_key(SCHEMA), "2".to_string())]);
        let head = store.head(key).await.unwrap();
        assert_eq!(metadata(&head.attributes, "owner"), Some("team-a"));
        assert_eq!(head.size, migrated.len() as u64);
    });
}

/// A block copied from a blob that changed since it was read is refused (the copy is pinned
/// to the ETag read), and so is a commit over a blob that changed after its blocks were staged:
/// the blob keeps what the other writer put there.
#[tokio::test]
async fn blocks_on_azure_are_pinned_to_the_content_read() {
    let (store, _) = Cloud::Azure.new_store("pinned");
    let key = "sensors/sensorData_pinned.parquet";
    let first = Bytes::from(vec![7u8; 6 * 1024 * 1024]);
    put(&store, key, &first, None).await;
    let read = store.object_info(key).await.unwrap();
    let source = CopySource {
        key: key.to_string(),
        e_tag: read.e_tag.clone().unwrap(),
        version_id: None,
        range: 0..first.len() as u64,
    };

    // The blob changes after it was read, before its region is copied.
    let second = Bytes::from(vec![8u8; 6 * 1024 * 1024]);
    put(&store, key, &second, None).await;
    let mut upload = ConditionalUpload::new(&store, &read, &[]).unwrap();
    upload.copy_first(&source).await.unwrap();
    let err = upload.copies_done().await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    upload.abort().await;
    assert_eq!(raw_bytes(&store, key).await, second);

    // Blocks staged from the content read, then the blob changes before the commit.
    let read = store.object_info(key).await.unwrap();
    let source = CopySource {
        e_tag: read.e_tag.clone().unwrap(),
        ..source
    };
    let mut upload = ConditionalUpload::new(&store, &read, &[]).unwrap();
    upload.copy_first(&source).await.unwrap();
    upload.push(Bytes::from_static(b"tail")).await.unwrap();
    let third = Bytes::from(vec![9u8; 1024]);
    put(&store, key, &third, None).await;
    let err = upload.finish().await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert_eq!(raw_bytes(&store, key).await, third);

    // Unchanged, a commit lands: the copied region, then what was pushed.
    let tail = Bytes::from(vec![1u8; 100]);
    put(&store, key, &first, None).await;
    let read = store.object_info(key).await.unwrap();
    let mut upload = ConditionalUpload::new(&store, &read, &[]).unwrap();
    upload
        .copy_first(&CopySource {
            key: key.to_string(),
            e_tag: read.e_tag.clone().unwrap(),
            version_id: None,
            range: 1024..first.len() as u64,
        })
        .await
        .unwrap();
    upload.push(tail.clone()).await.unwrap();
    upload.finish().await.unwrap();
    let written = raw_bytes(&store, key).await;
    assert_eq!(written.len(), first.len() - 1024 + tail.len());
    assert_eq!(&written[..first.len() - 1024], &first[1024..]);
    assert_eq!(&written[first.len() - 1024..], &tail[..]);
}

fn registry() -> pqmigrate::Registry {
    pqmigrate::Registry::from_inventory().unwrap()
}
