use super::pipeline::{copy_refused, windows_of};
use super::*;

/// Only the store's own lasting answer turns copying in place off for the store; a caller's
/// mistake (a configuration error) or a failed request does not.
#[test]
fn only_a_store_that_does_not_copy_parts_turns_copies_off() {
    let unsupported = Error::Unsupported {
        key: "k".into(),
        what: "copy parts in place",
        message: "501 NotImplemented".into(),
    };
    let bug = Error::Config("k: a copied part must come first".into());
    let throttled = Error::S3Api {
        key: "k".into(),
        op: "UploadPartCopy",
        status: 503,
        message: "SlowDown".into(),
    };
    assert!(copy_refused(&unsupported));
    assert!(!copy_refused(&bug) && !copy_refused(&throttled));
}

// The write protocol's steps over the memory store (with tags, so the tag checks are seen),
// a hook standing in for other writers and for a lost answer.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use crate::intent::{Intent, IntentLog};
use crate::outcome::Outcome;
use crate::store::{Hook, Request, SharedIo, WriteOptions};

const KEY: &str = "d/a.parquet";

fn file(values: &[i64]) -> Bytes {
    let column = Arc::new(arrow_array::Int64Array::from(values.to_vec())) as arrow_array::ArrayRef;
    let batch = arrow_array::RecordBatch::try_from_iter([("a", column)]).unwrap();
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    Bytes::from(out)
}

fn values(data: &Bytes) -> Vec<i64> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(data.clone(), 1024).unwrap();
    reader
        .flat_map(|batch| {
            let batch = batch.unwrap();
            let column = batch
                .column(0)
                .as_any()
                .downcast_ref::<arrow_array::Int64Array>()
                .unwrap()
                .clone();
            column.values().to_vec()
        })
        .collect()
}

/// Everything the protocol did, in order: requests as `Put d/a.parquet`, intents as
/// `intent d/a.parquet`.
type Log = Arc<Mutex<Vec<String>>>;

/// Other writers and lost answers, on cue.
#[derive(Debug, Default)]
struct Others {
    log: Log,
    /// Another writer replaces the object just before our write reaches the store.
    replace_before_write: AtomicBool,
    /// Another writer edits the object's tags just before the check that precedes the write.
    edit_tags_before_check: AtomicBool,
    /// Our write lands, and its answer is lost on the way back.
    lose_answer: AtomicBool,
    tag_reads: AtomicU32,
}

#[async_trait]
impl Hook for Others {
    async fn before(&self, request: Request, key: &str, conditional: bool, inner: &SharedIo) -> crate::Result<()> {
        self.log.lock().unwrap().push(format!("{request:?} {key}"));
        if key != KEY {
            return Ok(());
        }
        if request == Request::Put && conditional && self.replace_before_write.swap(false, Ordering::SeqCst) {
            inner.put(KEY, file(&[7, 7]).into(), WriteOptions::default()).await?;
        }
        // The first tag read is step 1's; the second, the check before the write.
        if request == Request::GetTags
            && self.tag_reads.fetch_add(1, Ordering::SeqCst) == 1
            && self.edit_tags_before_check.load(Ordering::SeqCst)
        {
            inner.put_tags(KEY, None, &[("team".into(), "y".into())]).await?;
        }
        Ok(())
    }

    fn after(&self, request: Request, key: &str) -> crate::Result<()> {
        if request == Request::Put && key == KEY && self.lose_answer.swap(false, Ordering::SeqCst) {
            return Err(Error::S3Api {
                key: key.into(),
                op: "PutObject",
                status: 500,
                message: "connection reset; response lost".into(),
            });
        }
        Ok(())
    }
}

/// Intents made durable into the shared log.
#[derive(Debug)]
struct Intents(Log);

#[async_trait]
impl IntentLog for Intents {
    async fn record(&self, intent: Intent) -> crate::Result<()> {
        self.0.lock().unwrap().push(format!("intent {}", intent.key));
        Ok(())
    }
}

async fn setup() -> (Store, Arc<Others>, Registry) {
    let plain = Store::tagged_memory();
    plain
        .put(
            KEY,
            file(&[1, 2, 3]),
            &[("team".into(), "x".into())],
            Default::default(),
        )
        .await
        .unwrap();
    let others = Arc::new(Others::default());
    let store = plain.with_hook(others.clone());
    let registry = Registry::from_steps([crate::migration::testing::same("s", 1, 2)]).unwrap();
    (store, others, registry)
}

fn in_a_run(others: &Others) -> MigrateOptions {
    MigrateOptions {
        run: Some(RunContext {
            run_id: "run-1".into(),
            intents: Arc::new(Intents(others.log.clone())),
            fence: Default::default(),
        }),
        ..MigrateOptions::new("s", 2)
    }
}

fn sorted(mut tags: Vec<(String, String)>) -> Vec<(String, String)> {
    tags.sort();
    tags
}

