//! Sample data and independent read-back of what a run wrote.

use arrow::array::{Array, Float64Array};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use pqmigrate::Store;
use pqmigrate::rewrite::Footer;
use pqmigrate::store::ReadOptions;
use pqmigrate_sensor_steps::DataSpec;

/// A small sensorData file (3 row groups).
pub fn small_spec() -> DataSpec {
    DataSpec {
        rows: 2_500,
        row_group_rows: 1_000,
        seed: 42,
    }
}

/// Reads an object's bytes.
pub async fn raw_bytes(store: &Store, key: &str) -> Bytes {
    store.get(key, ReadOptions::default()).await.unwrap().1
}

/// Reads a specific version's bytes.
pub async fn version_bytes(store: &Store, key: &str, version: &str) -> Bytes {
    let options = ReadOptions {
        version_id: Some(version.to_string()),
        ..ReadOptions::default()
    };
    store.get(key, options).await.unwrap().1
}

/// All rows of a Parquet file as one batch.
pub fn read_all(data: &Bytes) -> RecordBatch {
    let reader = ParquetRecordBatchReaderBuilder::try_new(data.clone())
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

/// A float64 column by name.
pub fn floats(batch: &RecordBatch, name: &str) -> Float64Array {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("column {name} missing"))
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap_or_else(|| panic!("column {name} is not float64"))
        .clone()
}

/// The footer version of a file.
pub fn footer_version(data: &Bytes, version_key: &str) -> Option<u32> {
    Footer::parse("x", data).unwrap().version("x", version_key).unwrap()
}

/// Asserts the 1->2 features of `migrated` match a recomputation from `original`'s x and y.
pub fn assert_features_match(original: &RecordBatch, migrated: &RecordBatch) {
    assert_eq!(original.num_rows(), migrated.num_rows());
    let (x, y) = (floats(original, "x"), floats(original, "y"));
    let (m, a, n) = (
        floats(migrated, "magnitude"),
        floats(migrated, "angle"),
        floats(migrated, "x_norm"),
    );
    for i in 0..x.len() {
        if x.is_null(i) || y.is_null(i) {
            assert!(
                m.is_null(i) && a.is_null(i) && n.is_null(i),
                "row {i}: null in, null out"
            );
            continue;
        }
        let (xv, yv) = (x.value(i), y.value(i));
        assert_eq!(m.value(i), (xv * xv + yv * yv).sqrt(), "magnitude row {i}");
        assert_eq!(a.value(i), yv.atan2(xv), "angle row {i}");
        if (xv * xv + yv * yv).sqrt() == 0.0 {
            assert!(n.is_null(i), "x_norm null at magnitude 0, row {i}");
        } else {
            assert_eq!(n.value(i), xv / (xv * xv + yv * yv).sqrt(), "x_norm row {i}");
        }
    }
}
