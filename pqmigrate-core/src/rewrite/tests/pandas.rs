use arrow_schema::{DataType, Field, Schema, TimeUnit};
use serde_json::{Value, json};

use crate::rewrite::pandas::updated;

fn input() -> Schema {
    Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("device_id", DataType::LargeUtf8, true),
        Field::new("sensor_type", DataType::LargeUtf8, true),
        Field::new("x", DataType::Float64, true),
        Field::new("gone", DataType::Int64, true),
    ])
}

fn entry(name: &str, pandas_type: &str, numpy_type: &str, metadata: Value) -> Value {
    json!({ "name": name, "field_name": name, "pandas_type": pandas_type, "numpy_type": numpy_type, "metadata": metadata })
}

fn written_by(library: &str) -> String {
    json!({
        "index_columns": [{ "kind": "range", "name": null, "start": 0, "stop": 10, "step": 1 }],
        "columns": [
            entry("ts", "datetimetz", "datetime64[us]", json!({ "timezone": "UTC" })),
            entry("device_id", "object", "str", Value::Null),
            entry("sensor_type", "object", "str", Value::Null),
            entry("x", "float64", "float64", Value::Null),
            entry("gone", "int64", "int64", Value::Null),
        ],
        "creator": { "library": library, "version": "1" },
        "pandas_version": "3.1.1",
    })
    .to_string()
}

/// The sensor steps' shape of change: a column renamed, one re-typed, one dropped, new ones.
fn output() -> (Schema, Vec<Option<usize>>) {
    let schema = Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new(
            "device_id",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            true,
        ),
        Field::new("sensor_kind", DataType::LargeUtf8, true),
        Field::new("x", DataType::Float64, true),
        Field::new("magnitude", DataType::Float64, true),
        Field::new("quadrant", DataType::Int8, true),
        Field::new("flag", DataType::Boolean, false),
        Field::new("label", DataType::Utf8, true),
    ]);
    (schema, vec![Some(0), None, Some(2), Some(3), None, None, None, None])
}

fn columns(pandas: &str) -> Vec<Value> {
    let metadata: Value = serde_json::from_str(pandas).unwrap();
    metadata["columns"].as_array().unwrap().clone()
}

#[test]
fn lists_the_output_columns_as_pyarrow_would() {
    let (output, sources) = output();
    let pandas = updated(&written_by("pyarrow"), &input(), &output, &sources).unwrap();
    assert_eq!(
        columns(&pandas),
        [
            entry("ts", "datetimetz", "datetime64[us]", json!({ "timezone": "UTC" })),
            entry("device_id", "object", "str", Value::Null),
            entry("sensor_kind", "object", "str", Value::Null),
            entry("x", "float64", "float64", Value::Null),
            entry("magnitude", "float64", "float64", Value::Null),
            entry("quadrant", "int8", "Int8", Value::Null),
            entry("flag", "bool", "bool", Value::Null),
            entry("label", "object", "str", Value::Null),
        ]
    );
    let metadata: Value = serde_json::from_str(&pandas).unwrap();
    assert_eq!(metadata["index_columns"][0]["stop"], 10, "the rest is kept");
    assert_eq!(metadata["pandas_version"], "3.1.1");
}

#[test]
fn a_fastparquet_file_gets_fastparquet_names_for_nullable_types() {
    let (output, sources) = output();
    let pandas = updated(&written_by("fastparquet"), &input(), &output, &sources).unwrap();
    assert_eq!(columns(&pandas)[5], entry("quadrant", "Int8", "int8", Value::Null));
}

#[test]
fn an_entry_it_cannot_read_is_left_to_the_caller() {
    let (output, sources) = output();
    assert_eq!(updated("not json", &input(), &output, &sources), None);
    assert_eq!(updated("{\"columns\": 3}", &input(), &output, &sources), None);
}
