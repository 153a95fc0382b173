//! Running a plan: the [`Executor`] abstraction and the local tokio executor with bounded
//! concurrency, retries with exponential backoff and full jitter, per-attempt timeouts, events
//! and cancellation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::journal::{JournalWriter, Record, RunSummary, Status};
use crate::migrate::{MigrateOptions, migrate_object};
use crate::plan::{Class, PlanEntry};
use crate::registry::Registry;
use crate::store::Store;

/// Retry settings, named as AWS Step Functions names them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Delay before the first retry (before jitter).
    pub interval: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Factor by which the delay grows per retry.
    pub backoff_rate: f64,
    /// Largest delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(500),
            max_attempts: 6,
            backoff_rate: 2.0,
            max_delay: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (1 for the first retry), given a uniform random
    /// `unit` in [0, 1): full jitter, `unit * min(max_delay, interval * backoff_rate^(retry-1))`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let p = pqmigrate_core::RetryPolicy::default();
    /// assert_eq!(p.delay(1, 0.5), Duration::from_millis(250));
    /// assert_eq!(p.delay(3, 0.5), Duration::from_millis(1000));
    /// assert_eq!(p.delay(30, 0.5), Duration::from_secs(10));
    /// ```
    pub fn delay(&self, retry: u32, unit: f64) -> Duration {
        let exponent = retry.saturating_sub(1).min(64) as i32;
        let ceiling =
            (self.interval.as_secs_f64() * self.backoff_rate.max(1.0).powi(exponent)).min(self.max_delay.as_secs_f64());
        Duration::from_secs_f64(ceiling * unit.clamp(0.0, 1.0))
    }
}

/// How a run executes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Objects migrated at once.
    pub concurrency: usize,
    /// Retries of retryable failures.
    pub retry: RetryPolicy,
    /// Limit of one attempt on one object.
    pub attempt_timeout: Option<Duration>,
}

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
    /// An object is finished (whatever its status).
    Finished(Box<Record>),
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

/// Runs a plan's objects and journals each outcome.
#[async_trait]
pub trait Executor: Send + Sync {
    /// Runs every entry of `job`, records each in `journal`, and returns the totals.
    ///
    /// # Errors
    /// Only for failures of the run itself (journal writes, listing); per-object failures are
    /// records.
    async fn execute(&self, job: Job, journal: &mut JournalWriter, run_id: &str) -> Result<RunSummary>;
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
            Ok(outcome) => Record::from_outcome(key, &outcome),
            Err(e) if e.is_retryable() && attempt < options.retry.max_attempts => {
                let delay = options.retry.delay(attempt, jitter_unit());
                events(&Event::Retrying {
                    key: key.to_string(),
                    attempt,
                    delay,
                    error: e.to_string(),
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

/// A uniform draw in [0, 1) for retry jitter.
pub(crate) fn jitter_unit() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0x2545_F491_4F6C_DD1D);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    let mut x = STATE.fetch_add(0x9E37_79B9_7F4A_7C15 ^ nanos, Ordering::Relaxed);
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

fn record_without_migration(entry: &PlanEntry) -> Option<Record> {
    let mut record = match &entry.class {
        Class::NeedsMigration { .. } => return None,
        Class::AtTarget => Record::new(&entry.key, Status::AtTarget),
        Class::AheadOfTarget => Record::new(&entry.key, Status::AheadOfTarget),
        Class::MissingStep { from, to } => Record {
            error_kind: Some("MissingMigrationStep".into()),
            error: Some(format!("{}: missing migration step {from}->{to}", entry.key)),
            ..Record::new(&entry.key, Status::MissingStep)
        },
        Class::OtherSchema { schema } => Record {
            error: Some(format!("{}: tagged as schema {schema}; left alone", entry.key)),
            ..Record::new(&entry.key, Status::OtherSchema)
        },
        Class::Unreadable { error } => Record {
            error_kind: Some("Unreadable".into()),
            error: Some(error.clone()),
            ..Record::new(&entry.key, Status::Failed)
        },
    };
    record.from = entry.version;
    Some(record)
}

#[async_trait]
impl Executor for LocalExecutor {
    async fn execute(&self, job: Job, journal: &mut JournalWriter, run_id: &str) -> Result<RunSummary> {
        let started = Instant::now();
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
        let request_retries_before = store.request_retries();
        let counter = store.clone();
        let cancelled_early = cancel.clone();
        let mut listing_error = None;
        let mut results = entries
            .take_until(cancel.cancelled_owned())
            .map(|entry| {
                let store = store.clone();
                let registry = registry.clone();
                let migrate = migrate.clone();
                let options = options.clone();
                let events = events.clone();
                async move {
                    let entry = entry?;
                    if let Some(record) = record_without_migration(&entry) {
                        return Ok(record);
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
                            &Error::Journal {
                                key: key.clone(),
                                message: format!("task failed: {e}"),
                            },
                        )
                    }))
                }
            })
            .buffer_unordered(self.options.concurrency.max(1))
            .boxed();

        let mut summary = RunSummary {
            run_id: run_id.to_string(),
            ..RunSummary::default()
        };
        while let Some(result) = results.next().await {
            match result {
                Ok(record) => {
                    summary.add(&record);
                    journal.record(&record).await?;
                    events(&Event::Finished(Box::new(record)));
                }
                Err(e) => {
                    // The listing failed: stop taking objects, finish those running, report.
                    cancelled_early.cancel();
                    listing_error.get_or_insert(e);
                }
            }
        }
        summary.request_retries = counter.request_retries() - request_retries_before;
        summary.cancelled = cancelled_early.is_cancelled();
        summary.elapsed_ms = started.elapsed().as_millis() as u64;
        match listing_error {
            Some(e) => Err(e),
            None => Ok(summary),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_table() {
        let p = RetryPolicy {
            interval: Duration::from_secs(1),
            max_attempts: 5,
            backoff_rate: 2.0,
            max_delay: Duration::from_secs(5),
        };
        let cases = [
            (1, 1.0, 1.0),
            (2, 1.0, 2.0),
            (3, 1.0, 4.0),
            (4, 1.0, 5.0),
            (9, 1.0, 5.0),
            (3, 0.25, 1.0),
            (2, 0.0, 0.0),
        ];
        for (retry, unit, seconds) in cases {
            assert_eq!(
                p.delay(retry, unit),
                Duration::from_secs_f64(seconds),
                "retry {retry} unit {unit}"
            );
        }
        let flat = RetryPolicy { backoff_rate: 0.5, ..p };
        assert_eq!(
            flat.delay(4, 1.0),
            Duration::from_secs(1),
            "a rate below 1 does not shrink delays"
        );
    }

    #[test]
    fn jitter_stays_in_the_unit_interval() {
        let draws: Vec<f64> = (0..1000).map(|_| jitter_unit()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((0.4..0.6).contains(&mean), "mean {mean}");
    }
}
