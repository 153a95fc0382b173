//! Logs where they are read. A bootstrap under `AWS_LAMBDA_LOG_FORMAT=JSON` writes one JSON
//! object a line, no escape in any, and one Embedded Metric Format line per object with the
//! bytes it moved; in text mode, off a terminal, it writes no colour escapes either. The CLI's
//! `--log-format json` writes its log lines as JSON objects for a cluster's log pipeline.

mod support;

use std::io::Read;

use bytes::Bytes;
use pqmigrate_sensor_steps::generate_file;
use serde_json::{Value, json};
use support::runtime_api::RuntimeApi;
use support::*;

fn event(bucket: &str, key: &str) -> Value {
    json!({
        "state": "Start", "s3Bucket": bucket, "s3Key": key,
        "schema": "schema:sensorData:version", "desiredVersion": "3", "maxStepsPerInvocation": 1
    })
}

/// Stops a sandbox and returns what it wrote to standard output.
fn output_of(mut child: std::process::Child) -> String {
    child.kill().unwrap();
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.wait().unwrap();
    out
}

/// Checks one Embedded Metric Format line: every metric it declares is a number at the top
/// level, every dimension a string, the timestamp in milliseconds.
fn check_emf(line: &Value) {
    let aws = &line["_aws"];
    assert!(aws["Timestamp"].as_u64().unwrap() > 1_600_000_000_000, "{line}");
    let directive = &aws["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "pqmigrate");
    for set in directive["Dimensions"].as_array().unwrap() {
        for name in set.as_array().unwrap() {
            assert!(line[name.as_str().unwrap()].is_string(), "dimension {name} in {line}");
        }
    }
    let metrics = directive["Metrics"].as_array().unwrap();
    assert!(metrics.len() >= 5, "{line}");
    for metric in metrics {
        let name = metric["Name"].as_str().unwrap();
        assert!(line[name].is_number(), "metric {name} in {line}");
        assert!(
            ["Count", "Bytes", "Milliseconds"].contains(&metric["Unit"].as_str().unwrap()),
            "{metric}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_follows_lambdas_log_settings_and_emits_metric_lines() {
    let (store, bucket) = new_bucket("json-logs").await;
    store
        .put(
            "p/one.parquet",
            generate_file(&small_spec(), 1),
            &[],
            Default::default(),
        )
        .await
        .unwrap();
    store
        .put(
            "p/bad.parquet",
            Bytes::from_static(b"not parquet"),
            &[],
            Default::default(),
        )
        .await
        .unwrap();

    let api = RuntimeApi::start().await;
    let child = api.spawn_logged(
        "bootstrap-migrate",
        &[
            ("AWS_LAMBDA_LOG_FORMAT", "JSON".into()),
            ("AWS_LAMBDA_LOG_LEVEL", "INFO".into()),
        ],
    );
    assert_eq!(
        api.drive(event(&bucket, "p/one.parquet")).await.0,
        ["Migrating", "Done"]
    );
    assert_eq!(api.drive(event(&bucket, "p/bad.parquet")).await.0, ["Error"]);
    let out = output_of(child);
    assert!(!out.contains('\u{1b}'), "an escape in: {out}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let (metrics, logs): (Vec<&Value>, Vec<&Value>) = lines.iter().partition(|l| l.get("_aws").is_some());
    // One metric line per invocation that ended an object's step: two for the migrated object
    // (1->2, 2->3), one for the corrupt one.
    assert_eq!(metrics.len(), 3, "{out}");
    metrics.iter().for_each(|m| check_emf(m));
    for migrated in &metrics[..2] {
        assert_eq!(
            (migrated["Migrated"].as_u64(), migrated["key"].as_str()),
            (Some(1), Some("p/one.parquet"))
        );
        assert!(migrated["BytesReceived"].as_u64().unwrap() > 0 && migrated["BytesSent"].as_u64().unwrap() > 0);
    }
    assert_eq!(metrics[2]["NeedsAttention"], 1);
    assert_eq!(metrics[2]["state"], "Error");
    // Log lines: JSON with a level and a timestamp; the failure is logged at ERROR naming it.
    assert!(
        logs.iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string()),
        "{out}"
    );
    assert!(
        logs.iter()
            .any(|l| l["level"] == "ERROR" && l.to_string().contains("p/bad.parquet")),
        "{out}"
    );

    // Text mode, standard output not a terminal: plain lines, no colour escapes.
    let api = RuntimeApi::start().await;
    let child = api.spawn_logged("bootstrap-migrate", &[("PQM_LOG", "info".into())]);
    assert_eq!(api.drive(event(&bucket, "p/bad.parquet")).await.0, ["Error"]);
    let out = output_of(child);
    assert!(!out.contains('\u{1b}'), "an escape in: {out}");
    assert!(
        out.lines().any(|l| l.contains("ERROR") && l.contains("p/bad.parquet")),
        "{out}"
    );
}

#[test]
fn the_cli_writes_json_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let generated = cli(&["generate", &url, "--days", "1", "--files-per-day", "2"], &[]);
    assert_eq!(generated.code, 0, "{}", generated.stderr);
    let run = cli(
        &[
            "run",
            &url,
            "--schema",
            "sensorData",
            "--to",
            "3",
            "--log-format",
            "json",
        ],
        &[("PQM_LOG", "info")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains('\u{1b}'), "{}", run.stderr);
    let logged: Vec<Value> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!logged.is_empty(), "{}", run.stderr);
    assert!(
        logged
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string())
    );
    // Every other line is the CLI's own message, never a log line in text form.
    for line in run.stderr.lines().filter(|l| !l.starts_with('{')) {
        assert!(
            !line.contains(" DEBUG ") && !line.contains(" INFO "),
            "a text log line: {line}"
        );
    }
}
