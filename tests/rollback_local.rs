//! Rollback on local disk: a write keeps the file it replaces as a hard link under
//! `_pqmigrate/versions/`, so a run is undone there byte for byte, as on a versioned bucket.

mod support;

use std::sync::Arc;

use pqmigrate::rollback::{RollbackOptions, rollback_run};
use pqmigrate::{MigrateOptions, Migrator, Registry, Status, Store};
use pqmigrate_sensor_steps::{DataSpec, SCHEMA, generate_file};
use support::*;

const RUNS: &str = "_pqmigrate/runs/";

#[tokio::test]
async fn a_run_on_local_disk_is_rolled_back_byte_for_byte_from_the_kept_versions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::local(dir.path()).unwrap();
    assert!(store.capabilities().versions && store.versioning_enabled().await.unwrap());
    // Two files large enough for the data region to be copied by the kernel, one small.
    let spec = DataSpec {
        rows: 30_000,
        row_group_rows: 10_000,
        seed: 5,
    };
    let mut originals = Vec::new();
    for i in 0..3u64 {
        let key = format!("d/sensorData_{i:03}.parquet");
        let data = if i < 2 {
            generate_file(&spec, i)
        } else {
            generate_file(&small_spec(), i)
        };
        store.put(&key, data.clone(), &[], Default::default()).await.unwrap();
        originals.push((key, data));
    }
    let before: Vec<String> = {
        let mut ids = Vec::new();
        for (key, _) in &originals {
            ids.push(
                store
                    .head(key)
                    .await
                    .unwrap()
                    .version_id
                    .expect("local files have version ids"),
            );
        }
        ids
    };
    let registry = Arc::new(Registry::from_inventory().unwrap());
    let report = Migrator::new(store.clone(), registry, MigrateOptions::new(SCHEMA, 3))
        .scan(pqmigrate::scan::ScanSpec {
            prefixes: vec!["d/".into()],
            suffix: ".parquet".into(),
            ..Default::default()
        })
        .run()
        .await
        .unwrap();
    assert_eq!(report.summary.count(Status::Migrated), 3, "{:?}", report.summary);

    // The store's own version listing: each object's migrated file is current, the original
    // kept, readable by its version id, and the same file (a link, not a copy).
    let versions = store.list_versions("d/").await.unwrap();
    assert_eq!(versions.len(), 6, "{versions:?}");
    for ((key, data), old) in originals.iter().zip(&before) {
        let of_key: Vec<_> = versions.iter().filter(|v| &v.key == key).collect();
        assert_eq!(of_key.len(), 2, "{key}: {of_key:?}");
        let kept = of_key.iter().find(|v| !v.is_latest).expect("a kept version");
        assert_eq!(&kept.version_id, old);
        assert_eq!(
            &version_bytes(&store, key, old).await,
            data,
            "{key}: kept byte for byte"
        );
        assert_eq!(
            footer_version(&raw_bytes(&store, key).await, &pqmigrate::version_key(SCHEMA)),
            Some(3)
        );
        use std::os::unix::fs::MetadataExt;
        let kept_file = dir.path().join("_pqmigrate/versions").join(key).join(old);
        assert_eq!(
            std::fs::metadata(&kept_file).unwrap().nlink(),
            1,
            "{key}: the old file, linked once it was replaced"
        );
    }

    // Another writer changes one object after the run.
    let changed = &originals[2].0;
    let theirs = generate_file(&small_spec(), 77);
    store
        .put(changed, theirs.clone(), &[], Default::default())
        .await
        .unwrap();
    let rollback = rollback_run(&store, RUNS, &report.info.run_id, &RollbackOptions::default())
        .await
        .unwrap();
    assert!(rollback.failure.is_none(), "{:?}", rollback.failure);
    assert_eq!(rollback.summary.count(Status::Migrated), 2, "{:?}", rollback.summary);
    let (key, why) = &rollback.summary.failures[0];
    assert_eq!((key, rollback.summary.failures.len()), (changed, 1));
    assert!(why.contains("not restored"), "{why}");
    assert_eq!(
        raw_bytes(&store, changed).await,
        theirs,
        "the other writer's change stands"
    );
    for (key, data) in &originals[..2] {
        assert_eq!(&raw_bytes(&store, key).await, data, "{key} byte for byte");
    }
}
