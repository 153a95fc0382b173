use std::sync::Arc;

use arrow_arith::arity::binary;
use arrow_array::RecordBatch;
use arrow_array::types::Int32Type;
use arrow_array::{Array, ArrayRef, DictionaryArray, Float64Array, Int8Array, StringArray};
use arrow_cast::cast;
use arrow_ord::cmp::eq;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use arrow_select::nullif::nullif;
use parquet::file::properties::WriterPropertiesBuilder;
use parquet::schema::types::ColumnPath;
use pqmigrate_core::{ColumnUse, Migration, StepError, register_step};

/// The schema id of the data set.
pub const SCHEMA: &str = "sensorData";

/// Step 1 -> 2: four features computed from `x` and `y`.
#[derive(Debug, Clone, Copy)]
pub struct AddFeatures;

/// Step 2 -> 3: `sensor_type` renamed to `sensor_kind`, `device_id` dictionary-encoded.
#[derive(Debug, Clone, Copy)]
pub struct RenameAndEncode;

register_step!(SCHEMA, 1 => 2, AddFeatures);
register_step!(SCHEMA, 2 => 3, RenameAndEncode);

const FEATURES: [&str; 4] = ["magnitude", "angle", "x_norm", "quadrant"];

fn float_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a Float64Array, StepError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| format!("input column {name:?} is missing"))?
        .as_any()
        .downcast_ref::<Float64Array>()
        .ok_or_else(|| format!("input column {name:?} is not float64").into())
}

fn require(input: &Schema, name: &str, ok: impl Fn(&DataType) -> bool, want: &str) -> Result<(), StepError> {
    let field = input
        .field_with_name(name)
        .map_err(|_| format!("input column {name:?} is missing"))?;
    if ok(field.data_type()) {
        Ok(())
    } else {
        Err(format!("input column {name:?} is {} but must be {want}", field.data_type()).into())
    }
}

/// Quadrant of a point: 1 for x>=0,y>=0; 2 for x<0,y>=0; 3 for x<0,y<0; 4 for x>=0,y<0.
pub fn quadrant(x: f64, y: f64) -> i8 {
    match (x >= 0.0, y >= 0.0) {
        (true, true) => 1,
        (false, true) => 2,
        (false, false) => 3,
        (true, false) => 4,
    }
}

impl Migration for AddFeatures {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef, StepError> {
        for name in ["x", "y"] {
            require(input, name, |t| *t == DataType::Float64, "float64")?;
        }
        for name in FEATURES {
            if input.field_with_name(name).is_ok() {
                return Err(format!("output column {name:?} already exists").into());
            }
        }
        let mut fields: Vec<_> = input.fields().iter().cloned().collect();
        for name in &FEATURES[..3] {
            fields.push(Arc::new(Field::new(*name, DataType::Float64, true)));
        }
        fields.push(Arc::new(Field::new(FEATURES[3], DataType::Int8, true)));
        Ok(Arc::new(Schema::new_with_metadata(fields, input.metadata().clone())))
    }

    fn transform(&self, batch: RecordBatch, output: &SchemaRef) -> Result<RecordBatch, StepError> {
        let x = float_column(&batch, "x")?;
        let y = float_column(&batch, "y")?;
        // Element-wise kernels: a row is null where `x` or `y` is, with no per-row Option.
        // sqrt(x² + y²) as written, not `hypot`: the SQL form of this step computes the very
        // same bits (SQL has no `hypot`), and sensor readings are far from overflowing.
        let magnitude: Float64Array = binary(x, y, |x, y| (x * x + y * y).sqrt())?;
        let angle: Float64Array = binary(y, x, f64::atan2)?;
        let x_norm: Float64Array = binary(x, &magnitude, |x, m| x / m)?;
        let x_norm = nullif(&x_norm, &eq(&magnitude, &Float64Array::new_scalar(0.0))?)?;
        let quadrants: Int8Array = binary(x, y, quadrant)?;
        let mut columns = batch.columns().to_vec();
        columns.extend([
            Arc::new(magnitude) as ArrayRef,
            Arc::new(angle),
            x_norm,
            Arc::new(quadrants),
        ]);
        Ok(RecordBatch::try_new(output.clone(), columns)?)
    }

    fn column_use(&self) -> ColumnUse {
        ColumnUse::Declared {
            reads: &["x", "y"],
            writes: &FEATURES,
        }
    }

    /// The three float features are continuous: a dictionary would be built for every page
    /// and abandoned, so they are written plain from the start. `quadrant` keeps its
    /// dictionary (four values).
    fn writer_properties(&self, builder: WriterPropertiesBuilder) -> WriterPropertiesBuilder {
        FEATURES[..3].iter().fold(builder, |builder, name| {
            builder.set_column_dictionary_enabled(ColumnPath::from(*name), false)
        })
    }
}

