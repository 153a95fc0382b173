use super::*;
use crate::journal::read_run;
use crate::outcome::Status;
use bytes::Bytes;
use std::time::Instant;

#[tokio::test]
async fn a_run_journals_every_object_and_releases_its_lease() {
    let store = Store::memory();
    for key in ["d/a.parquet", "d/b.parquet"] {
        store
            .put(key, Bytes::from_static(b"not parquet"), &[], Default::default())
            .await
            .unwrap();
    }
    let registry = registry_1_to_2();
    let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = seen.clone();
    let report = Migrator::new(store.clone(), registry, MigrateOptions::new("s", 2))
        .on_event(Arc::new(move |event| {
            if matches!(event, Event::Finished(_)) {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }))
        .run()
        .await
        .unwrap();
    assert_eq!(
        report.summary.count(Status::Failed),
        2,
        "unreadable objects fail in a run"
    );
    assert!(!report.is_complete());
    assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 2);
    let journal = read_run(&store, DEFAULT_JOURNAL_PREFIX, &report.info.run_id)
        .await
        .unwrap();
    assert_eq!(journal.records.len(), 2);
    assert_eq!(journal.summary.unwrap(), report.summary);
    let lease = crate::lease::current_lease(&store, &crate::lease::lease_key("s"))
        .await
        .unwrap();
    assert!(lease.is_none(), "released");
}

fn registry_1_to_2() -> Arc<Registry> {
    Arc::new(Registry::from_steps([crate::migration::testing::same("s", 1, 2)]).unwrap())
}

