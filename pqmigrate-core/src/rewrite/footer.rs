//! The footer of a Parquet file: its parsed metadata, where it starts, its version and the
//! steps that produced it, and the footer metadata a rewrite writes.

use std::sync::Arc;

use std::ops::Range;

use arrow_schema::{Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::add_encoded_arrow_schema_to_metadata;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::basic::Compression;
use parquet::file::metadata::{KeyValue, PageIndexPolicy};
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};
use crate::migration::StepRegistration;
use crate::version::parse_version;

use super::pandas::{self, PANDAS_KEY};
use super::read_ranges;

/// Footer key under which the writer records which steps produced the file.
pub const STEPS_FOOTER_KEY: &str = "pqmigrate:steps";
pub(super) const ARROW_SCHEMA_KEY: &str = "ARROW:schema";

/// A parsed Parquet footer, ready for [`super::rewrite`].
#[derive(Debug, Clone)]
pub struct Footer {
    pub(super) meta: ArrowReaderMetadata,
    /// Where the footer starts (the end of the data region), when known.
    pub(super) footer_start: Option<u64>,
}

impl Footer {
    /// Parses the footer of `data`.
    ///
    /// # Errors
    /// [`Error::NotParquet`] naming `key` when `data` is not a readable Parquet file.
    pub fn parse(key: &str, data: &Bytes) -> Result<Self> {
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let meta = ArrowReaderMetadata::load(data, options).map_err(|source| Error::NotParquet {
            key: key.to_string(),
            source,
        })?;
        Ok(Self {
            meta,
            footer_start: footer_start_of(data),
        })
    }

    /// Records where the footer starts, read from the file's last eight bytes.
    pub fn with_footer_start(mut self, start: u64) -> Self {
        self.footer_start = Some(start);
        self
    }

    /// Where the footer starts (the end of the data region), when known.
    pub fn footer_start(&self) -> Option<u64> {
        self.footer_start
    }

    /// Wraps metadata loaded elsewhere (for example by ranged reads).
    ///
    /// # Errors
    /// [`Error::NotParquet`] when the schema cannot be mapped to Arrow.
    pub fn from_metadata(key: &str, metadata: parquet::file::metadata::ParquetMetaData) -> Result<Self> {
        let meta = ArrowReaderMetadata::try_new(Arc::new(metadata), ArrowReaderOptions::new()).map_err(|source| {
            Error::NotParquet {
                key: key.to_string(),
                source,
            }
        })?;
        Ok(Self {
            meta,
            footer_start: None,
        })
    }

