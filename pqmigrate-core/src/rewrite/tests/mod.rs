//! Unit tests of the rewrite's parts, one file a part, over small files built here.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::{ArrayRef, Int64Array, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use crate::migration::{ColumnUse, Migration, StepError, StepRegistration};

mod contract;
mod footer;
mod pandas;
mod ranges;
mod renames;
mod row_group;

const VERSION_KEY: &str = "schema:s:version";

/// A file with columns `a` (Int64) and `name` (Utf8), `row_groups` row groups of 3 rows.
fn file(row_groups: usize) -> Bytes {
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
    ]));
    let props = WriterProperties::builder().set_max_row_group_row_count(Some(3)).build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema.clone(), Some(props)).unwrap();
    for g in 0..row_groups as i64 {
        let a = Arc::new(Int64Array::from(vec![g * 3, g * 3 + 1, g * 3 + 2])) as ArrayRef;
        let name = Arc::new(StringArray::from(vec!["x", "y", "z"])) as ArrayRef;
        writer
            .write(&RecordBatch::try_new(schema.clone(), vec![a, name]).unwrap())
            .unwrap();
    }
    writer.append_key_value_metadata(parquet::file::metadata::KeyValue::new(
        "owner".into(),
        "ops".to_string(),
    ));
    writer.close().unwrap();
    Bytes::from(out)
}

fn batches(data: &Bytes) -> Vec<RecordBatch> {
    parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(data.clone(), 1024)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn column_i64(data: &Bytes, name: &str) -> Vec<i64> {
    batches(data)
        .iter()
        .flat_map(|b| {
            let column = b.column_by_name(name).unwrap();
            column.as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec()
        })
        .collect()
}

fn registration(migration: &'static dyn Migration, name: &'static str) -> StepRegistration {
    StepRegistration {
        schema: "s",
        from: 1,
        to: 2,
        name,
        revision: "",
        crate_id: "test",
        migration,
    }
}

/// Adds `double = a * 2`, reading only `a`.
struct Double;

impl Migration for Double {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef, StepError> {
        input.field_with_name("a").map_err(|_| "column a is missing")?;
        let mut fields = input.fields().to_vec();
        fields.push(Arc::new(Field::new("double", DataType::Int64, true)));
        Ok(Arc::new(Schema::new(fields)))
    }
    fn transform(&self, batch: RecordBatch, output: &SchemaRef) -> Result<RecordBatch, StepError> {
        let a = batch.column_by_name("a").ok_or("column a is missing")?;
        let a = a.as_any().downcast_ref::<Int64Array>().ok_or("a is not Int64")?;
        let double: Int64Array = a.iter().map(|v| v.map(|v| v * 2)).collect();
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(double));
        Ok(RecordBatch::try_new(output.clone(), columns)?)
    }
    fn column_use(&self) -> ColumnUse {
        ColumnUse::Declared {
            reads: &["a"],
            writes: &["double"],
        }
    }
}

/// Breaks one rule of the contract each, as asked.
enum Broken {
    Panics,
    DropsARow,
    OtherSchema,
    RefusesTheSchema,
}

impl Migration for Broken {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef, StepError> {
        match self {
            Broken::RefusesTheSchema => Err("column b is missing".into()),
            _ => Ok(input.clone()),
        }
    }
    fn transform(&self, batch: RecordBatch, _: &SchemaRef) -> Result<RecordBatch, StepError> {
        match self {
            Broken::Panics => panic!("the step fell over"),
            Broken::DropsARow => Ok(batch.slice(0, batch.num_rows() - 1)),
            Broken::OtherSchema => Ok(batch.project(&[0])?),
            Broken::RefusesTheSchema => unreachable!(),
        }
    }
}
