//! The per-object migrate handler, as the seed's state machine drives it.

use std::time::Duration;

use pqmigrate_core::{MigrateOptions, Outcome, Registry, migrate_object};

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
    match migrate_object(&store, registry, &event.s3_key, &options).await {
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
    Ok(event)
}
