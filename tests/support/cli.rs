//! The built binaries: the CLI with the sensorData steps and the Lambda bootstraps.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// A bootstrap of examples/sensor-lambda built by `cargo build --workspace --bins`
/// (scripts/test.sh does it).
pub fn bootstrap(name: &str) -> PathBuf {
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let binary = deps.parent().unwrap().join(name);
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build --workspace --bins` (scripts/test.sh does)",
        binary.display()
    );
    binary
}

/// The CLI binary with the sensorData steps: the `sensor_data` example, built by
/// `cargo build --examples` (scripts/test.sh does it before the tests).
pub fn cli_binary() -> PathBuf {
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let binary = deps.parent().unwrap().join("examples").join("sensor_data");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build --workspace --examples` (scripts/test.sh does)",
        binary.display()
    );
    binary
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    run_binary(&cli_binary(), args, env)
}

/// The stock `pqmigrate` binary of pqmigrate-cli (no step compiled in), run as [`cli`] runs the
/// one with the sensorData steps.
pub fn stock_cli(args: &[&str]) -> Output {
    run_binary(&bootstrap("pqmigrate"), args, &[])
}

fn run_binary(binary: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(binary);
    command.args(args);
    // Runs on local disk need no S3 server; S3 runs fail loudly on their own without one.
    if let Ok(endpoint) = std::env::var("PQM_S3_ENDPOINT") {
        command.env("PQM_S3_ENDPOINT", endpoint);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("run the CLI");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The keys `status <run>` on the store at `url` says the run wrote, recorded or found from its
/// intents and the objects' metadata, and how many of them only the latter tell of.
pub fn keys_written_by(url: &str, run_id: &str) -> (std::collections::BTreeSet<String>, usize) {
    let status = cli(&["status", url, run_id, "--json"], &[]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    let status = json(&status);
    let recorded = status["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "migrated");
    let unrecorded = status["changes"]["unrecorded"].as_array().unwrap();
    let keys: std::collections::BTreeSet<String> = recorded
        .chain(unrecorded.iter())
        .map(|r| r["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(status["changes"]["objects"].as_u64().unwrap() as usize, keys.len());
    (keys, unrecorded.len())
}

pub fn json(out: &Output) -> Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", out.stdout, out.stderr))
}
