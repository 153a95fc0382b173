//! The events of the state machines, typed, and the handler error.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Lambda error type of failures worth retrying (throttling, timeouts, dropped connections,
/// conflicts with another writer). The shipped state machines' `Retry` matches it.
pub const RETRYABLE_ERROR: &str = "PqmRetryable";

/// Lambda error type of a handler that cannot run at all (bad event, bad configuration).
pub const INVALID_EVENT_ERROR: &str = "PqmInvalidEvent";

/// Error type of a handler that refused the store: it lacks a guarantee the write protocol
/// needs (the capability probe names which). Not retried.
pub const STORE_REFUSED_ERROR: &str = "PqmStoreRefused";

/// A version given as a string (`"3"`, as Step Functions inputs often carry it) or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct Version(pub u32);

impl From<Version> for String {
    fn from(v: Version) -> Self {
        v.0.to_string()
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let parsed = match &value {
            Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            Value::String(s) => s.trim().parse::<u32>().ok(),
            _ => None,
        };
        parsed
            .filter(|v| *v >= 1)
            .map(Version)
            .ok_or_else(|| serde::de::Error::custom(format!("desiredVersion {value} is not a positive integer")))
    }
}

/// The per-object event of the state machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrateEvent {
    /// `Start`, `Migrating`, `Done`, `MissingMigrationStep` or `Error`.
    pub state: String,
    /// Bucket.
    pub s3_bucket: String,
    /// Object key.
    pub s3_key: String,
    /// Version key, `schema:<id>:version`, or just the schema id.
    pub schema: String,
    /// Target version.
    pub desired_version: Version,
    /// Steps applied in one invocation at most (all when absent), to stay inside Lambda's 15
    /// minutes on long chains: the state machine loops while the state is `Migrating`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps_per_invocation: Option<usize>,
    /// Why the state is `Error` or `MissingMigrationStep`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_cause: Option<String>,
    /// The run the object is migrated in (written by the scan into every manifest line): its
    /// intent and record go to the run's journal, and the object names the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Where the migration files are (`s3://bucket/migrations`), for the stock bootstrap; the
    /// function's `PQM_MIGRATIONS` when absent. The scan writes its own into every line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrations: Option<String>,
    /// Any other fields, passed through unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The scan event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanEvent {
    /// Bucket.
    pub bucket: String,
    /// Key prefixes (`[""]` for the whole bucket).
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Key suffix.
    #[serde(default, rename = "type")]
    pub suffix: String,
    /// Base name substring.
    #[serde(default)]
    pub filter: String,
    /// Version key or schema id.
    pub schema: String,
    /// Target version.
    pub desired_version: Version,
    /// Where to write the manifest (default `_pqmigrate/manifests/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_prefix: Option<String>,
    /// Steps applied per invocation at most, written into every manifest line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps_per_invocation: Option<usize>,
    /// Child executions of the Map at once (its `MaxConcurrencyPath`).
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: u32,
    /// Share of objects that may fail before the Map fails (its `ToleratedFailurePercentagePath`).
    #[serde(default = "default_tolerated_failure_percentage")]
    pub tolerated_failure_percentage: u32,
    /// Whether the execution fails when any object needs attention (default `true`).
    #[serde(default = "default_true")]
    pub fail_on_attention: bool,
    /// How long the run holds the data set's lease, in seconds (the longest the execution may
    /// take; default a day). Closing the run releases it earlier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ttl_seconds: Option<u64>,
    /// Migrate even where the prefixes lie at or under a Delta Lake, Iceberg or Hudi table
    /// (refused by default: the table's metadata records each file's size).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_table_files: bool,
    /// Where the migration files are (`s3://bucket/migrations`, one folder a schema id), for
    /// the stock bootstrap; the function's `PQM_MIGRATIONS` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrations: Option<String>,
    /// Begin the run though a migration file changed since earlier runs applied it (refused
    /// by default, naming the files).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub accept_changed_migrations: bool,
}

fn default_max_concurrency() -> u32 {
    100
}

fn default_tolerated_failure_percentage() -> u32 {
    5
}

fn default_true() -> bool {
    true
}

/// What the scan handler returns: where the manifest is, and the counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanResult {
    /// Bucket of the manifest (the data's).
    pub manifest_bucket: String,
    /// Key of the JSON-lines manifest: one [`MigrateEvent`] per object that needs migration.
    pub manifest_key: String,
    /// Objects in the manifest.
    pub objects: u64,
    /// Objects seen, per status (`needs_migration`, `at_target`, ...).
    pub counts: std::collections::BTreeMap<String, u64>,
    /// The run begun for this migration (`pqmigrate status <store> <run>` shows it).
    pub run_id: String,
    /// Objects left out of the manifest that need attention (missing step, unreadable, other
    /// schema); recorded in the run with the reason.
    pub skipped: u64,
    /// Records the run should hold once every object is through: one per object seen.
    pub expected: u64,
    /// Echoed from the event for the Map and the final Choice.
    pub max_concurrency: u32,
    /// Echoed from the event.
    pub tolerated_failure_percentage: u32,
    /// Echoed from the event.
    pub fail_on_attention: bool,
    /// The event's schema (version key or id), for closing the run.
    pub schema: String,
}

