//! The fused rewrite of one Parquet file through a chain of steps (synchronous, CPU-bound).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use std::io::Write;
use std::ops::Range;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::{Buf, Bytes};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves};
use parquet::arrow::{ArrowSchemaConverter, ProjectionMask, add_encoded_arrow_schema_to_metadata};
use parquet::basic::Compression;
use parquet::bloom_filter::Sbbf;
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::ParquetError;
use parquet::file::metadata::{KeyValue, PageIndexPolicy};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{SchemaDescriptor, Type};

mod append;
mod layout;
pub mod limits;
mod verify;

pub use append::{AppendPlan, AppendRewriter, MAX_DEAD_SHARE, NotAppendable, plan_append, rewrite_appended};
use layout::decoded_schema;
pub use layout::{Layout, plan_layout, renames_hold};
use verify::CopyCheck;

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
    /// Where the footer starts (the end of the data region), when known.
    footer_start: Option<u64>,
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
    /// [`limits`] (before anything, the Arrow schema included, is built from it).
    ///
    /// # Errors
    /// [`Error::Limit`] naming `key` and the limit, [`Error::NotParquet`] as
    /// [`Footer::from_metadata`].
    pub fn checked(key: &str, metadata: parquet::file::metadata::ParquetMetaData, file_len: u64) -> Result<Self> {
        let ranges: Vec<Range<u64>> = (0..metadata.num_row_groups())
            .flat_map(|index| read_ranges(&metadata, index))
            .collect();
        limits::check_footer(key, &metadata, file_len, &ranges)?;
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

fn footer_start_of(data: &Bytes) -> Option<u64> {
    footer_start(data.len() as u64, data)
}

/// The byte ranges the rewrite of row group `index` reads: its column chunks, and any bloom
/// filters.
fn read_ranges(metadata: &parquet::file::metadata::ParquetMetaData, index: usize) -> Vec<Range<u64>> {
    let row_group = metadata.row_group(index);
    let mut chunks = row_group.columns().iter().map(|c| {
        let (start, len) = c.byte_range();
        start..start + len
    });
    let mut ranges = Vec::new();
    if let Some(first) = chunks.next() {
        ranges.push(chunks.fold(first, |all, r| all.start.min(r.start)..all.end.max(r.end)));
    }
    for column in row_group.columns() {
        if let (Some(offset), Some(length)) = (column.bloom_filter_offset(), column.bloom_filter_length()) {
            ranges.push(offset as u64..offset as u64 + length as u64);
        }
    }
    ranges
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
    /// Output columns copied as encoded chunks, without decoding.
    pub copied_columns: usize,
}

/// Rewrites a whole file held in memory through `chain`; see [`RowGroupRewriter`] for what is
/// kept and checked. Columns the steps leave untouched are copied as encoded chunks when every
/// step declares its [`ColumnUse`](crate::migration::ColumnUse).
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
    let capacity = data.len() + data.len() / 4;
    let mut rewriter = RowGroupRewriter::new(
        key,
        footer,
        chain,
        version_key,
        new_version,
        Vec::with_capacity(capacity),
    )?;
    let input = FileRanges::whole(data);
    for index in 0..footer.num_row_groups() {
        rewriter.rewrite_row_group(index, &input)?;
    }
    let copied_columns = rewriter.copied_columns();
    let (out, rows) = rewriter.finish()?;
    Ok(Rewritten {
        data: Bytes::from(out),
        rows,
        row_groups: footer.num_row_groups(),
        copied_columns,
    })
}

/// Parts of an input file, addressed by file offset: what a row group's rewrite reads.
#[derive(Debug, Clone)]
pub struct FileRanges {
    file_len: u64,
    pieces: Vec<(u64, Bytes)>,
}

impl FileRanges {
    /// The whole file.
    pub fn whole(data: Bytes) -> Self {
        Self {
            file_len: data.len() as u64,
            pieces: vec![(0, data)],
        }
    }

    /// Pieces of a file of `file_len` bytes, each `(offset, bytes)`.
    pub fn new(file_len: u64, pieces: Vec<(u64, Bytes)>) -> Self {
        Self { file_len, pieces }
    }