    /// Wraps metadata read from a file of `file_len` bytes, after checking it against
    /// [`super::limits`] (before anything, the Arrow schema included, is built from it).
    ///
    /// # Errors
    /// [`Error::Limit`] naming `key` and the limit, [`Error::NotParquet`] as
    /// [`Footer::from_metadata`].
    pub fn checked(key: &str, metadata: parquet::file::metadata::ParquetMetaData, file_len: u64) -> Result<Self> {
        let ranges: Vec<Range<u64>> = (0..metadata.num_row_groups())
            .flat_map(|index| read_ranges(&metadata, index))
            .collect();
        super::limits::check_footer(key, &metadata, file_len, &ranges)?;
        Self::from_metadata(key, metadata)
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

    /// The footer's key-value entries, as [`crate::version::resolve_version`] reads them.
    pub fn entries(&self) -> Vec<(&str, Option<&str>)> {
        self.meta
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .into_iter()
            .flatten()
            .map(|kv| (kv.key.as_str(), kv.value.as_deref()))
            .collect()
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

    /// Number of row groups.
    pub fn num_row_groups(&self) -> usize {
        self.meta.metadata().num_row_groups()
    }

    /// The codec of the file's first column chunk (Snappy for an empty file).
    pub fn compression(&self) -> Compression {
        self.meta
            .metadata()
            .row_groups()
            .first()
            .and_then(|rg| rg.columns().first())
            .map(|c| c.compression())
            .unwrap_or(Compression::SNAPPY)
    }

    /// The byte ranges a row group's rewrite reads: its column chunks, and any bloom filters.
    pub fn row_group_ranges(&self, index: usize) -> Vec<Range<u64>> {
        read_ranges(self.meta.metadata(), index)
    }

    /// Total rows in the file.
    pub fn num_rows(&self) -> i64 {
        self.meta.metadata().file_metadata().num_rows()
    }
}

/// The start of the footer of a file whose last eight bytes are `tail` (its metadata length and
/// magic) and whose length is `file_len`.
pub fn footer_start(file_len: u64, tail: &[u8]) -> Option<u64> {
    let tail: &[u8; 8] = tail.get(tail.len().checked_sub(8)?..)?.try_into().ok()?;
    if &tail[4..] != b"PAR1" {
        return None;
    }
    let metadata_len = u32::from_le_bytes(tail[..4].try_into().ok()?) as u64;
    file_len.checked_sub(8 + metadata_len).filter(|start| *start >= 4)
}

pub(super) fn footer_start_of(data: &Bytes) -> Option<u64> {
    footer_start(data.len() as u64, data)
}

/// The output footer's key-value metadata: the input's, with the Arrow schema of `output`, the
/// new version and the steps' record in place of theirs.
pub(super) fn footer_entries(
    footer: &Footer,
    chain: &[StepRegistration],
    output: &SchemaRef,
    sources: &[Option<usize>],
    target: (&str, u32),
) -> Vec<KeyValue> {
    let (version_key, version) = target;
    let mut entries = Vec::new();
    let mut had_arrow_schema = false;
    let input = footer.meta.metadata().file_metadata().key_value_metadata();
    for kv in input.into_iter().flatten() {
        match kv.key.as_str() {
            ARROW_SCHEMA_KEY => had_arrow_schema = true,
            key if key == version_key || key == STEPS_FOOTER_KEY => {}
            PANDAS_KEY => {
                let value = kv
                    .value
                    .as_deref()
                    .and_then(|v| pandas::updated(v, footer.schema(), output, sources));
                entries.push(value.map_or_else(|| kv.clone(), |v| KeyValue::new(PANDAS_KEY.to_string(), v)));
            }
            _ => entries.push(kv.clone()),
        }
    }
    entries.push(KeyValue::new(version_key.to_string(), version.to_string()));
    entries.push(KeyValue::new(STEPS_FOOTER_KEY.to_string(), steps_record(footer, chain)));
    // The Arrow schema goes where the input had one (its writer's convention: a file written
    // without it, as fastparquet and Spark write, is read the same way after the rewrite), with
    // the footer's entries in its own metadata, which is what Arrow readers show.
    if had_arrow_schema {
        let mut metadata = output.metadata().clone();
        metadata.extend(
            entries
                .iter()
                .filter_map(|kv| Some((kv.key.clone(), kv.value.clone()?))),
        );
        let schema = Arc::new(Schema::new_with_metadata(output.fields().clone(), metadata));
        let mut props = WriterProperties::builder().build();
        add_encoded_arrow_schema_to_metadata(&schema, &mut props);
        let encoded = props.key_value_metadata().into_iter().flatten();
        let arrow = encoded
            .filter(|kv| kv.key == ARROW_SCHEMA_KEY)
            .cloned()
            .collect::<Vec<_>>();
        entries.splice(0..0, arrow);
    }
    entries
}

/// The steps that produced a file: earlier ones from the input's footer, then this chain's.
pub(super) fn steps_record(footer: &Footer, chain: &[StepRegistration]) -> String {
    let mut steps: Vec<String> = footer
        .value(STEPS_FOOTER_KEY)
        .map(|s| s.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    steps.extend(
        chain
            .iter()
            .map(|s| format!("{}:{}->{}@{}", s.schema, s.from, s.to, s.fingerprint())),
    );
    steps.join(",")
}
