//! The fused rewrite of one Parquet file through a chain of steps (synchronous, CPU-bound).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::metadata::{KeyValue, ParquetMetaDataReader};
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};
use crate::migration::StepRegistration;
use crate::version::parse_version;

/// Footer key under which the writer records which steps produced the file.
pub const STEPS_FOOTER_KEY: &str = "pqmigrate:steps";
const ARROW_SCHEMA_KEY: &str = "ARROW:schema";

/// A parsed Parquet footer, ready for [`rewrite`].
#[derive(Debug, Clone)]
pub struct Footer {
    meta: ArrowReaderMetadata,
}

impl Footer {
    /// Parses the footer of `data`.
    ///
    /// # Errors
    /// [`Error::NotParquet`] naming `key` when `data` is not a readable Parquet file.
    pub fn parse(key: &str, data: &Bytes) -> Result<Self> {
        let meta = ArrowReaderMetadata::load(data, ArrowReaderOptions::new()).map_err(|source| Error::NotParquet {
            key: key.to_string(),
            source,
        })?;
        Ok(Self { meta })
    }

    /// Parses a footer from the tail of a Parquet object: the Thrift metadata followed by its
    /// 4-byte length and `PAR1` (as [`crate::read_footer`] fetches it with one ranged read).
    ///
    /// # Errors
    /// [`Error::NotParquet`] naming `key`.
    pub fn parse_tail(key: &str, tail: Bytes) -> Result<Self> {
        let not_parquet = |source| Error::NotParquet {
            key: key.to_string(),
            source,
        };
        let body = tail
            .len()
            .checked_sub(8)
            .ok_or_else(|| not_parquet(ParquetError::General("footer too short".into())))?;
        let metadata = ParquetMetaDataReader::decode_metadata(&tail[..body]).map_err(not_parquet)?;
        let meta = ArrowReaderMetadata::try_new(Arc::new(metadata), ArrowReaderOptions::new()).map_err(not_parquet)?;
        Ok(Self { meta })
    }

    /// The footer's key-value metadata keys.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.meta
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .into_iter()
            .flatten()
            .map(|kv| kv.key.as_str())
    }

    /// The value of a footer key-value entry.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.meta
            .metadata()
            .file_metadata()
            .key_value_metadata()?
            .iter()
            .find(|kv| kv.key == name)
            .and_then(|kv| kv.value.as_deref())
    }

    /// The version recorded in the footer under `version_key`, if any.
    ///
    /// # Errors
    /// [`Error::BadVersion`] when the value is not a positive integer.
    pub fn version(&self, key: &str, version_key: &str) -> Result<Option<u32>> {
        self.value(version_key)
            .map(|v| parse_version(key, version_key, "footer", v))
            .transpose()
    }

    /// The file's Arrow schema.
    pub fn schema(&self) -> &SchemaRef {
        self.meta.schema()
    }

    /// Total rows in the file.
    pub fn num_rows(&self) -> i64 {
        self.meta.metadata().file_metadata().num_rows()
    }
}

/// What [`rewrite`] produced.
#[derive(Debug)]
pub struct Rewritten {
    /// The new file.
    pub data: Bytes,
    /// Rows written (equal to rows read).
    pub rows: u64,
    /// Row groups written (equal to row groups read).
    pub row_groups: usize,
}