fn dictionary_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

impl Migration for RenameAndEncode {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef, StepError> {
        // pandas 3 writes its strings as large_string, other writers as utf8 or utf8view.
        let text = |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
        require(input, "sensor_type", text, "a string")?;
        require(
            input,
            "device_id",
            |t| text(t) || matches!(t, DataType::Dictionary(_, _)),
            "a string",
        )?;
        if input.field_with_name("sensor_kind").is_ok() {
            return Err("output column \"sensor_kind\" already exists".into());
        }
        let fields: Vec<_> = input
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                "sensor_type" => Arc::new(f.as_ref().clone().with_name("sensor_kind")),
                "device_id" => Arc::new(f.as_ref().clone().with_data_type(dictionary_type())),
                _ => f.clone(),
            })
            .collect();
        Ok(Arc::new(Schema::new_with_metadata(fields, input.metadata().clone())))
    }

    fn transform(&self, batch: RecordBatch, output: &SchemaRef) -> Result<RecordBatch, StepError> {
        let columns = batch
            .schema()
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(field, column)| match field.name().as_str() {
                "device_id" if column.as_any().downcast_ref::<StringArray>().is_some() => {
                    let dict: DictionaryArray<Int32Type> = column
                        .as_any()
                        .downcast_ref::<StringArray>()
                        .map(|s| s.iter().collect())
                        .ok_or("device_id is not utf8")?;
                    Ok(Arc::new(dict) as ArrayRef)
                }
                "device_id" => Ok(cast(column, &dictionary_type())?),
                _ => Ok(column.clone()),
            })
            .collect::<Result<Vec<_>, StepError>>()?;
        Ok(RecordBatch::try_new(output.clone(), columns)?)
    }

    fn column_use(&self) -> ColumnUse {
        ColumnUse::Declared {
            reads: &["device_id"],
            writes: &["device_id"],
        }
    }

    /// `sensor_type` keeps its values and type: its chunks are carried over under the new
    /// name, and the rename costs only the footer.
    fn renames(&self) -> &'static [(&'static str, &'static str)] {
        &[("sensor_type", "sensor_kind")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quadrant_table() {
        let cases = [
            ((1.0, 1.0), 1),
            ((0.0, 0.0), 1),
            ((-1.0, 0.0), 2),
            ((-1.0, -1.0), 3),
            ((0.0, -1.0), 4),
            ((2.0, -0.5), 4),
        ];
        for ((x, y), q) in cases {
            assert_eq!(quadrant(x, y), q, "({x}, {y})");
        }
    }

    #[test]
    fn features_of_known_points() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Float64, true),
            Field::new("y", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Float64Array::from(vec![Some(3.0), Some(0.0), None, Some(-1.0)])),
                Arc::new(Float64Array::from(vec![Some(4.0), Some(0.0), Some(1.0), Some(-1.0)])),
            ],
        )
        .unwrap();
        let output = AddFeatures.output_schema(&schema).unwrap();
        let out = AddFeatures.transform(batch, &output).unwrap();
        let col = |n: &str| out.column_by_name(n).unwrap().clone();
        let magnitude = col("magnitude");
        let magnitude = magnitude.as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(magnitude.value(0), 5.0);
        assert_eq!(magnitude.value(1), 0.0);
        assert!(magnitude.is_null(2));
        let x_norm = col("x_norm");
        let x_norm = x_norm.as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(x_norm.value(0), 0.6);
        assert!(x_norm.is_null(1), "magnitude 0 gives null");
        assert!(x_norm.is_null(2));
        let q = col("quadrant");
        let q = q.as_any().downcast_ref::<Int8Array>().unwrap();
        assert_eq!((q.value(0), q.value(1), q.is_null(2), q.value(3)), (1, 1, true, 3));
        let angle = col("angle");
        let angle = angle.as_any().downcast_ref::<Float64Array>().unwrap();
        assert!((angle.value(3) + 3.0 * std::f64::consts::FRAC_PI_4).abs() < 1e-12);
    }

    #[test]
    fn missing_and_mistyped_inputs_are_named() {
        let no_y = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, true)]));
        let e = AddFeatures.output_schema(&no_y).unwrap_err().to_string();
        assert_eq!(e, "input column \"y\" is missing");
        let int_y = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Float64, true),
            Field::new("y", DataType::Int64, true),
        ]));
        let e = AddFeatures.output_schema(&int_y).unwrap_err().to_string();
        assert_eq!(e, "input column \"y\" is Int64 but must be float64");
    }
}