#[tokio::test]
async fn data_version_and_tags_land_in_one_conditional_write_after_the_intent() {
    let (store, others, registry) = setup().await;
    let record = migrate_object(&store, &registry, KEY, &in_a_run(&others))
        .await
        .unwrap();
    let Outcome::Migrated(migrated) = &record.outcome else {
        panic!("not migrated: {record:?}");
    };
    assert_eq!((record.from, migrated.to, migrated.rows), (Some(1), 2, 3));

    let log = others.log.lock().unwrap().clone();
    let writes: Vec<&String> = log
        .iter()
        .filter(|e| e.starts_with("Put ") || e.starts_with("PutTags "))
        .collect();
    assert_eq!(
        writes,
        [&format!("Put {KEY}")],
        "one write, no separate tag write: {log:?}"
    );
    let intent = log.iter().position(|e| e == &format!("intent {KEY}")).unwrap();
    let put = log.iter().position(|e| e == &format!("Put {KEY}")).unwrap();
    assert!(intent < put, "the intent is durable before the write: {log:?}");

    let data = store.get(KEY, Default::default()).await.unwrap().1;
    assert_eq!(values(&data), [1, 2, 3]);
    let footer = crate::rewrite::Footer::parse(KEY, &data).unwrap();
    assert_eq!(footer.version(KEY, "schema:s:version").unwrap(), Some(2));
    assert_eq!(
        sorted(store.tags(KEY).await.unwrap().unwrap()),
        [
            ("schema:s:version".to_string(), "2".to_string()),
            ("team".into(), "x".into())
        ]
    );
    let head = store.head(KEY).await.unwrap();
    let attempt = migrated.attempt_id.as_deref().unwrap();
    assert_eq!(
        metadata(&head.attributes, crate::intent::ATTEMPT_METADATA),
        Some(attempt)
    );
    assert_eq!(metadata(&head.attributes, crate::intent::RUN_METADATA), Some("run-1"));
}

#[tokio::test]
async fn an_object_replaced_after_it_was_read_is_never_overwritten() {
    let (store, others, registry) = setup().await;
    others.replace_before_write.store(true, Ordering::SeqCst);
    let err = migrate_object(&store, &registry, KEY, &MigrateOptions::new("s", 2))
        .await
        .unwrap_err();
    assert_eq!(err.kind().name(), "Conflict", "{err}");
    assert_eq!(
        values(&store.get(KEY, Default::default()).await.unwrap().1),
        [7, 7],
        "the other writer's data stands"
    );
}

#[tokio::test]
async fn a_tag_edit_during_the_rewrite_sends_the_object_back_unwritten() {
    let (store, others, registry) = setup().await;
    others.edit_tags_before_check.store(true, Ordering::SeqCst);
    let err = migrate_object(&store, &registry, KEY, &MigrateOptions::new("s", 2))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TagsChanged { .. }), "{err}");
    assert_eq!(
        err.kind().name(),
        "Conflict",
        "retried from step 1 like any other conflict"
    );
    assert_eq!(
        store.tags(KEY).await.unwrap().unwrap(),
        [("team".to_string(), "y".to_string())]
    );
    let data = store.get(KEY, Default::default()).await.unwrap().1;
    let footer = crate::rewrite::Footer::parse(KEY, &data).unwrap();
    assert_eq!(footer.version(KEY, "schema:s:version").unwrap(), None, "not written");
}

#[tokio::test]
async fn a_write_whose_answer_was_lost_is_known_by_its_attempt_id() {
    let (store, others, registry) = setup().await;
    others.lose_answer.store(true, Ordering::SeqCst);
    let record = migrate_object(&store, &registry, KEY, &in_a_run(&others))
        .await
        .unwrap();
    assert!(matches!(record.outcome, Outcome::Migrated(_)), "{record:?}");
    let footer = crate::rewrite::Footer::parse(KEY, &store.get(KEY, Default::default()).await.unwrap().1).unwrap();
    assert_eq!(footer.version(KEY, "schema:s:version").unwrap(), Some(2));

    // Outside a run nothing names the attempt: the lost answer stays an error, never a guess.
    let (store, others, registry) = setup().await;
    others.lose_answer.store(true, Ordering::SeqCst);
    let err = migrate_object(&store, &registry, KEY, &MigrateOptions::new("s", 2)).await;
    assert!(err.is_err(), "{err:?}");
}

#[tokio::test]
async fn a_fenced_run_writes_nothing() {
    let (store, others, registry) = setup().await;
    let options = in_a_run(&others);
    options.run.as_ref().unwrap().fence.cancel();
    let err = migrate_object(&store, &registry, KEY, &options).await.unwrap_err();
    assert_eq!(err.kind().name(), "Cancelled", "{err}");
    let log = others.log.lock().unwrap().clone();
    assert!(
        !log.iter().any(|e| e.starts_with("intent") || e.starts_with("Put")),
        "{log:?}"
    );
}

/// Copied chunks are checked in windows that follow the file: every chunk once, under its own
/// number, no window over the limit unless one chunk is.
#[test]
fn copied_chunks_are_checked_in_windows_that_follow_the_file() {
    let chunks = vec![40..70, 4..24, 24..40, 70..200, 200..210, 210..215];
    let windows = windows_of(chunks.clone(), 40);
    let positions: Vec<Vec<usize>> = windows
        .iter()
        .map(|window| window.iter().map(|(position, _)| *position).collect())
        .collect();
    assert_eq!(positions, vec![vec![1, 2], vec![0], vec![3], vec![4, 5]]);
    for window in &windows {
        for (position, range) in window {
            assert_eq!(&chunks[*position], range);
        }
        let size: u64 = window.iter().map(|(_, range)| range.end - range.start).sum();
        assert!(size <= 40 || window.len() == 1, "{window:?}");
    }
    assert!(windows_of(Vec::new(), 40).is_empty());
}
