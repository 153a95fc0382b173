//! What this workspace's tests and benches need beyond the public API (feature
//! `test-support`): the crate's own row-group rewriter and its inputs, raw S3 requests for
//! checking what a run left on a server, the fault injector, and small fixtures shared by every
//! suite. Nothing here is kept stable; an embedder has no use for it.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};

use crate::migration::{Migration, StepError, StepRegistration};

pub use crate::rewrite::ranges::FileRanges;
pub use crate::rewrite::row_group::RowGroupRewriter;
pub use crate::rewrite::target::RewriteTarget;
pub use crate::store::fault;
#[cfg(feature = "s3")]
pub use crate::store::s3::S3Api;
pub use crate::transfer::probe::probe;

/// All rows of a Parquet file as one batch, read by the `parquet` crate alone.
///
/// # Panics
/// When `data` is not a readable Parquet file: a test's failure.
pub fn read_all(data: &Bytes) -> RecordBatch {
    let builder = ParquetRecordBatchReaderBuilder::try_new(data.clone()).expect("a Parquet file");
    let rows = usize::try_from(builder.metadata().file_metadata().num_rows()).expect("row count");
    let schema = builder.schema().clone();
    let mut batches = builder.with_batch_size(rows.max(1)).build().expect("a reader");
    match batches.next() {
        Some(batch) => {
            assert!(batches.next().is_none(), "one batch holds every row");
            batch.expect("readable rows")
        }
        None => RecordBatch::new_empty(schema),
    }
}

/// The version `version_key` records in a file's footer.
///
/// # Panics
/// When the footer cannot be read or the value is not a version.
pub fn footer_version(data: &Bytes, version_key: &str) -> Option<u32> {
    let footer = crate::rewrite::Footer::parse("file", data).expect("a Parquet footer");
    footer.version("file", version_key).expect("a version")
}

/// A file's metadata with its page index, which must be there.
///
/// # Panics
/// When the footer or the page index cannot be read.
pub fn page_indexed_metadata(data: &Bytes) -> ParquetMetaData {
    ParquetMetaDataReader::new()
        .with_page_index_policy(PageIndexPolicy::Required)
        .parse_and_finish(data)
        .expect("a footer with its page index")
}

/// Hides a step's column use, forcing the full decode-and-encode path.
pub struct Opaque(pub &'static dyn Migration);

impl Migration for Opaque {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef, StepError> {
        self.0.output_schema(input)
    }
    fn transform(&self, batch: RecordBatch, output: &SchemaRef) -> Result<RecordBatch, StepError> {
        self.0.transform(batch, output)
    }
}

/// A step `from -> from + 1` of `schema` running `migration`, registered by a test rather than
/// through `inventory`.
pub fn test_step(schema: &'static str, from: u32, migration: &'static dyn Migration) -> StepRegistration {
    StepRegistration {
        schema,
        from,
        to: from + 1,
        name: "test",
        revision: "",
        crate_id: "tests",
        migration,
    }
}
