//! An IoT `sensorData` Parquet data set migrated from version 1 to 3 (1->2 adds four features
//! computed from `x` and `y`; 2->3 renames `sensor_type` and dictionary-encodes `device_id`).
//!
//! With no arguments it generates a small data set on local disk, plans, runs 1->3 and prints
//! the summary:
//!
//! ```text
//! cargo run --release -p pqmigrate-sensor-demo
//! ```
//!
//! With arguments it is the full `pqmigrate` CLI with the sensorData steps linked in, plus a
//! `generate` command that writes the data set to any store:
//!
//! ```text
//! cargo run --release -p pqmigrate-sensor-demo -- generate file:///tmp/sensors --days 2 --files-per-day 120
//! cargo run --release -p pqmigrate-sensor-demo --features s3 -- plan s3://bucket/parquet/ --schema sensorData --to 3
//! cargo run --release -p pqmigrate-sensor-demo --features s3 -- run s3://bucket/parquet/ --schema sensorData --to 3
//! ```
//!
//! The package builds only what it runs: the core with local disk, the CLI and the steps (no
//! benchmark, Lambda, fault-injection or cloud client code); the features `s3`, `gcs`, `azure`
//! (or `cloud` for all three) add those stores.

use std::process::ExitCode;

use pqmigrate_core::{Store, StoreOptions};
use pqmigrate_sensor_steps::{DataSpec, generate_file};

/// The demo with no arguments, `generate` with it, else the whole CLI.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        None => ExitCode::from(demo()),
        Some("generate") => ExitCode::from(generate_command(&args[2..])),
        Some(_) => pqmigrate_cli::main(),
    }
}

/// Layout of a generated data set.
struct Layout {
    days: u32,
    files_per_day: u32,
    spec: DataSpec,
}

fn key(prefix: &str, day: u32, file: u32) -> String {
    format!("{prefix}parquet/year=2019/month=3/day={day:02}/sensorData_{file:03}.parq.snappy")
}

/// Writes the data set under `prefix` with one generator thread per core.
fn generate(store: &Store, prefix: &str, layout: &Layout) -> Result<u64, pqmigrate_core::Error> {
    let jobs: Vec<(u32, u32)> = (1..=layout.days)
        .flat_map(|d| (0..layout.files_per_day).map(move |f| (d, f)))
        .collect();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let chunks: Vec<Vec<(u32, u32)>> = jobs
        .chunks(jobs.len().div_ceil(threads).max(1))
        .map(<[_]>::to_vec)
        .collect();
    let results: Vec<Result<u64, pqmigrate_core::Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let handle = runtime.handle().clone();
                scope.spawn(move || {
                    let mut bytes = 0u64;
                    for (day, file) in chunk {
                        let index = u64::from(day) * 1000 + u64::from(file);
                        let data = generate_file(&layout.spec, index);
                        bytes += data.len() as u64;
                        handle.block_on(store.put(&key(prefix, day, file), data, &[], Default::default()))?;
                    }
                    Ok(bytes)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("generator thread"))
            .collect()
    });
    results.into_iter().sum()
}

fn generate_command(args: &[String]) -> u8 {
    let mut layout = Layout {
        days: 2,
        files_per_day: 120,
        spec: DataSpec::default(),
    };
    let Some(url) = args.first() else {
        eprintln!(
            "usage: sensor_data generate <store-url> [--days N] [--files-per-day N] [--rows N] [--row-group-rows N]"
        );
        return 2;
    };
    let mut rest = args[1..].iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().and_then(|v| v.parse::<usize>().ok());
        match (flag.as_str(), value) {
            ("--days", Some(v)) => layout.days = v as u32,
            ("--files-per-day", Some(v)) => layout.files_per_day = v as u32,
            ("--rows", Some(v)) => layout.spec.rows = v,
            ("--row-group-rows", Some(v)) => layout.spec.row_group_rows = v,
            _ => {
                eprintln!("generate: bad flag or value: {flag}");
                return 2;
            }
        }
    }
    let mut options = StoreOptions::default();
    options.endpoint = std::env::var("PQM_S3_ENDPOINT").ok();
    // Generating makes a new data set: its folder is made here (opening a store never does).
    if let Some(path) = url.strip_prefix("file://")
        && let Err(e) = std::fs::create_dir_all(path)
    {
        eprintln!("generate: cannot create {path}: {e}");
        return 2;
    }
    let (store, prefix) = match Store::open(url, &options) {
        Ok((store, prefix)) if prefix.is_empty() || prefix.ends_with('/') => (store, prefix),
        Ok((store, prefix)) => (store, format!("{prefix}/")),
        Err(e) => {
            eprintln!("generate: {e}");
            return 2;
        }
    };
    if store.s3_bucket().is_some() {
        // A fresh bucket on a test server: create it with versioning, so runs can be rolled back.
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        if let Err(e) = runtime.block_on(store.create_bucket(true)) {
            eprintln!("generate: {e}");
            return 1;
        }
    }
    match generate(&store, &prefix, &layout) {
        Ok(bytes) => {
            println!(
                "generated {} files ({} bytes) in {url}",
                layout.days * layout.files_per_day,
                bytes
            );
            0
        }
        Err(e) => {
            eprintln!("generate: {e}");
            1
        }
    }
}

fn demo() -> u8 {
    let dir = std::env::temp_dir().join("pqmigrate-sensor-demo");
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::local(&dir).expect("local store");
    let layout = Layout {
        days: 2,
        files_per_day: 12,
        spec: DataSpec {
            rows: 20_000,
            ..DataSpec::default()
        },
    };
    println!("generating 24 sensorData files of 20,000 rows in {} ...", dir.display());
    if let Err(e) = generate(&store, "", &layout) {
        eprintln!("{e}");
        return 1;
    }
    let url = format!("file://{}", dir.display());
    let dataset = [
        "--schema",
        "sensorData",
        "--prefix",
        "parquet/year=2019/month=3/",
        "--suffix",
        ".parq.snappy",
        "--filter",
        "sensorData_",
    ];
    let cli = |command: &str, extra: &[&str]| {
        let mut args = vec!["pqmigrate", command, url.as_str()];
        args.extend(dataset);
        args.extend(extra);
        println!("\n$ pqmigrate {}", args[1..].join(" "));
        pqmigrate_cli::run_from(args)
    };
    let planned = cli("plan", &["--to", "3"]);
    if planned == 2 {
        return planned;
    }
    let code = cli("run", &["--to", "3", "--concurrency", "4"]);
    cli("plan", &["--to", "3"]);
    println!(
        "\nThe replaced files are kept under {}/_pqmigrate/versions/: `pqmigrate status {url}` lists the run, `pqmigrate rollback {url} <run id>` restores them.",
        dir.display()
    );
    code
}
