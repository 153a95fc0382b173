//! SQL migration files run by the stock `pqmigrate` binary (no step compiled in) against
//! SeaweedFS, held against the compiled sensorData steps on the same files: the same values,
//! the same bytes received and sent.

mod support;

use std::path::PathBuf;

use arrow::array::{Array, DictionaryArray, Float64Array, Int8Array, StringArray};
use arrow::datatypes::Int32Type;
use arrow::record_batch::RecordBatch;
use pqmigrate_sensor_steps::generate_file;
use serde_json::Value;
use support::*;

const SCHEMA: &str = "sensorData";
const FILES: u64 = 4;

fn migrations_dir() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/sql-migrations")
        .display()
        .to_string()
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| panic!("{name} has another type"))
}

#[test]
fn the_stock_binary_migrates_with_sql_files_as_the_compiled_steps_do() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // One bucket a side, so each side's runs have their own journals.
    let (store, bucket) = rt.block_on(new_bucket("sql-steps"));
    let (rust_store, rust_bucket) = rt.block_on(new_bucket("rust-steps"));
    let spec = small_spec();
    rt.block_on(async {
        for i in 0..FILES {
            let data = generate_file(&spec, i);
            for (store, side) in [(&store, "sql"), (&rust_store, "rust")] {
                let key = format!("{side}/sensorData_{i:03}.parquet");
                store.put(&key, data.clone(), &[], Default::default()).await.unwrap();
            }
        }
    });
    // A file that names a column the data set lacks is refused per schema by `plan`, before any
    // run: 4 objects, one schema.
    let bad = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(bad.path().join(SCHEMA)).unwrap();
    std::fs::write(
        bad.path().join(SCHEMA).join("V2__typo.sql"),
        "SELECT *, z * 2 AS w FROM input",
    )
    .unwrap();
    let planned = stock_cli(&[
        "plan",
        &format!("s3://{bucket}/sql/"),
        "--schema",
        SCHEMA,
        "--to",
        "2",
        "--migrations",
        &bad.path().display().to_string(),
    ]);
    assert_eq!(planned.code, 1, "{}\n{}", planned.stdout, planned.stderr);
    assert!(
        planned
            .stdout
            .contains(&format!("schema 1 of 1 ({FILES} objects at v1"))
            && planned.stdout.contains("V2__typo.sql")
            && planned.stdout.contains("z"),
        "{}",
        planned.stdout
    );

    // A copy of the example's files, edited after the run below.
    let copy = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(copy.path().join(SCHEMA)).unwrap();
    for entry in std::fs::read_dir(PathBuf::from(migrations_dir()).join(SCHEMA)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.path().join(SCHEMA).join(entry.file_name())).unwrap();
    }
    let dir = copy.path().display().to_string();

    // The stock binary knows no step of its own; the files give it both.
    let none = stock_cli(&["steps"]);
    assert!(none.stdout.contains("no steps registered"), "{}", none.stdout);
    let steps = stock_cli(&["steps", "--migrations", &dir, "--json"]);
    assert_eq!(steps.code, 0, "{}", steps.stderr);
    let steps: Value = serde_json::from_str(&steps.stdout).unwrap();
    let listed: Vec<(u64, u64)> = steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["from"].as_u64().unwrap(), s["to"].as_u64().unwrap()))
        .collect();
    assert_eq!(listed, [(1, 2), (2, 3)]);

    let sql_url = format!("s3://{bucket}/sql/");
    let by_sql = stock_cli(&[
        "run",
        &sql_url,
        "--schema",
        SCHEMA,
        "--to",
        "3",
        "--migrations",
        &dir,
        "--json",
    ]);
    assert_eq!(by_sql.code, 0, "{}\n{}", by_sql.stdout, by_sql.stderr);
    let rust_url = format!("s3://{rust_bucket}/rust/");
    let by_rust = cli(&["run", &rust_url, "--schema", SCHEMA, "--to", "3", "--json"], &[]);
    assert_eq!(by_rust.code, 0, "{}\n{}", by_rust.stdout, by_rust.stderr);
    let (by_sql, by_rust) = (json(&by_sql), json(&by_rust));
    assert_eq!(by_sql["by_status"]["migrated"], FILES, "{by_sql}");

    rt.block_on(async {
        for i in 0..FILES {
            let sql = raw_bytes(&store, &format!("sql/sensorData_{i:03}.parquet")).await;
            let rust = raw_bytes(&rust_store, &format!("rust/sensorData_{i:03}.parquet")).await;
            assert_eq!(footer_version(&sql, "schema:sensorData:version"), Some(3));
            let (sql, rust) = (read_all(&sql), read_all(&rust));
            let names = |b: &RecordBatch| b.schema().fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>();
            assert_eq!(names(&sql), names(&rust), "the same columns, in the same order");
            for field in rust.schema().fields() {
                assert_eq!(
                    sql.schema().field_with_name(field.name()).unwrap().data_type(),
                    field.data_type(),
                    "{}",
                    field.name()
                );
            }
            assert_eq!(
                column::<Int8Array>(&sql, "quadrant"),
                column::<Int8Array>(&rust, "quadrant")
            );
            assert_eq!(
                column::<StringArray>(&sql, "sensor_kind"),
                column::<StringArray>(&rust, "sensor_kind")
            );
            assert_eq!(
                column::<DictionaryArray<Int32Type>>(&sql, "device_id"),
                column::<DictionaryArray<Int32Type>>(&rust, "device_id")
            );
            // Every value of every column, the computed floats to the bit.
            for field in rust.schema().fields() {
                assert_eq!(
                    sql.column_by_name(field.name()).unwrap().to_data(),
                    rust.column_by_name(field.name()).unwrap().to_data(),
                    "{}",
                    field.name()
                );
            }
            for name in ["magnitude", "angle", "x_norm"] {
                let (a, b) = (column::<Float64Array>(&sql, name), column::<Float64Array>(&rust, name));
                let bits = |c: &Float64Array| c.iter().map(|v| v.map(f64::to_bits)).collect::<Vec<_>>();
                assert_eq!(bits(a), bits(b), "{name}");
            }
        }
    });

    for field in ["received", "sent", "copied", "rows", "appended", "streamed"] {
        assert_eq!(
            by_sql[field], by_rust[field],
            "{field}: SQL {by_sql} against Rust {by_rust}"
        );
    }
    // Unedited, the files are what the runs recorded.
    let clean = stock_cli(&["validate", &sql_url, "--schema", SCHEMA, "--migrations", &dir]);
    assert_eq!(clean.code, 0, "{}\n{}", clean.stdout, clean.stderr);

    // The file that migrated those objects is edited: status and validate name it, and the next
    // run refuses before it writes anything, until told to go on.
    let file = copy.path().join(SCHEMA).join("V2__add_features.sql");
    let edited = std::fs::read_to_string(&file)
        .unwrap()
        .replace("atan2(y, x)", "atan2(x, y)");
    std::fs::write(&file, edited).unwrap();
    let bucket_url = format!("s3://{bucket}");
    let status = stock_cli(&["status", &bucket_url, "--migrations", &dir]);
    assert!(
        status
            .stderr
            .contains(&format!("{FILES} objects were migrated by step sensorData 1->2"))
            && status.stderr.contains("V2__add_features.sql now has fingerprint"),
        "{}\n{}",
        status.stdout,
        status.stderr
    );
    let validate = stock_cli(&["validate", &sql_url, "--schema", SCHEMA, "--migrations", &dir]);
    assert_eq!(validate.code, 1, "{}\n{}", validate.stdout, validate.stderr);
    assert!(
        validate
            .stdout
            .contains("V2__add_features.sql: changed since earlier runs applied it"),
        "{}",
        validate.stdout
    );
    let refused = stock_cli(&["run", &sql_url, "--schema", SCHEMA, "--to", "3", "--migrations", &dir]);
    assert_eq!(refused.code, 2, "{}\n{}", refused.stdout, refused.stderr);
    assert!(
        refused
            .stderr
            .contains("migration files changed since earlier runs applied them")
            && refused.stderr.contains("V2__add_features.sql"),
        "{}",
        refused.stderr
    );
    let accepted = stock_cli(&[
        "run",
        &sql_url,
        "--schema",
        SCHEMA,
        "--to",
        "3",
        "--migrations",
        &dir,
        "--accept-changed-migrations",
        "--json",
    ]);
    assert_eq!(accepted.code, 0, "{}\n{}", accepted.stdout, accepted.stderr);
    assert_eq!(json(&accepted)["by_status"]["at_target"], FILES, "{}", accepted.stdout);
}