/// The event that closes a run begun by the scan, sent to the scan function by the parent
/// machine's last Task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloseEvent {
    /// The run to close.
    pub close_run: String,
    /// Bucket of the data set.
    pub bucket: String,
    /// Version key or schema id.
    pub schema: String,
    /// Records the run should hold ([`ScanResult::expected`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<u64>,
    /// Whether the execution should fail when any object needs attention.
    #[serde(default = "default_true")]
    pub fail_on_attention: bool,
}

/// What closing a run returns: its counts, and the cause the final Choice fails with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloseResult {
    /// The run.
    pub run_id: String,
    /// Objects per status.
    pub counts: std::collections::BTreeMap<String, u64>,
    /// Objects that need attention (and records missing).
    pub needs_attention: u64,
    /// Echoed from the event.
    pub fail_on_attention: bool,
    /// The first objects that need attention and why, for the Fail state's `CausePath`.
    pub cause: String,
}

/// What the scan function takes: a scan (which begins a run) or the close of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ScanRequest {
    /// Close a run.
    Close(CloseEvent),
    /// Scan and begin a run.
    Scan(ScanEvent),
}

/// What the scan function answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ScanResponse {
    /// A run begun and its manifest.
    Scanned(ScanResult),
    /// A run closed.
    Closed(CloseResult),
}

/// A handler failure reported to Lambda: a stable error type and a message naming the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError {
    /// [`RETRYABLE_ERROR`] or [`INVALID_EVENT_ERROR`].
    pub error_type: &'static str,
    /// What failed.
    pub message: String,
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)
    }
}

impl std::error::Error for HandlerError {}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: e.error_type.to_string(),
            error_message: e.message,
        }
    }
}

impl HandlerError {
    pub(crate) fn retryable(e: &pqmigrate_core::Error) -> Self {
        Self {
            error_type: RETRYABLE_ERROR,
            message: format!("{}: {}", e.kind(), e.report()),
        }
    }

    /// The error of a store that could not be opened or checked: refused when it lacks a
    /// guarantee (or is misconfigured), retryable when the probe's own requests failed.
    pub(crate) fn store(e: &pqmigrate_core::Error) -> Self {
        if e.is_retryable() {
            return Self::retryable(e);
        }
        Self {
            error_type: STORE_REFUSED_ERROR,
            message: e.report(),
        }
    }

    #[cfg(feature = "sql")]
    pub(crate) fn retryable_message(message: impl Into<String>) -> Self {
        Self {
            error_type: RETRYABLE_ERROR,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self {
            error_type: INVALID_EVENT_ERROR,
            message: message.into(),
        }
    }
}

/// The schema id and version key of an event's `schema` field.
pub(crate) fn schema_and_key(schema: &str) -> (String, String) {
    match pqmigrate_core::schema_of_version_key(schema) {
        Some(id) => (id.to_string(), schema.to_string()),
        None => (schema.to_string(), pqmigrate_core::version_key(schema)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_events_parse_with_string_or_number_versions() {
        let seed = r#"{"state":"Start","s3Bucket":"myAnalyticsBucket","s3Key":"parquet/year=2019/month=3/day=01/sensorData_001.parq.snappy","schema":"schema:sensorData:version","desiredVersion":"3"}"#;
        let event: MigrateEvent = serde_json::from_str(seed).unwrap();
        assert_eq!((event.state.as_str(), event.desired_version), ("Start", Version(3)));
        let numeric: MigrateEvent = serde_json::from_str(&seed.replace("\"3\"", "3")).unwrap();
        assert_eq!(numeric.desired_version, Version(3));
        let out = serde_json::to_value(&event).unwrap();
        assert_eq!(out["desiredVersion"], "3");
        assert!(out.get("errorCause").is_none());
        for bad in ["\"abc\"", "0", "-2", "null"] {
            let e = serde_json::from_str::<MigrateEvent>(&seed.replace("\"3\"", bad)).unwrap_err();
            assert!(e.to_string().contains("is not a positive integer"), "{bad}: {e}");
        }
        let scan = r#"{"bucket":"b","prefixes":["parquet/year=2019/month=3/"],"type":".parq.snappy","filter":"sensorData_","schema":"schema:sensorData:version","desiredVersion":"3"}"#;
        let scan: ScanEvent = serde_json::from_str(scan).unwrap();
        assert_eq!(
            (scan.suffix.as_str(), scan.filter.as_str()),
            (".parq.snappy", "sensorData_")
        );
        assert_eq!(
            schema_and_key(&scan.schema),
            ("sensorData".into(), "schema:sensorData:version".into())
        );
        assert_eq!(
            schema_and_key("sensorData"),
            ("sensorData".into(), "schema:sensorData:version".into())
        );
    }

    #[test]
    fn unknown_fields_pass_through() {
        let event: MigrateEvent = serde_json::from_str(
            r#"{"state":"Start","s3Bucket":"b","s3Key":"k","schema":"s","desiredVersion":2,"executionName":"x"}"#,
        )
        .unwrap();
        assert_eq!(serde_json::to_value(&event).unwrap()["executionName"], "x");
    }
}