    fn piece(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.pieces
            .iter()
            .find(|(offset, data)| start >= *offset && start + length as u64 <= offset + data.len() as u64)
            .map(|(offset, data)| data.slice((start - offset) as usize..(start - offset) as usize + length))
            .ok_or_else(|| ParquetError::General(format!("bytes {start}..{} were not fetched", start + length as u64)))
    }
}

impl Length for FileRanges {
    fn len(&self) -> u64 {
        self.file_len
    }
}

impl ChunkReader for FileRanges {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let (offset, data) = self
            .pieces
            .iter()
            .find(|(offset, data)| start >= *offset && start < offset + data.len() as u64)
            .ok_or_else(|| ParquetError::General(format!("byte {start} was not fetched")))?;
        Ok(data.slice((start - offset) as usize..).reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.piece(start, length)
    }
}

/// Rewrites a file row group by row group into `W`: each input row group becomes one output
/// row group with the same rows. Columns the chain leaves untouched are copied as encoded
/// chunks (with statistics, page index and bloom filters); the columns steps read are decoded;
/// only new or changed columns are encoded. Each step's output is checked against its declared
/// schema and the input row count, and a panicking step is contained.
///
/// Each row group is rewritten by two threads: one decodes, transforms and encodes the
/// computed columns while the other writes the copied chunks that come before the first
/// computed column; both check the copied chunks in the time left.
pub struct RowGroupRewriter<W: Write + Send> {
    plan: Plan,
    writer: SerializedFileWriter<W>,
    rows: u64,
    verify_copied: bool,
}

/// What a rewrite knows before it reads any data; shared by the threads of a row group's rewrite.
struct Plan {
    key: String,
    version_key: String,
    new_version: u32,
    footer: Footer,
    chain: Vec<StepRegistration>,
    /// Each step's output on the decoded columns only.
    thin_schemas: Vec<SchemaRef>,
    /// What the steps run on: the decoded columns and the renamed columns' stand-ins.
    thin_input: SchemaRef,
    /// The output's Parquet schema: copied fields with their input types verbatim (renamed where
    /// a step renames them); copied chunks are recorded under its column descriptors.
    descr: parquet::schema::types::SchemaDescPtr,
    layout: Layout,
    output: SchemaRef,
    factory: ArrowRowGroupWriterFactory,
    input_leaves: Vec<Range<usize>>,
    output_leaves: Vec<Range<usize>>,
    copy_check: CopyCheck,
}

