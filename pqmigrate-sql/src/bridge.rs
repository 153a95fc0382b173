//! The bridge between the workspace's Arrow and the one DataFusion is built on: Arrow IPC
//! stream bytes, written by one and read by the other (the C Data Interface would need
//! `unsafe`). Only the columns a migration computes from cross, each way once a batch.

use std::io::Cursor;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use arrow59::ipc::reader::StreamReader as Reader59;
use arrow59::ipc::writer::StreamWriter as Writer59;

/// Arrow's types on DataFusion's side.
pub(crate) mod df {
    pub(crate) use arrow59::array::{ArrayRef, RecordBatch};
    pub(crate) use arrow59::datatypes::{Schema, SchemaRef};
}

type Result<T> = std::result::Result<T, String>;

fn to_bytes(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut writer =
        arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema()).map_err(|e| e.to_string())?;
    writer.write(batch).map_err(|e| e.to_string())?;
    writer.into_inner().map_err(|e| e.to_string())
}

/// A batch of the workspace's Arrow as DataFusion's.
pub(crate) fn batch_to_df(batch: &RecordBatch) -> Result<df::RecordBatch> {
    let bytes = to_bytes(batch)?;
    let mut reader = Reader59::try_new(Cursor::new(bytes), None).map_err(|e| e.to_string())?;
    match reader.next() {
        Some(batch) => batch.map_err(|e| e.to_string()),
        None => Err("the IPC stream held no batch".into()),
    }
}

/// A schema of the workspace's Arrow as DataFusion's.
pub(crate) fn schema_to_df(schema: &Schema) -> Result<df::SchemaRef> {
    let empty = RecordBatch::new_empty(Arc::new(schema.clone()));
    let bytes = to_bytes(&empty)?;
    Ok(Reader59::try_new(Cursor::new(bytes), None)
        .map_err(|e| e.to_string())?
        .schema())
}

/// A batch of DataFusion's Arrow as the workspace's.
pub(crate) fn batch_from_df(batch: &df::RecordBatch) -> Result<RecordBatch> {
    let mut writer = Writer59::try_new(Vec::new(), &batch.schema()).map_err(|e| e.to_string())?;
    writer.write(batch).map_err(|e| e.to_string())?;
    let bytes = writer.into_inner().map_err(|e| e.to_string())?;
    let mut reader = arrow_ipc::reader::StreamReader::try_new(Cursor::new(bytes), None).map_err(|e| e.to_string())?;
    match reader.next() {
        Some(batch) => batch.map_err(|e| e.to_string()),
        None => Err("the IPC stream held no batch".into()),
    }
}

/// A schema of DataFusion's Arrow as the workspace's.
pub(crate) fn schema_from_df(schema: &df::Schema) -> Result<SchemaRef> {
    let empty = df::RecordBatch::new_empty(Arc::new(schema.clone()));
    Ok(batch_from_df(&empty)?.schema())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, DictionaryArray, Float64Array, types::Int32Type};

    #[test]
    fn batches_cross_both_ways_unchanged() {
        let dict: DictionaryArray<Int32Type> = vec![Some("a"), None, Some("a")].into_iter().collect();
        let batch = RecordBatch::try_from_iter([
            (
                "x",
                Arc::new(Float64Array::from(vec![Some(1.5), None, Some(-0.0)])) as ArrayRef,
            ),
            ("d", Arc::new(dict) as ArrayRef),
        ])
        .unwrap();
        let there = batch_to_df(&batch).unwrap();
        assert_eq!(there.num_rows(), 3);
        let back = batch_from_df(&there).unwrap();
        assert_eq!(back, batch);
        let schema = schema_from_df(&schema_to_df(&batch.schema()).unwrap()).unwrap();
        assert_eq!(schema, batch.schema());
    }
}
