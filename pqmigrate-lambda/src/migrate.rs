//! The per-object migrate handler, as the per-object state machine drives it.

use std::time::Duration;

use pqmigrate_core::detached;
use pqmigrate_core::journal::DEFAULT_JOURNAL_PREFIX;
use pqmigrate_core::{MigrateOptions, Origin, Outcome, Record, Registry, Store, migrate_object};

use crate::config::Config;
use crate::events::{HandlerError, MigrateEvent, schema_and_key};

/// Migrates one object toward `desiredVersion` and returns the event with its new state.
///
/// - `Done`: at the target (migrated now, already there, or above it: never downgraded).
/// - `Migrating`: `maxStepsPerInvocation` steps applied, more to go; invoke again.
/// - `MissingMigrationStep` and `Error` (with `errorCause`): terminal, the object is unchanged.
///
/// # Errors
/// A [`HandlerError`] of type [`crate::RETRYABLE_ERROR`] for throttling, timeouts, dropped
/// connections and conflicts; Step Functions retries the invocation.
pub async fn handle(config: &Config, registry: &Registry, event: MigrateEvent) -> Result<MigrateEvent, HandlerError> {
    handle_until(config, registry, event, None).await
}

/// The margin kept before an invocation's deadline: a tenth of the time left, between 1 and 10
/// seconds, for the upload's abort and the answer.
pub fn stop_before(deadline: std::time::SystemTime) -> tokio::time::Instant {
    let left = deadline
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    let margin = (left / 10).clamp(Duration::from_secs(1), Duration::from_secs(10));
    tokio::time::Instant::now() + left.saturating_sub(margin)
}

/// As [`handle`], but giving up before `deadline` (the invocation's, from the Lambda runtime):
/// a rewrite not finished [`stop_before`] it is abandoned, its multipart upload aborted, and
/// the invocation answers [`crate::RETRYABLE_ERROR`], so the state machine's Retry runs it again
/// rather than Lambda killing it mid-upload.
///
/// # Errors
/// As [`handle`].
pub async fn handle_until(
    config: &Config,
    registry: &Registry,
    mut event: MigrateEvent,
    deadline: Option<std::time::SystemTime>,
) -> Result<MigrateEvent, HandlerError> {
    let (schema, version_key) = schema_and_key(&event.schema);
    let target = event.desired_version.0;
    let mut options = MigrateOptions::new(&schema, target);
    options.version_key = version_key;
    options.max_steps = event.max_steps_per_invocation;
    options.deadline = deadline.map(stop_before);
    event.error_cause = None;
    let store = config
        .checked_store(&event.s3_bucket)
        .await
        .map_err(|e| HandlerError::store(&e))?;
    // In a run begun by the scan: the object's intent and record go to the run's journal, and
    // a chain split over invocations is rolled back to where the object stood at its start.
    let run_id = event.run_id.clone();
    if let Some(run_id) = &run_id {
        match detached::context(&store, DEFAULT_JOURNAL_PREFIX, run_id, &schema).await {
            Ok(context) => options.run = Some(context),
            Err(e) if e.is_retryable() => return Err(HandlerError::retryable(&e)),
            Err(e) => {
                event.state = "Error".to_string();
                event.error_cause = Some(format!("{}: {}", event.s3_key, e.report()));
                return Ok(event);
            }
        }
        options.origin = event
            .extra
            .get(ORIGIN_FIELD)
            .and_then(|v| serde_json::from_value::<Origin>(v.clone()).ok());
    }
    let result = migrate_object(&store, registry, &event.s3_key, &options).await;
    if let Some(run_id) = &run_id {
        record_in_run(&store, run_id, &mut event, &result).await?;
    }
    let metrics = match &result {
        Ok(record) => Some(record.clone()),
        Err(e) if !e.is_retryable() => Some(Record::failed(&event.s3_key, e)),
        Err(_) => None,
    };
    match result {
        Ok(record) => match &record.outcome {
            Outcome::Migrated(done) => {
                tracing::info!(key = %event.s3_key, from = record.from, to = done.to, millis = record.millis, "migrated");
                event.state = if done.to >= target { "Done" } else { "Migrating" }.to_string();
            }
            Outcome::AheadOfTarget => {
                tracing::warn!(key = %event.s3_key, version = record.from, target, "above the target version; left alone");
                event.state = "Done".to_string();
            }
            Outcome::MissingStep { missing } => {
                event.state = "MissingMigrationStep".to_string();
                event.error_cause = Some(format!(
                    "Migration step {}->{} of {schema} is not defined",
                    missing.from, missing.to
                ));
            }
            _ => event.state = "Done".to_string(),
        },
        Err(e) if e.is_retryable() => return Err(HandlerError::retryable(&e)),
        Err(e) => {
            let cause = e.report();
            tracing::error!(key = %event.s3_key, "{cause}");
            event.state = "Error".to_string();
            event.error_cause = Some(cause);
        }
    }
    if let Some(record) = metrics {
        crate::logging::emit_metrics(&schema, &event.state, run_id.as_deref(), &record);
    }
    Ok(event)
}

/// Where the object stood before the run's first write of it, carried between the invocations
/// of one chain.
const ORIGIN_FIELD: &str = "runOrigin";

/// Writes the object's record into the run once its chain is over (at the target, or failed):
/// a step on the way records nothing but carries the object's first version in the event, so
/// the final record, and a rollback, go back to it. A retryable failure records nothing (the
/// invocation is retried).
async fn record_in_run(
    store: &Store,
    run_id: &str,
    event: &mut MigrateEvent,
    result: &pqmigrate_core::Result<Record>,
) -> Result<(), HandlerError> {
    let record = match result {
        Ok(record) => {
            if let Outcome::Migrated(done) = &record.outcome
                && done.to < event.desired_version.0
            {
                // The chain goes on in the next invocation: what it started from and the steps
                // applied so far travel in the event, to the record of its last invocation.
                let origin = Origin {
                    e_tag: done.old_e_tag.clone(),
                    version_id: done.old_version_id.clone(),
                    version: record.from.unwrap_or(1),
                    applied: done
                        .steps
                        .iter()
                        .cloned()
                        .zip(done.fingerprints.iter().cloned())
                        .collect(),
                };
                event
                    .extra
                    .insert(ORIGIN_FIELD.into(), serde_json::to_value(origin).expect("serializable"));
                return Ok(());
            }
            record.clone()
        }
        Err(e) if e.is_retryable() => return Ok(()),
        Err(e) => Record::failed(&event.s3_key, e),
    };
    event.extra.remove(ORIGIN_FIELD);
    detached::record(store, DEFAULT_JOURNAL_PREFIX, run_id, &record)
        .await
        .map_err(|e| HandlerError::retryable(&e))
}
