//! An independent check of what the `1 -> 2` step computed: the features recomputed from a
//! file's `x` and `y` and compared value for value, for tests and for anyone checking a migrated
//! file against its original.

use arrow_array::{Array, Float64Array, RecordBatch};

/// The float64 column `name` of `batch`.
///
/// # Panics
/// When the column is missing or of another type.
pub fn floats(batch: &RecordBatch, name: &str) -> Float64Array {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("column {name} missing"))
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap_or_else(|| panic!("column {name} is not float64"))
        .clone()
}

/// Asserts that `migrated`'s `magnitude`, `angle` and `x_norm` equal a recomputation from
/// `original`'s `x` and `y`, row for row (null in, null out; `x_norm` null at magnitude 0).
///
/// # Panics
/// At the first row that differs, naming it; when a column is missing or the row counts differ.
///
/// ```
/// use pqmigrate_sensor_steps::{AddFeatures, DataSpec, assert_features_match, generate_batch};
/// use pqmigrate_core::Migration;
///
/// let original = generate_batch(&DataSpec { rows: 100, row_group_rows: 100, seed: 1 }, 0, 100);
/// let output = AddFeatures.output_schema(&original.schema()).unwrap();
/// let migrated = AddFeatures.transform(original.clone(), &output).unwrap();
/// assert_features_match(&original, &migrated);
/// ```
pub fn assert_features_match(original: &RecordBatch, migrated: &RecordBatch) {
    assert_eq!(original.num_rows(), migrated.num_rows(), "row counts");
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
        let magnitude = (xv * xv + yv * yv).sqrt();
        assert_eq!(m.value(i), magnitude, "magnitude row {i}");
        assert_eq!(a.value(i), yv.atan2(xv), "angle row {i}");
        if magnitude == 0.0 {
            assert!(n.is_null(i), "x_norm null at magnitude 0, row {i}");
        } else {
            assert_eq!(n.value(i), xv / magnitude, "x_norm row {i}");
        }
    }
}
