//! S3 Batch Operations: a job whose manifest lists the objects invokes this handler (invocation
//! schema 2.0); each task migrates one object.

use pqmigrate_core::{MigrateOptions, Outcome, Record, Registry, migrate_object};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Config;
use crate::events::{HandlerError, Version, schema_and_key};

/// The invocation event (schema 2.0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchEvent {
    /// `2.0`.
    pub invocation_schema_version: String,
    /// Invocation id, echoed in the response.
    pub invocation_id: String,
    /// The job, with its user arguments `schema` and `desiredVersion`.
    pub job: BatchJob,
    /// The tasks (one object each).
    pub tasks: Vec<BatchTask>,
}

/// The job of a [`BatchEvent`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchJob {
    /// Job id.
    pub id: String,
    /// `{"schema": "schema:sensorData:version", "desiredVersion": "3"}`, and `migrations` (where
    /// the migration files are) for the stock bootstrap.
    #[serde(default)]
    pub user_arguments: serde_json::Map<String, Value>,
}

/// One object of a [`BatchEvent`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchTask {
    /// Task id, echoed in the result.
    pub task_id: String,
    /// Bucket.
    pub s3_bucket: String,
    /// Object key (as in the job's manifest).
    pub s3_key: String,
    /// Version id from the manifest, if any.
    #[serde(default)]
    pub s3_version_id: Option<String>,
}

/// The response Batch Operations expects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    /// `2.0`.
    pub invocation_schema_version: String,
    /// What to do with keys the job could not find.
    pub treat_missing_keys_as: String,
    /// Echoed.
    pub invocation_id: String,
    /// One result per task.
    pub results: Vec<BatchResult>,
}

/// One task's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResult {
    /// Echoed.
    pub task_id: String,
    /// `Succeeded`, `TemporaryFailure` (retried by the job) or `PermanentFailure`.
    pub result_code: String,
    /// What happened.
    pub result_string: String,
}

/// The migration files' location of the job's user arguments (`migrations`), if any.
pub fn migrations(event: &BatchEvent) -> Option<String> {
    event
        .job
        .user_arguments
        .get("migrations")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Migrates each task's object.
///
/// # Errors
/// `PqmInvalidEvent` when the user arguments lack `schema` or `desiredVersion`.
pub async fn handle(config: &Config, registry: &Registry, event: BatchEvent) -> Result<BatchResponse, HandlerError> {
    let arguments = &event.job.user_arguments;
    let schema = arguments
        .get("schema")
        .and_then(Value::as_str)
        .ok_or_else(|| HandlerError::invalid("the job's user arguments need \"schema\""))?;
    let target: Version = arguments
        .get("desiredVersion")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| HandlerError::invalid(e.to_string()))?
        .ok_or_else(|| HandlerError::invalid("the job's user arguments need \"desiredVersion\""))?;
    let (schema_id, version_key) = schema_and_key(schema);
    let mut options = MigrateOptions::new(&schema_id, target.0);
    options.version_key = version_key;
    let mut results = Vec::with_capacity(event.tasks.len());
    for task in &event.tasks {
        let (code, text) = match config.checked_store(&task.s3_bucket).await {
            Err(e) if e.is_retryable() => ("TemporaryFailure", e.report()),
            Err(e) => ("PermanentFailure", e.report()),
            Ok(store) => match migrate_object(&store, registry, &task.s3_key, &options).await {
                Ok(record) => {
                    let version = record.from.unwrap_or(1);
                    let answer = match &record.outcome {
                        Outcome::Migrated(done) => ("Succeeded", format!("migrated {version}->{}", done.to)),
                        Outcome::AheadOfTarget => (
                            "Succeeded",
                            format!("at version {version}, above the target; left alone"),
                        ),
                        Outcome::MissingStep { missing } => (
                            "PermanentFailure",
                            format!(
                                "MissingMigrationStep: step {}->{} is not defined",
                                missing.from, missing.to
                            ),
                        ),
                        _ => ("Succeeded", format!("already at version {version}")),
                    };
                    crate::logging::emit_metrics(&schema_id, answer.0, None, &record);
                    answer
                }
                Err(e) if e.is_retryable() => ("TemporaryFailure", e.report()),
                Err(e) => {
                    crate::logging::emit_metrics(
                        &schema_id,
                        "PermanentFailure",
                        None,
                        &Record::failed(&task.s3_key, &e),
                    );
                    ("PermanentFailure", e.report())
                }
            },
        };
        results.push(BatchResult {
            task_id: task.task_id.clone(),
            result_code: code.to_string(),
            result_string: text,
        });
    }
    Ok(BatchResponse {
        invocation_schema_version: "2.0".into(),
        treat_missing_keys_as: "PermanentFailure".into(),
        invocation_id: event.invocation_id,
        results,
    })
}