impl<W: Write + Send> std::fmt::Debug for RowGroupRewriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowGroupRewriter")
            .field("key", &self.plan.key)
            .field("layout", &self.plan.layout)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl<W: Write + Send> RowGroupRewriter<W> {
    /// Prepares the rewrite of `footer`'s file through `chain` into `sink`, recording
    /// `version_key = new_version` and the input's other footer metadata.
    ///
    /// # Errors
    /// A step that cannot migrate the schema, or a schema the writer cannot encode.
    pub fn new(
        key: &str,
        footer: &Footer,
        chain: &[StepRegistration],
        version_key: &str,
        new_version: u32,
        sink: W,
    ) -> Result<Self> {
        let input = footer.schema().clone();
        let schemas = output_schemas(key, &input, chain)?;
        let output = schemas.last().cloned().unwrap_or_else(|| input.clone());
        let planned = plan_layout(&input, &output, chain)
            .filter(|_| renames_hold(&input, &schemas, chain))
            .and_then(|layout| thin_schemas(key, &input, &output, &layout, chain).map(|thin| (layout, thin)));
        let (layout, thin_schemas) = match planned {
            Some(planned) => planned,
            None => (Layout::full(&input, &output), schemas),
        };
        match Self::build(
            key,
            footer,
            chain,
            version_key,
            new_version,
            &layout,
            thin_schemas.clone(),
            &output,
            sink,
        ) {
            Ok(rewriter) => Ok(rewriter),
            Err(BuildError::Copy(sink)) => {
                // The input's encoding cannot host the copied columns (an unusual physical
                // type): decode and encode everything instead.
                let full = Layout::full(&input, &output);
                let schemas = output_schemas(key, &input, chain)?;
                Self::build(
                    key,
                    footer,
                    chain,
                    version_key,
                    new_version,
                    &full,
                    schemas,
                    &output,
                    sink,
                )
                .map_err(|e| match e {
                    BuildError::Copy(_) => unreachable!("a full layout copies nothing"),
                    BuildError::Fatal(e) => e,
                })
            }
            Err(BuildError::Fatal(e)) => Err(e),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        key: &str,
        footer: &Footer,
        chain: &[StepRegistration],
        version_key: &str,
        new_version: u32,
        layout: &Layout,
        thin_schemas: Vec<SchemaRef>,
        output: &SchemaRef,
        sink: W,
    ) -> Result<Self, BuildError<W>> {
        let write_err = |source| {
            BuildError::Fatal(Error::Write {
                key: key.to_string(),
                source,
            })
        };
        let metadata = footer.meta.metadata();
        let input_descr = metadata.file_metadata().schema_descr();
        let converted = ArrowSchemaConverter::new().convert(output).map_err(write_err)?;
        let fields = layout
            .sources
            .iter()
            .enumerate()
            .map(|(i, source)| match source {
                Some(input_index) => renamed_type(
                    &input_descr.root_schema().get_fields()[*input_index],
                    output.field(i).name(),
                ),
                None => Ok(converted.root_schema().get_fields()[i].clone()),
            })
            .collect::<parquet::errors::Result<_>>()
            .map_err(write_err)?;
        let root = Arc::new(
            Type::group_type_builder(input_descr.root_schema().name())
                .with_fields(fields)
                .build()
                .map_err(write_err)?,
        );
        let mut props = writer_properties(key, footer, chain).map_err(BuildError::Fatal)?;
        add_encoded_arrow_schema_to_metadata(output, &mut props);
        let mut writer = SerializedFileWriter::new(sink, root.clone(), Arc::new(props)).map_err(write_err)?;
        for kv in metadata.file_metadata().key_value_metadata().into_iter().flatten() {
            if kv.key != ARROW_SCHEMA_KEY && kv.key != version_key && kv.key != STEPS_FOOTER_KEY {
                writer.append_key_value_metadata(kv.clone());
            }
        }
        writer.append_key_value_metadata(KeyValue::new(version_key.to_string(), new_version.to_string()));
        writer.append_key_value_metadata(KeyValue::new(STEPS_FOOTER_KEY.to_string(), steps_record(footer, chain)));
        let factory = ArrowRowGroupWriterFactory::new(&writer, output.clone());
        if layout.copied() > 0 && factory.create_column_writers(0).is_err() {
            return Err(BuildError::Copy(writer.into_inner().map_err(write_err)?));
        }
        let output_leaves = leaf_ranges(writer.schema_descr(), output.fields().len());
        let input_leaves = leaf_ranges(input_descr, footer.schema().fields().len());
        let copied = layout
            .sources
            .iter()
            .flatten()
            .flat_map(|field| input_leaves[*field].clone())
            .collect();
        let copy_check = CopyCheck::new(key, metadata.clone(), copied);
        Ok(Self {
            plan: Plan {
                key: key.to_string(),
                thin_input: decoded_schema(footer.schema(), layout),
                descr: Arc::new(SchemaDescriptor::new(root)),
                version_key: version_key.to_string(),
                new_version,
                footer: footer.clone(),
                chain: chain.to_vec(),
                thin_schemas,
                layout: layout.clone(),
                output: output.clone(),
                input_leaves,
                output_leaves,
                factory,
                copy_check,
            },
            writer,
            rows: 0,
            verify_copied: true,
        })
    }

    /// Whether copied chunks are checked first (the default): every page's header parsed, its
    /// CRC compared where the writer recorded one, its data decompressed and its values
    /// counted, nothing decoded. Both threads of a row group's rewrite check in the time the
    /// writing and encoding leave, so bytes may reach the sink before the check ends; a failed
    /// check fails the rewrite, and [`migrate_object`](crate::migrate_object) then abandons
    /// its upload. Off, a damaged chunk in a column no step reads is copied as it is, unnoticed.
    pub fn verify_copied(mut self, verify: bool) -> Self {
        self.verify_copied = verify;
        self
    }

    /// Output columns copied as encoded chunks.
    pub fn copied_columns(&self) -> usize {
        self.plan.layout.copied()
    }

    /// Rewrites row group `index`, whose column chunks (and bloom filters) `input` holds.
    ///
    /// # Errors
    /// As [`rewrite`].
    pub fn rewrite_row_group(&mut self, index: usize, input: &FileRanges) -> Result<()> {
        let plan = &self.plan;
        let writer = &mut self.writer;
        let verify = self.verify_copied && !plan.copy_check.is_empty();
        let next = AtomicUsize::new(0);
        let (encoded_tx, encoded_rx) = std::sync::mpsc::sync_channel(1);
        let (helped, written, checked) = std::thread::scope(|scope| {
            // The helper encodes, hands the chunks over, then checks copied chunks. This thread
            // writes the copied chunks it can, checks while it waits for the encoded ones,
            // writes the rest and checks what is left. Without a thread to be had, this thread
            // does it all in turn.
            let helper = std::thread::Builder::new()
                .name("pqmigrate-encode".to_string())
                .spawn_scoped(scope, || {
                    let encoded = plan.encode_computed(index, input);
                    let failed = encoded.is_err();
                    let _ = encoded_tx.send(encoded);
                    if verify && !failed {
                        plan.copy_check.check_shared(index, input, &next)
                    } else {
                        Ok(())
                    }
                });
            let mut inline = helper.is_err().then(|| plan.encode_computed(index, input));
            let encoded = || -> Result<Vec<Vec<ArrowColumnChunk>>> {
                if let Some(encoded) = inline.take() {
                    return encoded;
                }
                // While the chunks are not ready, check copied pages; once none is left to
                // check, or the encoder has stopped, wait for its answer.
                loop {
                    match encoded_rx.try_recv() {
                        Ok(encoded) => return encoded,
                        Err(std::sync::mpsc::TryRecvError::Empty) => {
                            match verify
                                .then(|| plan.copy_check.check_next(index, input, &next))
                                .flatten()
                            {
                                Some(checked) => checked?,
                                None => break,
                            }
                        }
                        Err(std::sync::mpsc::TryRecvError::Disconnected) => break,
                    }
                }
                encoded_rx
                    .recv()
                    .unwrap_or_else(|_| Err(plan.corrupt(format!("row group {index}: the encoder stopped"))))
            };
            let written = plan.write(writer, index, input, encoded);
            let checked = if verify && written.is_ok() {
                plan.copy_check.check_shared(index, input, &next)
            } else {
                Ok(())
            };
            (helper.map(|h| h.join()), written, checked)
        });
        if let Ok(Err(payload)) = helped {
            return Err(plan.panicked(index, payload.as_ref()));
        }
        self.rows += written?;
        checked?;
        if let Ok(Ok(helped)) = helped {
            helped?;
        }
        Ok(())
    }

    /// Writes the footer; returns the sink and the rows written.
    ///
    /// # Errors
    /// [`Error::Write`].
    pub fn finish(self) -> Result<(W, u64)> {
        let rows = self.rows;
        let key = self.plan.key;
        let sink = self
            .writer
            .into_inner()
            .map_err(|source| Error::Write { key, source })?;
        Ok((sink, rows))
    }
}

impl Plan {
    /// A copied chunk's metadata as output leaf `out_leaf` records it: the input's, under the
    /// output's column path when a step renamed the column.
    fn copied_metadata(
        &self,
        column: &parquet::file::metadata::ColumnChunkMetaData,
        out_leaf: usize,
    ) -> parquet::errors::Result<parquet::file::metadata::ColumnChunkMetaData> {
        let descr = self.descr.column(out_leaf);
        if column.column_descr().path() == descr.path() {
            Ok(column.clone())
        } else {
            renamed_chunk(column, descr)
        }
    }

    fn write_err(&self, source: ParquetError) -> Error {
        Error::Write {
            key: self.key.clone(),
            source,
        }
    }

    fn corrupt(&self, message: String) -> Error {
        Error::NotParquet {
            key: self.key.clone(),
            source: ParquetError::General(message),
        }
    }

    /// A panic on the helper thread outside any step (steps' panics are caught in [`guard`]).
    fn panicked(&self, index: usize, payload: &(dyn std::any::Any + Send)) -> Error {
        self.corrupt(format!(
            "row group {index}: the rewrite panicked: {}",
            panic_message(payload)
        ))
    }

    /// Writes row group `index`: copied chunks appended as they are, computed ones as encoded
    /// by `encoded`, which is called once, when the first computed column is reached. Returns
    /// its rows.
    fn write<W: Write + Send>(
        &self,
        writer: &mut SerializedFileWriter<W>,
        index: usize,
        input: &FileRanges,
        encoded: impl FnOnce() -> Result<Vec<Vec<ArrowColumnChunk>>>,
    ) -> Result<u64> {
        let mut encoded = Some(encoded);
        let mut chunks = Vec::new();
        let metadata = self.footer.meta.metadata();
        let row_group = metadata.row_group(index);
        let rows = row_group.num_rows() as u64;
        let page_index = metadata.page_index();
        let mut out = writer.next_row_group().map_err(|e| self.write_err(e))?;
        for (field, source) in self.layout.sources.iter().enumerate() {
            match source {
                Some(input_field) => {
                    let leaves = self.input_leaves[*input_field]
                        .clone()
                        .zip(self.output_leaves[field].clone());
                    for (leaf, out_leaf) in leaves {
                        let column = row_group.column(leaf);
                        let close = ColumnCloseResult {
                            bytes_written: column.compressed_size() as u64,
                            rows_written: rows,
                            metadata: self.copied_metadata(column, out_leaf).map_err(|e| self.write_err(e))?,
                            bloom_filter: Sbbf::read_from_column_chunk(column, input).ok().flatten(),
                            column_index: page_index.and_then(|p| p.column_index(index, leaf)).cloned(),
                            offset_index: page_index.and_then(|p| p.offset_index(index, leaf)).cloned(),
                        };
                        out.append_column(input, close).map_err(|e| self.write_err(e))?;
                    }
                }
                None => {
                    if let Some(encoded) = encoded.take() {
                        chunks = encoded()?;
                    }
                    for chunk in chunks[field].drain(..) {
                        chunk.append_to_row_group(&mut out).map_err(|e| self.write_err(e))?;
                    }
                }
            }
        }
        out.close().map_err(|e| self.write_err(e))?;
        Ok(rows)
    }

    /// The decoded `batch` with the renamed columns' stand-ins (nulls of their type) in their
    /// places, as [`Plan::thin_input`] lays them out.
    fn with_stand_ins(&self, batch: RecordBatch) -> Result<RecordBatch> {
        if self.layout.stand_ins.is_empty() {
            return Ok(batch);
        }
        let mut decoded = batch.columns().iter();
        let columns = layout::thin_fields(&self.layout)
            .zip(self.thin_input.fields())
            .map(|((_, stand_in), field)| match stand_in {
                true => Some(arrow::array::new_null_array(field.data_type(), batch.num_rows())),
                false => decoded.next().cloned(),
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| self.corrupt("the decoded batch lacks a column the steps read".to_string()))?;
        let options = arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        RecordBatch::try_new_with_options(self.thin_input.clone(), columns, &options)
            .map_err(|e| self.write_err(ParquetError::General(format!("stand-ins for renamed columns: {e}"))))
    }

    /// Decodes the columns the steps read, runs the chain and encodes the computed columns of
    /// one row group. Returns the encoded chunks per output field.
    fn encode_computed(&self, index: usize, input: &FileRanges) -> Result<Vec<Vec<ArrowColumnChunk>>> {
        let rows = self.footer.meta.metadata().row_group(index).num_rows() as usize;
        let mut chunks: Vec<Vec<ArrowColumnChunk>> = (0..self.output.fields().len()).map(|_| Vec::new()).collect();
        let computed: Vec<usize> = (0..self.layout.sources.len())
            .filter(|i| self.layout.sources[*i].is_none())
            .collect();
        if computed.is_empty() {
            return Ok(chunks);
        }
        let mut writers: Vec<Option<ArrowColumnWriter>> = self
            .factory
            .create_column_writers(index)
            .map_err(|e| self.write_err(e))?
            .into_iter()
            .map(Some)
            .collect();
        let descr = self.footer.meta.metadata().file_metadata().schema_descr_ptr();
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(input.clone(), self.footer.meta.clone())
            .with_row_groups(vec![index])
            .with_projection(ProjectionMask::roots(&descr, self.layout.decode.iter().copied()))
            .with_batch_size(rows.clamp(1, 65_536))
            .build()
            .map_err(|source| Error::NotParquet {
                key: self.key.clone(),
                source,
            })?;
        let mut decoded = 0usize;
        for batch in reader {
            let batch = batch.map_err(|e| self.corrupt(format!("row group {index}: {e}")))?;
            decoded += batch.num_rows();
            let batch = self.with_stand_ins(batch)?;
            let out = apply_chain(&self.key, batch, &self.chain, &self.thin_schemas)?;
            for &field in &computed {
                let target = self.output.field(field);
                let array = out
                    .column_by_name(target.name())
                    .expect("the layout only computes columns the chain outputs");
                let leaves = compute_leaves(target, array).map_err(|e| self.write_err(e))?;
                for (leaf, slot) in leaves.iter().zip(self.output_leaves[field].clone()) {
                    let writer = writers[slot].as_mut().expect("each leaf has a writer");
                    writer.write(leaf).map_err(|e| self.write_err(e))?;
                }
            }
        }
        if decoded != rows {
            return Err(self.corrupt(format!("row group {index} decoded {decoded} rows, footer says {rows}")));
        }
        for &field in &computed {
            for slot in self.output_leaves[field].clone() {
                let writer = writers[slot].take().expect("each leaf is closed once");
                chunks[field].push(writer.close().map_err(|e| self.write_err(e))?);
            }
        }
        Ok(chunks)
    }
}

enum BuildError<W> {
    /// The copied columns cannot be hosted; the sink is handed back for a full rewrite.
    Copy(W),
    Fatal(Error),
}

/// The writer properties of a rewrite: the input's codec, then each step's changes.
fn writer_properties(key: &str, footer: &Footer, chain: &[StepRegistration]) -> Result<WriterProperties> {
    let builder = WriterProperties::builder().set_compression(footer.compression());
    let builder = chain.iter().try_fold(builder, |builder, step| {
        guard(key, step, || Ok(step.migration.writer_properties(builder)))
    })?;
    Ok(builder
        .set_created_by(format!("pqmigrate version {}", env!("CARGO_PKG_VERSION")))
        .build())
}

/// The output footer's key-value metadata: the input's, with the Arrow schema of `output`, the
/// new version and the steps' record in place of theirs.
fn footer_entries(
    footer: &Footer,
    chain: &[StepRegistration],
    output: &SchemaRef,
    version_key: &str,
    version: u32,
) -> Vec<KeyValue> {
    let mut props = WriterProperties::builder().build();
    add_encoded_arrow_schema_to_metadata(output, &mut props);
    let mut entries: Vec<KeyValue> = props.key_value_metadata().cloned().unwrap_or_default();
    for kv in footer
        .meta
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .into_iter()
        .flatten()
    {
        if kv.key != ARROW_SCHEMA_KEY && kv.key != version_key && kv.key != STEPS_FOOTER_KEY {
            entries.push(kv.clone());
        }
    }
    entries.push(KeyValue::new(version_key.to_string(), version.to_string()));
    entries.push(KeyValue::new(STEPS_FOOTER_KEY.to_string(), steps_record(footer, chain)));
    entries
}

/// The input's field type `field` under the output's `name` (itself when the name is unchanged).
fn renamed_type(
    field: &parquet::schema::types::TypePtr,
    name: &str,
) -> parquet::errors::Result<parquet::schema::types::TypePtr> {
    if field.name() == name {
        return Ok(field.clone());
    }
    let info = field.get_basic_info();
    let id = info.has_id().then(|| info.id());
    let repetition = info.has_repetition().then(|| info.repetition());
    let renamed = match field.as_ref() {
        Type::PrimitiveType {
            physical_type,
            type_length,
            scale,
            precision,
            ..
        } => Type::primitive_type_builder(name, *physical_type)
            .with_repetition(repetition.unwrap_or(parquet::basic::Repetition::OPTIONAL))
            .with_converted_type(info.converted_type())
            .with_logical_type(info.logical_type_ref().cloned())
            .with_length(*type_length)
            .with_precision(*precision)
            .with_scale(*scale)
            .with_id(id)
            .build()?,
        Type::GroupType { fields, .. } => {
            let mut builder = Type::group_type_builder(name)
                .with_fields(fields.clone())
                .with_converted_type(info.converted_type())
                .with_logical_type(info.logical_type_ref().cloned())
                .with_id(id);
            if let Some(repetition) = repetition {
                builder = builder.with_repetition(repetition);
            }
            builder.build()?
        }
    };
    Ok(Arc::new(renamed))
}

/// `column`'s metadata recorded under the descriptor `descr` (a renamed column's new path),
/// every other field as it was: offsets, sizes, statistics, encodings, indexes, bloom filter.
fn renamed_chunk(
    column: &parquet::file::metadata::ColumnChunkMetaData,
    descr: parquet::schema::types::ColumnDescPtr,
) -> parquet::errors::Result<parquet::file::metadata::ColumnChunkMetaData> {
    let mut builder = parquet::file::metadata::ColumnChunkMetaData::builder(descr)
        .set_compression_codec(column.compression_codec())
        .set_encodings_mask(*column.encodings_mask())
        .set_num_values(column.num_values())
        .set_total_compressed_size(column.compressed_size())
        .set_total_uncompressed_size(column.uncompressed_size())
        .set_data_page_offset(column.data_page_offset())
        .set_index_page_offset(column.index_page_offset())
        .set_dictionary_page_offset(column.dictionary_page_offset())
        .set_bloom_filter_offset(column.bloom_filter_offset())
        .set_bloom_filter_length(column.bloom_filter_length())
        .set_offset_index_offset(column.offset_index_offset())
        .set_offset_index_length(column.offset_index_length())
        .set_column_index_offset(column.column_index_offset())
        .set_column_index_length(column.column_index_length())
        .set_unencoded_byte_array_data_bytes(column.unencoded_byte_array_data_bytes())
        .set_repetition_level_histogram(column.repetition_level_histogram().cloned())
        .set_definition_level_histogram(column.definition_level_histogram().cloned());
    if let Some(path) = column.file_path() {
        builder = builder.set_file_path(path.to_string());
    }
    if let Some(statistics) = column.statistics() {
        builder = builder.set_statistics(statistics.clone());
    }
    if let Some(geo) = column.geo_statistics() {
        builder = builder.set_geo_statistics(Box::new(geo.clone()));
    }
    if let Some(stats) = column.page_encoding_stats() {
        builder = builder.set_page_encoding_stats(stats.clone());
    } else if let Some(mask) = column.page_encoding_stats_mask() {
        builder = builder.set_page_encoding_stats_mask(*mask);
    }
    builder.build()
}

/// Leaf column ranges of each top-level field.
fn leaf_ranges(descr: &SchemaDescriptor, fields: usize) -> Vec<Range<usize>> {
    let mut ranges = vec![0..0; fields];
    for leaf in 0..descr.num_columns() {
        let root = descr.get_column_root_idx(leaf);
        let range = &mut ranges[root];
        if range.start == range.end {
            *range = leaf..leaf + 1;
        } else {
            range.end = leaf + 1;
        }
    }
    ranges
}

/// The chain's schemas on the decoded columns only, when every computed output column comes out
/// of them with its final type; `None` sends the rewrite to a full decode.
fn thin_schemas(
    key: &str,
    input: &SchemaRef,
    output: &SchemaRef,
    layout: &Layout,
    chain: &[StepRegistration],
) -> Option<Vec<SchemaRef>> {
    if layout.nothing_computed() {
        // Every output column is copied: the steps never run on data.
        return Some(Vec::new());
    }
    if layout.decode.is_empty() {
        return None;
    }
    let thin = output_schemas(key, &decoded_schema(input, layout), chain).ok()?;
    let last = thin.last()?;
    let complete = layout.sources.iter().enumerate().all(|(i, source)| {
        source.is_some() || {
            let want = output.field(i);
            last.field_with_name(want.name())
                .is_ok_and(|got| got.data_type() == want.data_type())
        }
    });
    complete.then_some(thin)
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
fn guard<T>(
    key: &str,
    step: &StepRegistration,
    f: impl FnOnce() -> Result<T, crate::migration::StepError>,
) -> Result<T> {
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

/// The steps that produced a file: earlier ones from the input's footer, then this chain's.
fn steps_record(footer: &Footer, chain: &[StepRegistration]) -> String {
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
