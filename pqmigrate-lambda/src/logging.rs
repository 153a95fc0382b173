//! Logs as Lambda reads them: the function's log format (`AWS_LAMBDA_LOG_FORMAT`, `Text` or
//! `JSON`) and level (`AWS_LAMBDA_LOG_LEVEL`, else `PQM_LOG`, else `info`), colour escapes only
//! on a terminal, and per-object figures as CloudWatch Embedded Metric Format lines, so a
//! dashboard needs no extra calls.

use std::io::{IsTerminal, Write};

use pqmigrate_core::{Outcome, Record};
use serde_json::{Value, json};
use tracing_subscriber::EnvFilter;

/// The CloudWatch namespace of the metric lines.
pub const METRICS_NAMESPACE: &str = "pqmigrate";

/// Whether `AWS_LAMBDA_LOG_FORMAT` asks for JSON lines.
fn json_format() -> bool {
    std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.to_ascii_lowercase().contains("json"))
}

/// The level filter: Lambda's log level when the function sets one (`FATAL` is `error` here),
/// else `PQM_LOG`, else `info`.
fn filter() -> EnvFilter {
    if let Ok(level) = std::env::var("AWS_LAMBDA_LOG_LEVEL") {
        let level = match level.trim().to_ascii_uppercase().as_str() {
            "TRACE" => "trace",
            "DEBUG" => "debug",
            "WARN" => "warn",
            "ERROR" | "FATAL" => "error",
            _ => "info",
        };
        return EnvFilter::new(level);
    }
    EnvFilter::try_from_env("PQM_LOG").unwrap_or_else(|_| "info".into())
}

/// Sets the process's log output up as the function's settings say. Lambda stamps each line's
/// time itself in text mode; JSON lines carry their own `timestamp`.
pub(crate) fn init() {
    let ansi = std::io::stdout().is_terminal();
    if json_format() {
        let _ = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_env_filter(filter())
            .with_ansi(false)
            .try_init();
    } else {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_ansi(ansi)
            .without_time()
            .try_init();
    }
}

/// The metric line of one object, in the Embedded Metric Format: the schema as the dimension;
/// objects, migrated and failed counts, bytes received, sent and copied, and milliseconds as
/// metrics; the key, the state and the run as properties for Logs Insights.
///
/// ```
/// let record = pqmigrate_core::Record::new("p/a.parquet", Some(3), pqmigrate_core::Outcome::AtTarget);
/// let line = pqmigrate_lambda::metric_line("sensorData", "Done", None, &record, 1_700_000_000_000);
/// assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "pqmigrate");
/// assert_eq!((line["Schema"].as_str(), line["Objects"].as_u64()), (Some("sensorData"), Some(1)));
/// ```
pub fn metric_line(schema: &str, state: &str, run_id: Option<&str>, record: &Record, timestamp_ms: u64) -> Value {
    let (received, sent, copied, migrated) = match &record.outcome {
        Outcome::Migrated(done) => (done.received, done.sent, done.copied, 1),
        _ => (0, 0, 0, 0),
    };
    let failed = u64::from(record.status().needs_attention());
    let metric = |name: &str, unit: &str| json!({ "Name": name, "Unit": unit });
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": METRICS_NAMESPACE,
                "Dimensions": [["Schema"]],
                "Metrics": [
                    metric("Objects", "Count"),
                    metric("Migrated", "Count"),
                    metric("NeedsAttention", "Count"),
                    metric("BytesReceived", "Bytes"),
                    metric("BytesSent", "Bytes"),
                    metric("BytesCopied", "Bytes"),
                    metric("Milliseconds", "Milliseconds"),
                ]
            }]
        },
        "Schema": schema,
        "Objects": 1,
        "Migrated": migrated,
        "NeedsAttention": failed,
        "BytesReceived": received,
        "BytesSent": sent,
        "BytesCopied": copied,
        "Milliseconds": record.millis,
        "key": record.key,
        "state": state,
        "runId": run_id,
    })
}

/// Writes the metric line of one object to standard output, where Lambda's log agent takes it
/// as one event and CloudWatch extracts the metrics.
pub(crate) fn emit_metrics(schema: &str, state: &str, run_id: Option<&str>, record: &Record) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let line = metric_line(schema, state, run_id, record, now);
    // Not `println!`, which panics when standard output is gone: a metric line is never worth a
    // failed invocation.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
