//! Step wrappers for the tests.

use arrow::record_batch::RecordBatch;
use bytes::Bytes;

/// Hides a step's column use, forcing the full decode-and-encode path.
pub struct Opaque(pub &'static dyn pqmigrate::Migration);

impl pqmigrate::Migration for Opaque {
    fn output_schema(
        &self,
        input: &arrow::datatypes::SchemaRef,
    ) -> Result<arrow::datatypes::SchemaRef, pqmigrate::StepError> {
        self.0.output_schema(input)
    }
    fn transform(
        &self,
        batch: RecordBatch,
        output: &arrow::datatypes::SchemaRef,
    ) -> Result<RecordBatch, pqmigrate::StepError> {
        self.0.transform(batch, output)
    }
}

/// The sensor step 1->2 without its column declaration.
pub static OPAQUE_ADD: Opaque = Opaque(&pqmigrate_sensor_steps::AddFeatures);
/// The sensor step 2->3 without its column declaration.
pub static OPAQUE_RENAME: Opaque = Opaque(&pqmigrate_sensor_steps::RenameAndEncode);

/// A sensorData step `from -> from + 1` running `migration`, registered by a test.
pub fn sensor_step(from: u32, migration: &'static dyn pqmigrate::Migration) -> pqmigrate::StepRegistration {
    pqmigrate::StepRegistration {
        schema: pqmigrate_sensor_steps::SCHEMA,
        from,
        to: from + 1,
        name: "test",
        revision: "",
        crate_id: "tests",
        migration,
    }
}

/// A file's metadata with its page index, which must be there.
pub fn page_indexed_metadata(data: &Bytes) -> parquet::file::metadata::ParquetMetaData {
    parquet::file::metadata::ParquetMetaDataReader::new()
        .with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Required)
        .parse_and_finish(data)
        .unwrap()
}