async fn put_files(store: &Store, count: i64) -> Vec<(String, Bytes)> {
    let mut files = Vec::new();
    for i in 0..count {
        let column = Arc::new(arrow_array::Int64Array::from(vec![i, i + 1])) as arrow_array::ArrayRef;
        let batch = arrow_array::RecordBatch::try_from_iter([("a", column)]).unwrap();
        let mut file = Vec::new();
        let mut writer = parquet::arrow::ArrowWriter::try_new(&mut file, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let key = format!("d/{i}.parquet");
        store
            .put(&key, Bytes::from(file.clone()), &[], Default::default())
            .await
            .unwrap();
        files.push((key, Bytes::from(file)));
    }
    files
}

async fn written_attempt(store: &Store, key: &str) -> (Option<String>, Option<String>) {
    use crate::intent::{ATTEMPT_METADATA, RUN_METADATA};
    let head = store.head(key).await.unwrap();
    let value = |name| crate::store::metadata(&head.attributes, name).map(str::to_string);
    (value(RUN_METADATA), value(ATTEMPT_METADATA))
}

/// Throttles the first writes of each of the run's bookkeeping objects (the lease, the
/// journal) `in_a_row` times, more than one request's retries cover.
#[derive(Debug)]
struct ThrottledBookkeeping {
    in_a_row: u32,
    seen: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}

#[async_trait::async_trait]
impl crate::store::Hook for ThrottledBookkeeping {
    async fn before(
        &self,
        request: crate::store::Request,
        key: &str,
        _conditional: bool,
        _inner: &crate::store::SharedIo,
    ) -> Result<()> {
        let bookkeeping = key.starts_with(crate::store::INTERNAL_PREFIX) && !key.contains("/probe/");
        if request != crate::store::Request::Put || !bookkeeping {
            return Ok(());
        }
        let mut seen = self.seen.lock().unwrap();
        let throttled = seen.entry(key.to_string()).or_default();
        if *throttled < self.in_a_row {
            *throttled += 1;
            return Err(Error::Store {
                key: key.into(),
                op: "put",
                source: object_store::Error::Generic {
                    store: "test",
                    source: "503 SlowDown".into(),
                },
            });
        }
        Ok(())
    }
}

#[tokio::test]
async fn throttling_longer_than_request_retries_costs_neither_the_lease_nor_the_journal() {
    let plain = Store::memory();
    let files = put_files(&plain, 3).await;
    let in_a_row = crate::store::REQUEST_ATTEMPTS + 1;
    let hook = Arc::new(ThrottledBookkeeping {
        in_a_row,
        seen: Default::default(),
    });
    let store = plain.clone().with_hook(hook.clone());
    let report = Migrator::new(store, registry_1_to_2(), MigrateOptions::new("s", 2))
        .run()
        .await
        .unwrap();
    assert!(report.failure.is_none(), "{:?}", report.failure.map(|e| e.report()));
    assert!(report.is_complete());
    assert_eq!(report.summary.count(Status::Migrated), files.len() as u64);
    let seen = hook.seen.lock().unwrap().clone();
    let lease = crate::lease::lease_key("s");
    assert_eq!(seen.get(&lease), Some(&in_a_row), "the lease's writes were throttled");
    assert!(seen.keys().any(|k| k.ends_with("run.json")), "{seen:?}");
    let journal = read_run(&plain, DEFAULT_JOURNAL_PREFIX, &report.info.run_id)
        .await
        .unwrap();
    assert_eq!(journal.records.len(), files.len());
    assert_eq!(journal.summary.unwrap(), report.summary);
    let held = crate::lease::current_lease(&plain, &lease).await.unwrap();
    assert!(held.is_none(), "released: {held:?}");
}

/// Slows every read and, once `cut` is set, fails every write of the lease.
#[derive(Debug, Default)]
struct SlowAndCut {
    cut: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl crate::store::Hook for SlowAndCut {
    async fn before(
        &self,
        request: crate::store::Request,
        key: &str,
        _conditional: bool,
        _inner: &crate::store::SharedIo,
    ) -> Result<()> {
        use crate::store::Request;
        let lease = key.contains("leases/");
        if request == Request::Put && lease && self.cut.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Error::Timeout {
                key: key.into(),
                seconds: 0.0,
            });
        }
        if matches!(request, Request::Get | Request::Head) && !lease {
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_run_that_cannot_renew_its_lease_stops_writing_before_it_lapses() {
    let plain = Store::memory();
    let files = put_files(&plain, 30).await;
    let hook = Arc::new(SlowAndCut::default());
    let store = plain.clone().with_hook(hook.clone());
    let cut = {
        let hook = hook.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            hook.cut.store(true, std::sync::atomic::Ordering::Relaxed);
            Instant::now()
        })
    };
    let ttl = Duration::from_millis(800);
    let report = Migrator::new(store.clone(), registry_1_to_2(), MigrateOptions::new("s", 2))
        .lease_ttl(ttl)
        .run_options(RunOptions {
            concurrency: 2,
            ..RunOptions::default()
        })
        .run()
        .await
        .unwrap();
    let cut_at = cut.await.unwrap();
    let migrated = report.summary.count(Status::Migrated) as usize;
    assert!(migrated > 0 && migrated < files.len(), "{:?}", report.summary);
    assert!(
        report
            .summary
            .stopped_by
            .as_deref()
            .unwrap_or_default()
            .contains("lease was lost"),
        "{:?}",
        report.summary
    );
    // No object was written once the lease might have lapsed: every write is one the
    // journal records, and the last landed before the TTL ran out after the cut.
    let journal = read_run(&plain, DEFAULT_JOURNAL_PREFIX, &report.info.run_id)
        .await
        .unwrap();
    let recorded: std::collections::BTreeSet<_> = journal
        .records
        .iter()
        .filter(|r| r.migrated().is_some())
        .map(|r| r.key.clone())
        .collect();
    assert_eq!(recorded.len(), migrated);
    for (key, original) in &files {
        let head = plain.head(key).await.unwrap();
        let now = plain.get(key, Default::default()).await.unwrap().1;
        if recorded.contains(key) {
            assert_ne!(&now, original, "{key}");
            let written = head.last_modified.unwrap();
            let lapse = chrono::Utc::now() - chrono::Duration::from_std(cut_at.elapsed()).unwrap()
                + chrono::Duration::from_std(ttl).unwrap();
            assert!(written < lapse, "{key} written after the lease could have lapsed");
        } else {
            assert_eq!(&now, original, "{key} untouched");
        }
    }
}

#[tokio::test]
async fn intents_are_journaled_and_objects_name_the_run_and_the_attempt() {
    let store = Store::memory();
    put_files(&store, 3).await;
    let report = Migrator::new(store.clone(), registry_1_to_2(), MigrateOptions::new("s", 2))
        .run()
        .await
        .unwrap();
    assert_eq!(report.summary.count(Status::Migrated), 3, "{:?}", report.summary);
    let journal = read_run(&store, DEFAULT_JOURNAL_PREFIX, &report.info.run_id)
        .await
        .unwrap();
    assert_eq!(journal.intents.len(), 3);
    for record in &journal.records {
        let attempt = record.migrated().unwrap().attempt_id.clone();
        let intent = journal.intents.iter().find(|i| Some(&i.attempt_id) == attempt.as_ref());
        assert_eq!(
            intent.map(|i| (i.key.as_str(), i.from, i.to)),
            Some((record.key.as_str(), 1, 2))
        );
        assert_eq!(
            written_attempt(&store, &record.key).await,
            (Some(report.info.run_id.clone()), attempt)
        );
    }
    let changes = crate::changes::run_changes(&store, &journal, 4).await.unwrap();
    assert_eq!((changes.recorded.len(), changes.unrecorded.len()), (3, 0));
}

#[tokio::test]
async fn writes_a_killed_run_never_recorded_are_found_by_their_attempt() {
    use crate::intent::{ATTEMPT_METADATA, Intent};
    let store = Store::memory();
    let files = put_files(&store, 3).await;
    let intent = |key: &str, attempt: &str| Intent {
        key: key.into(),
        attempt_id: attempt.into(),
        e_tag: Some("old".into()),
        version_id: None,
        from: 1,
        to: 2,
    };
    // The first object was written by attempt a0, the second by someone else after the
    // run's intent, the third never.
    for (key, attempt) in [(&files[0].0, "a0"), (&files[1].0, "zz")] {
        let metadata = crate::store::user_metadata(&[(ATTEMPT_METADATA, attempt)]);
        store.put(key, files[0].1.clone(), &[], metadata).await.unwrap();
    }
    let journal = crate::journal::RunJournal {
        info: crate::journal::test_info("r"),
        intents: vec![
            intent(&files[0].0, "a0"),
            intent(&files[1].0, "a1"),
            intent(&files[2].0, "a2"),
        ],
        records: vec![],
        summary: None,
    };
    let changes = crate::changes::run_changes(&store, &journal, 4).await.unwrap();
    assert!(changes.recorded.is_empty());
    let found: Vec<_> = changes
        .unrecorded
        .iter()
        .map(|r| (r.key.as_str(), r.migrated().unwrap().old_e_tag.as_deref()))
        .collect();
    assert_eq!(found, vec![(files[0].0.as_str(), Some("old"))]);
}

#[cfg(feature = "fault-injection")]
#[tokio::test]
async fn writes_whose_answers_are_lost_are_recognised_as_the_runs_own() {
    use crate::store::fault::FaultConfig;
    let plain = Store::memory();
    let files = put_files(&plain, 3).await;
    // Every write of the run (objects, journal, lease) is applied by the store and its
    // answer lost.
    let (store, injector) = plain.with_faults(FaultConfig {
        lost_response: 1.0,
        ..FaultConfig::default()
    });
    let report = Migrator::new(store.clone(), registry_1_to_2(), MigrateOptions::new("s", 2))
        .run()
        .await
        .unwrap();
    assert!(injector.injected() >= 3 + files.len() as u64);
    assert!(report.failure.is_none(), "{:?}", report.failure);
    assert_eq!(report.summary.count(Status::Migrated), 3, "{:?}", report.summary);
    let journal = read_run(&store, DEFAULT_JOURNAL_PREFIX, &report.info.run_id)
        .await
        .unwrap();
    for record in &journal.records {
        let (run, attempt) = written_attempt(&store, &record.key).await;
        assert_eq!(run.as_deref(), Some(report.info.run_id.as_str()));
        assert_eq!(attempt, record.migrated().unwrap().attempt_id);
    }
    assert_eq!(journal.summary.unwrap(), report.summary);
}
