//! The row-group rewriter: each input row group becomes one output row group with the same
//! rows, copied chunks beside computed ones.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use std::io::Write;
use std::ops::Range;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves};
use parquet::arrow::{ArrowSchemaConverter, ProjectionMask};
use parquet::bloom_filter::Sbbf;
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::ParquetError;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{SchemaDescriptor, Type};

use crate::error::{Error, Result};
use crate::migration::StepRegistration;

use super::{
    CopyCheck, FileRanges, Footer, Job, Layout, RewriteTarget, apply_chain, decoded_schema, footer_entries,
    leaf_ranges, output_schemas, panic_message, plan_layout, renamed_chunk, renamed_type, renames_hold, thin_schemas,
    writer_properties,
};

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
    pub(super) plan: Plan,
    pub(super) writer: SerializedFileWriter<W>,
    pub(super) rows: u64,
    pub(super) verify_copied: bool,
}

/// What a rewrite knows before it reads any data; shared by the threads of a row group's rewrite.
pub(super) struct Plan {
    pub(super) key: String,
    pub(super) target: RewriteTarget,
    pub(super) footer: Footer,
    pub(super) chain: Vec<StepRegistration>,
    /// Each step's output on the decoded columns only.
    pub(super) thin_schemas: Vec<SchemaRef>,
    /// What the steps run on: the decoded columns and the renamed columns' stand-ins.
    pub(super) thin_input: SchemaRef,
    /// The output's Parquet schema: copied fields with their input types verbatim (renamed where
    /// a step renames them); copied chunks are recorded under its column descriptors.
    pub(super) descr: parquet::schema::types::SchemaDescPtr,
    pub(super) layout: Layout,
    pub(super) output: SchemaRef,
    pub(super) factory: ArrowRowGroupWriterFactory,
    pub(super) input_leaves: Vec<Range<usize>>,
    pub(super) output_leaves: Vec<Range<usize>>,
    pub(super) copy_check: CopyCheck,
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
    /// `target.version_key = target.version` and the input's other footer metadata.
    ///
    /// # Errors
    /// A step that cannot migrate the schema, or a schema the writer cannot encode.
    pub fn new(
        key: &str,
        footer: &Footer,
        chain: &[StepRegistration],
        target: &RewriteTarget,
        sink: W,
    ) -> Result<Self> {
        let job = Job {
            key,
            footer,
            chain,
            target,
        };
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
        match Self::build(job, &layout, thin_schemas.clone(), &output, sink) {
            Ok(rewriter) => Ok(rewriter),
            Err(BuildError::Copy(sink)) => {
                // The input's encoding cannot host the copied columns (an unusual physical
                // type): decode and encode everything instead.
                let full = Layout::full(&input, &output);
                let schemas = output_schemas(key, &input, chain)?;
                Self::build(job, &full, schemas, &output, sink).map_err(|e| match e {
                    BuildError::Copy(_) => unreachable!("a full layout copies nothing"),
                    BuildError::Fatal(e) => e,
                })
            }
            Err(BuildError::Fatal(e)) => Err(e),
        }
    }

    fn build(
        job: Job<'_>,
        layout: &Layout,
        thin_schemas: Vec<SchemaRef>,
        output: &SchemaRef,
        sink: W,
    ) -> Result<Self, BuildError<W>> {
        let Job {
            key,
            footer,
            chain,
            target,
        } = job;
        let version_key = target.version_key.as_str();
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
        let props = writer_properties(key, footer, chain).map_err(BuildError::Fatal)?;
        // Entries a step set through its writer properties first, then the footer's own.
        let mut entries = props.key_value_metadata().cloned().unwrap_or_default();
        entries.extend(footer_entries(
            footer,
            chain,
            output,
            &layout.sources,
            (version_key, target.version),
        ));
        let props = props.into_builder().set_key_value_metadata(Some(entries)).build();
        let writer = SerializedFileWriter::new(sink, root.clone(), Arc::new(props)).map_err(write_err)?;
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
                target: target.clone(),
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
            verify_copied: target.verify_copied,
        })
    }

    /// Output columns copied as encoded chunks.
    pub fn copied_columns(&self) -> usize {
        self.plan.layout.copied()
    }

    /// Rewrites row group `index`, whose column chunks (and bloom filters) `input` holds.
    ///
    /// # Errors
    /// As [`super::rewrite`].
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
    pub(super) fn copied_metadata(
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

    pub(super) fn write_err(&self, source: ParquetError) -> Error {
        Error::Write {
            key: self.key.clone(),
            source,
        }
    }

    pub(super) fn corrupt(&self, message: String) -> Error {
        Error::NotParquet {
            key: self.key.clone(),
            source: ParquetError::General(message),
        }
    }

    /// A panic on the helper thread outside any step (steps' panics are caught in [`guard`]).
    pub(super) fn panicked(&self, index: usize, payload: &(dyn std::any::Any + Send)) -> Error {
        self.corrupt(format!(
            "row group {index}: the rewrite panicked: {}",
            panic_message(payload)
        ))
    }

    /// Writes row group `index`: copied chunks appended as they are, computed ones as encoded
    /// by `encoded`, which is called once, when the first computed column is reached. Returns
    /// its rows.
    pub(super) fn write<W: Write + Send>(
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
    pub(super) fn with_stand_ins(&self, batch: RecordBatch) -> Result<RecordBatch> {
        if self.layout.stand_ins.is_empty() {
            return Ok(batch);
        }
        let mut decoded = batch.columns().iter();
        let columns = super::layout::thin_fields(&self.layout)
            .zip(self.thin_input.fields())
            .map(|((_, stand_in), field)| match stand_in {
                true => Some(arrow_array::new_null_array(field.data_type(), batch.num_rows())),
                false => decoded.next().cloned(),
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| self.corrupt("the decoded batch lacks a column the steps read".to_string()))?;
        let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        RecordBatch::try_new_with_options(self.thin_input.clone(), columns, &options)
            .map_err(|e| self.write_err(ParquetError::General(format!("stand-ins for renamed columns: {e}"))))
    }

    /// Decodes the columns the steps read, runs the chain and encodes the computed columns of
    /// one row group. Returns the encoded chunks per output field.
    pub(super) fn encode_computed(&self, index: usize, input: &FileRanges) -> Result<Vec<Vec<ArrowColumnChunk>>> {
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

pub(super) enum BuildError<W> {
    /// The copied columns cannot be hosted; the sink is handed back for a full rewrite.
    Copy(W),
    Fatal(Error),
}