#[test]
fn refused_files_and_clashing_steps_are_named_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let schema_dir = dir.path().join(SCHEMA);
    std::fs::create_dir_all(&schema_dir).unwrap();
    let path = dir.path().display().to_string();
    let cases = [
        ("SELECT *, count(x) AS n FROM input", "the aggregate count is refused"),
        ("SELECT * FROM input JOIN other ON input.x = other.x", "JOIN is refused"),
        (
            "SELECT *, sum(x) OVER () AS s FROM input",
            "the window function sum is refused",
        ),
        ("SELECT * FROM input WHERE x > 0", "WHERE is refused"),
        ("SELECT *, random() AS r FROM input", "random() is refused"),
        ("SELECT *, (x + y AS broken FROM input", "does not parse"),
    ];
    for (text, says) in cases {
        std::fs::write(schema_dir.join("V2__bad.sql"), text).unwrap();
        let out = stock_cli(&["steps", "--migrations", &path]);
        assert_eq!(out.code, 2, "{text}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("{SCHEMA}/V2__bad.sql")) && out.stderr.contains(says),
            "{text}: {}",
            out.stderr
        );
    }
    // A file for a step the binary has compiled in: two steps leave version 1.
    std::fs::write(schema_dir.join("V2__bad.sql"), "SELECT * FROM input").unwrap();
    let out = cli(&["steps", "--migrations", &path], &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("two steps leave sensorData version 1") && out.stderr.contains("V2__bad.sql"),
        "{}",
        out.stderr
    );
}
