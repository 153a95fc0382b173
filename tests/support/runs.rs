//! Runs, rollbacks and migrations through the library, with their outcomes asserted.

use std::sync::Arc;

use pqmigrate::Store;

use super::*;

/// Runs the library's `run` use case over the `.parquet` objects under `prefix` to version 3 of
/// sensorData, asserting that all `count` are migrated.
pub async fn run_to_3(store: &Store, prefix: &str, count: u64) -> pqmigrate::RunReport {
    run_to(store, prefix, 3, count).await
}

/// Writes two small sensorData files under `prefix`, migrates them 1->2 in one run and 2->3 in
/// a second, undoes the second run and then the first (newest first), and checks both are back
/// to their original bytes: the first rollback's restores count as the first run's own output.
pub async fn undo_newest_first(store: &Store, prefix: &str) {
    use pqmigrate::rollback::{RollbackOptions, rollback_run};
    let mut originals = Vec::new();
    for i in 0..2u64 {
        let key = format!("{prefix}sensorData_{i:03}.parquet");
        let data = pqmigrate_sensor_steps::generate_file(&small_spec(), i);
        store.put(&key, data.clone(), &[], Default::default()).await.unwrap();
        originals.push((key, data));
    }
    let count = originals.len() as u64;
    let first = run_to(store, prefix, 2, count).await;
    let second = run_to(store, prefix, 3, count).await;
    for run in [&second, &first] {
        let undone = rollback_run(store, "_pqmigrate/runs/", &run.info.run_id, &RollbackOptions::default())
            .await
            .unwrap();
        assert_eq!(
            undone.summary.count(pqmigrate::Status::Migrated),
            count,
            "rollback of {}: {:?}",
            run.info.run_id,
            undone.summary
        );
    }
    for (key, data) in &originals {
        assert_eq!(&raw_bytes(store, key).await, data, "{key} byte for byte");
    }
}

/// Runs the library's `run` use case over the `.parquet` objects under `prefix` to `target`,
/// asserting that all `count` are migrated.
pub async fn run_to(store: &Store, prefix: &str, target: u32, count: u64) -> pqmigrate::RunReport {
    let registry = Arc::new(pqmigrate::Registry::from_inventory().unwrap());
    let report = pqmigrate::Migrator::new(
        store.clone(),
        registry,
        pqmigrate::MigrateOptions::new(pqmigrate_sensor_steps::SCHEMA, target),
    )
    .scan(
        pqmigrate::scan::ScanSpec::default()
            .prefixes([prefix.to_string()])
            .suffix(".parquet"),
    )
    .run()
    .await
    .unwrap();
    assert_eq!(
        report.summary.count(pqmigrate::Status::Migrated),
        count,
        "{:?}",
        report.summary
    );
    report
}

/// Another writer replaces `changed` after the run `run`, which is then rolled back: every
/// other object the run wrote is restored, `changed` is refused naming it, and the other
/// writer's bytes stand.
pub async fn roll_back_around_a_change(
    store: &Store,
    run: &pqmigrate::RunReport,
    changed: &str,
    restored: u64,
) -> pqmigrate::rollback::RollbackReport {
    use pqmigrate::Status;
    use pqmigrate::rollback::{RollbackOptions, rollback_run};
    let theirs = pqmigrate_sensor_steps::generate_file(&small_spec(), 77);
    store
        .put(changed, theirs.clone(), &[], Default::default())
        .await
        .unwrap();
    let rollback = rollback_run(store, "_pqmigrate/runs/", &run.info.run_id, &RollbackOptions::default())
        .await
        .unwrap();
    assert!(rollback.failure.is_none(), "{:?}", rollback.failure);
    assert_eq!(rollback.info.rolls_back.as_deref(), Some(run.info.run_id.as_str()));
    assert_eq!(
        rollback.summary.count(Status::Migrated),
        restored,
        "{:?}",
        rollback.summary
    );
    assert_eq!(rollback.summary.failures.len(), 1);
    let (key, why) = &rollback.summary.failures[0];
    assert_eq!(key, changed);
    assert!(why.contains("not restored") && why.contains(changed), "{why}");
    assert_eq!(
        raw_bytes(store, changed).await,
        theirs,
        "the other writer's change stands"
    );
    rollback
}

/// Migrates `key` to `target` of `schema` and returns the version it was found at and the
/// migration, failing on any other outcome.
pub async fn migrate_done(store: &Store, key: &str, schema: &str, target: u32) -> (u32, pqmigrate::Migrated) {
    let registry = pqmigrate::Registry::from_inventory().unwrap();
    let options = pqmigrate::MigrateOptions::new(schema, target);
    let record = pqmigrate::migrate_object(store, &registry, key, &options)
        .await
        .unwrap();
    match record.outcome {
        pqmigrate::Outcome::Migrated(done) => (record.from.unwrap(), *done),
        other => panic!("{key}: expected migrated, got {other:?}"),
    }
}
