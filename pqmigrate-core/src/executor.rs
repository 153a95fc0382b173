//! Running a plan's objects: the [`Executor`] abstraction and the local tokio executor with
//! bounded concurrency, retries with exponential backoff and full jitter, per-attempt timeouts
//! and cancellation. Executors yield records; the run use case journals and totals them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{BoxStream, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::lease::LeaseInfo;
use crate::migrate::{MigrateOptions, migrate_object};
use crate::outcome::{Outcome, Record};
use crate::plan::PlanEntry;
use crate::registry::Registry;
use crate::store::{RetryPolicy, Store, jitter_unit};

/// How a run executes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunOptions {
    /// Objects migrated at once.
    pub concurrency: usize,
    /// Retries of retryable failures.
    pub retry: RetryPolicy,
    /// Limit of one attempt on one object.
    pub attempt_timeout: Option<Duration>,
}

crate::setters::setters!(RunOptions {
    val concurrency: usize,
    val retry: RetryPolicy,
    val attempt_timeout: Option<Duration>,
});

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            concurrency: 8,
            retry: RetryPolicy::default(),
            attempt_timeout: Some(Duration::from_secs(600)),
        }
    }
}

/// What happens during a run, for progress bars and logs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A migration attempt began.
    Started {
        /// Object key.
        key: String,
    },
    /// An attempt failed with a retryable error; another follows after `delay`.
    Retrying {
        /// Object key.
        key: String,
        /// The attempt that failed (1-based).
        attempt: u32,
        /// Wait before the next.
        delay: Duration,
        /// Why it failed.
        error: String,
    },
    /// An object is finished (whatever its status) and journaled.
    Finished(Box<Record>),
    /// The scan found an object (a plan entry, before it runs).
    Planned(Box<PlanEntry>),
    /// The run took over the expired lease of a run that did not finish.
    TookOverLease(Box<LeaseInfo>),
}

/// Receives [`Event`]s.
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

/// What an executor needs for a run.
pub struct Job {
    /// The store.
    pub store: Store,
    /// The steps.
    pub registry: Arc<Registry>,
    /// Schema, target and version settings.
    pub migrate: MigrateOptions,
    /// The plan, as a stream.
    pub entries: BoxStream<'static, Result<PlanEntry>>,
    /// Where events go.
    pub events: EventSink,
    /// Cancelled: take no new objects, let running ones finish.
    pub cancel: CancellationToken,
}

/// Runs a plan's objects.
pub trait Executor: Send + Sync {
    /// Runs every entry of `job` and yields one record per object, in the order they finish.
    /// An error item is a failure of the plan stream (the listing); the executor takes no
    /// further objects after it, and finishes those already running.
    fn execute(&self, job: Job) -> BoxStream<'static, Result<Record>>;
}

/// The local executor: tokio tasks on this machine.
#[derive(Debug, Clone, Default)]
pub struct LocalExecutor {
    /// Settings.
    pub options: RunOptions,
}

impl LocalExecutor {
    /// An executor with `options`.
    pub fn new(options: RunOptions) -> Self {
        Self { options }
    }
}

/// Migrates one object with retries of retryable failures, as the local executor does: the
/// per-object function every executor shares.
pub async fn migrate_with_retries(
    store: &Store,
    registry: &Registry,
    key: &str,
    migrate: &MigrateOptions,
    options: &RunOptions,
    events: &EventSink,
) -> Record {
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        events(&Event::Started { key: key.to_string() });
        let result = match options.attempt_timeout {
            Some(limit) => tokio::time::timeout(limit, migrate_object(store, registry, key, migrate))
                .await
                .unwrap_or_else(|_| {
                    Err(Error::Timeout {
                        key: key.to_string(),
                        seconds: limit.as_secs_f64(),
                    })
                }),
            None => migrate_object(store, registry, key, migrate).await,
        };
        let mut record = match result {
            Ok(record) => record,
            Err(e) if e.is_retryable() && attempt < options.retry.max_attempts => {
                let delay = options.retry.delay(attempt, jitter_unit());
                events(&Event::Retrying {
                    key: key.to_string(),
                    attempt,
                    delay,
                    error: e.report(),
                });
                tokio::time::sleep(delay).await;
                continue;
            }
            Err(e) => Record::failed(key, &e),
        };
        record.attempts = attempt;
        record.millis = started.elapsed().as_millis() as u64;
        return record;
    }
}

impl Executor for LocalExecutor {
    fn execute(&self, job: Job) -> BoxStream<'static, Result<Record>> {
        let Job {
            store,
            registry,
            migrate,
            entries,
            events,
            cancel,
        } = job;
        let options = self.options.clone();
        let migrate = Arc::new(migrate);
        let stop = cancel.clone();
        entries
            .take_until(cancel.cancelled_owned())
            .map(move |entry| {
                let store = store.clone();
                let registry = registry.clone();
                let migrate = migrate.clone();
                let options = options.clone();
                let events = events.clone();
                let stop = stop.clone();
                async move {
                    let entry = match entry {
                        Ok(entry) => entry,
                        Err(e) => {
                            // The listing failed: take no more objects, finish those running.
                            stop.cancel();
                            return Err(e);
                        }
                    };
                    match entry.outcome {
                        Outcome::NeedsMigration { .. } => {}
                        // In a run, an object that cannot be read is an object that failed.
                        Outcome::Unreadable { error_kind, error } => {
                            let outcome = Outcome::Failed { error_kind, error };
                            return Ok(Record::new(&entry.key, entry.version, outcome));
                        }
                        outcome => return Ok(Record::new(&entry.key, entry.version, outcome)),
                    }
                    // Each object runs in its own task so one object's CPU work never stalls
                    // another's I/O, and a panic stays contained.
                    let key = entry.key.clone();
                    let handle = tokio::spawn(async move {
                        migrate_with_retries(&store, &registry, &entry.key, &migrate, &options, &events).await
                    });
                    Ok(handle.await.unwrap_or_else(|e| {
                        Record::failed(
                            &key,
                            &Error::Task {
                                key: key.clone(),
                                message: e.to_string(),
                            },
                        )
                    }))
                }
            })
            .buffer_unordered(self.options.concurrency.max(1))
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Status;

    #[tokio::test]
    async fn untouched_objects_are_recorded_without_a_task() {
        let entries = vec![
            Ok(PlanEntry {
                key: "a".into(),
                size: 1,
                version: Some(3),
                outcome: Outcome::AtTarget,
            }),
            Err(Error::Config("listing broke".into())),
            Ok(PlanEntry {
                key: "b".into(),
                size: 1,
                version: Some(3),
                outcome: Outcome::AtTarget,
            }),
        ];
        let job = Job {
            store: Store::memory(),
            registry: Arc::new(Registry::default()),
            migrate: MigrateOptions::new("s", 3),
            entries: futures::stream::iter(entries).boxed(),
            events: Arc::new(|_| {}),
            cancel: CancellationToken::new(),
        };
        let one_at_a_time = LocalExecutor::new(RunOptions {
            concurrency: 1,
            ..RunOptions::default()
        });
        let out: Vec<_> = one_at_a_time.execute(job).collect().await;
        assert_eq!(out.len(), 2, "nothing is taken after the listing fails");
        assert_eq!(out[0].as_ref().unwrap().status(), Status::AtTarget);
        assert!(out[1].is_err());
    }
}