/// Streams `data` row group by row group through every step of `chain` and writes one new file
/// with the same row groups, the input's footer key-value metadata, and `version_key =
/// new_version`. Each step's output is checked against the schema it declared and the input
/// row count; a panicking step is contained and reported.
///
/// # Errors
/// [`Error::Step`], [`Error::StepPanicked`], [`Error::StepContract`], [`Error::NotParquet`] for
/// undecodable pages, [`Error::Write`] for encoder failures. All name `key`.
pub fn rewrite(
    key: &str,
    data: Bytes,
    footer: &Footer,
    chain: &[StepRegistration],
    version_key: &str,
    new_version: u32,
) -> Result<Rewritten> {
    let schemas = output_schemas(key, footer.schema(), chain)?;
    let output_schema = schemas.last().cloned().unwrap_or_else(|| footer.schema().clone());
    let metadata = footer.meta.metadata();
    let row_group_rows: Vec<usize> = metadata.row_groups().iter().map(|rg| rg.num_rows() as usize).collect();
    let max_rows = row_group_rows.iter().copied().max().unwrap_or(1).max(1);

    let mut writer = ArrowWriter::try_new(
        Vec::with_capacity(data.len() + data.len() / 4),
        output_schema.clone(),
        Some(writer_properties(footer, max_rows)),
    )
    .map_err(|source| Error::Write {
        key: key.to_string(),
        source,
    })?;
    for kv in metadata.file_metadata().key_value_metadata().into_iter().flatten() {
        if kv.key != ARROW_SCHEMA_KEY && kv.key != version_key && kv.key != STEPS_FOOTER_KEY {
            writer.append_key_value_metadata(kv.clone());
        }
    }
    writer.append_key_value_metadata(KeyValue::new(version_key.to_string(), new_version.to_string()));
    writer.append_key_value_metadata(KeyValue::new(STEPS_FOOTER_KEY.to_string(), steps_record(footer, chain)));

    let mut rows = 0u64;
    for (index, expected_rows) in row_group_rows.iter().copied().enumerate() {
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(data.clone(), footer.meta.clone())
            .with_row_groups(vec![index])
            .with_batch_size(expected_rows.clamp(1, 65_536))
            .build()
            .map_err(|source| Error::NotParquet {
                key: key.to_string(),
                source,
            })?;
        let mut got_rows = 0usize;
        for batch in reader {
            let batch = batch.map_err(|e| Error::NotParquet {
                key: key.to_string(),
                source: ParquetError::General(format!("row group {index}: {e}")),
            })?;
            got_rows += batch.num_rows();
            let out = apply_chain(key, batch, chain, &schemas)?;
            writer.write(&out).map_err(|source| Error::Write {
                key: key.to_string(),
                source,
            })?;
        }
        if got_rows != expected_rows {
            return Err(Error::NotParquet {
                key: key.to_string(),
                source: ParquetError::General(format!(
                    "row group {index} decoded {got_rows} rows, footer says {expected_rows}"
                )),
            });
        }
        rows += got_rows as u64;
        writer.flush().map_err(|source| Error::Write {
            key: key.to_string(),
            source,
        })?;
    }
    let data = writer.into_inner().map_err(|source| Error::Write {
        key: key.to_string(),
        source,
    })?;
    Ok(Rewritten {
        data: Bytes::from(data),
        rows,
        row_groups: row_group_rows.len(),
    })
}

/// Each step's declared output schema, in chain order.
fn output_schemas(key: &str, input: &SchemaRef, chain: &[StepRegistration]) -> Result<Vec<SchemaRef>> {
    let mut schemas = Vec::with_capacity(chain.len());
    let mut current = input.clone();
    for step in chain {
        let next = guard(key, step, || step.migration.output_schema(&current)).map_err(|e| match e {
            Error::Step { key, step, message } => Error::Step {
                key,
                step,
                message: format!("cannot migrate schema: {message}"),
            },
            other => other,
        })?;
        schemas.push(next.clone());
        current = next;
    }
    Ok(schemas)
}

fn apply_chain(
    key: &str,
    mut batch: RecordBatch,
    chain: &[StepRegistration],
    schemas: &[SchemaRef],
) -> Result<RecordBatch> {
    for (step, expected) in chain.iter().zip(schemas) {
        let rows = batch.num_rows();
        let out = guard(key, step, || step.migration.transform(batch, expected))?;
        if out.num_rows() != rows {
            return Err(contract(
                key,
                step,
                format!("returned {} rows for {rows} input rows", out.num_rows()),
            ));
        }
        let got = out.schema();
        let same = got.fields().len() == expected.fields().len()
            && got
                .fields()
                .iter()
                .zip(expected.fields())
                .all(|(g, e)| g.name() == e.name() && g.data_type() == e.data_type());
        if !same {
            return Err(contract(
                key,
                step,
                format!("returned schema {got} but declared {expected}"),
            ));
        }
        batch = RecordBatch::try_new(expected.clone(), out.columns().to_vec())
            .map_err(|e| contract(key, step, e.to_string()))?;
    }
    Ok(batch)
}

/// Runs a step callback, turning its error or panic into a per-object error.
fn guard<T>(key: &str, step: &StepRegistration, f: impl FnOnce() -> Result<T, crate::StepError>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Error::Step {
            key: key.to_string(),
            step: step.id(),
            message: error_chain(e.as_ref()),
        }),
        Err(payload) => Err(Error::StepPanicked {
            key: key.to_string(),
            step: step.id(),
            message: panic_message(payload.as_ref()),
        }),
    }
}

fn contract(key: &str, step: &StepRegistration, message: String) -> Error {
    Error::StepContract {
        key: key.to_string(),
        step: step.id(),
        message,
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_string())
}

/// Writer settings that keep the input's codec and row group sizes.
fn writer_properties(footer: &Footer, max_rows: usize) -> WriterProperties {
    let compression = footer
        .meta
        .metadata()
        .row_groups()
        .first()
        .and_then(|rg| rg.columns().first())
        .map(|c| c.compression())
        .unwrap_or(Compression::SNAPPY);
    WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(max_rows))
        .set_created_by(format!("pqmigrate version {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The steps that produced a file: earlier ones from the input's footer, then this chain's.
fn steps_record(footer: &Footer, chain: &[StepRegistration]) -> String {
    let mut steps: Vec<String> = footer
        .value(STEPS_FOOTER_KEY)
        .map(|s| s.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    steps.extend(chain.iter().map(|s| format!("{}:{}->{}", s.schema, s.from, s.to)));
    steps.join(",")
}
