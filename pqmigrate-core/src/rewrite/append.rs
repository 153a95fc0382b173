//! The append layout: the input's bytes up to its footer stay where they are (a store copies
//! them server-side or the kernel copies them on local disk; they never pass through this
//! process), the computed column chunks follow them, and a new footer points at both. Column
//! chunks of one row group need not be contiguous in Parquet, so copied chunks keep their
//! offsets, page indexes and bloom filters, and only the new chunks and the footer are written.

use std::io::Write;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use arrow_schema::Schema;
use parquet::arrow::ArrowSchemaConverter;
use parquet::file::metadata::{FileMetaData, ParquetMetaDataBuilder, RowGroupMetaData};
use parquet::file::properties::BloomFilterPosition;
use parquet::file::writer::SerializedFileWriter;

use super::placement::{Gate, NewIndexes, serialize_footer, shifted, shifted_offsets};
use super::{CopyCheck, FileRanges, Footer, Plan, RewriteTarget, RowGroupRewriter, footer_entries, writer_properties};
use crate::error::{Error, Result};
use crate::migration::StepRegistration;

/// Replaced or dropped columns may leave at most this share of the copied region unreferenced;
/// beyond it the file is rewritten whole, which compacts it.
pub const MAX_DEAD_SHARE: f64 = 0.25;

/// Why a file is not rewritten in the append layout.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotAppendable {
    /// Every column is computed (a step does not declare its column use, or the input's
    /// encoding cannot host copied chunks).
    NothingCopied,
    /// Columns replaced or dropped would leave more than [`MAX_DEAD_SHARE`] of the copied
    /// region unreferenced.
    TooMuchDead {
        /// Unreferenced bytes.
        dead: u64,
        /// Bytes of the copied region.
        region: u64,
    },
    /// The footer's offsets cannot be trusted for an in-place copy: overlapping chunks, or
    /// chunks, indexes or bloom filters outside the data region.
    BadOffsets(String),
    /// The footer's own position is unknown.
    UnknownFooterStart,
}

impl std::fmt::Display for NotAppendable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NothingCopied => f.write_str("no column is copied"),
            Self::TooMuchDead { dead, region } => write!(
                f,
                "replaced or dropped columns leave {dead} of {region} bytes unreferenced (more than {:.0}%)",
                MAX_DEAD_SHARE * 100.0
            ),
            Self::BadOffsets(message) => write!(f, "the footer's offsets are unsafe to copy in place: {message}"),
            Self::UnknownFooterStart => f.write_str("the footer's position is unknown"),
        }
    }
}

/// The bytes an append rewrite keeps and reads, decided from the footer alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendPlan {
    /// The copied region: bytes `0..region_end` of the input (everything before its footer).
    pub region_end: u64,
    /// Bytes of that region no column of the output references.
    pub dead: u64,
    /// Per row group, the byte ranges the steps read (the decoded columns' chunks).
    pub reads: Vec<Vec<Range<u64>>>,
}

/// Rewrites a file in the append layout into `W`, which receives only what follows the copied
/// region: the computed chunks (with their bloom filters), their page indexes and the new
/// footer. Row groups are rewritten in order; [`AppendRewriter::finish`] writes the footer.
pub(crate) struct AppendRewriter<W: Write + Send> {
    plan: Plan,
    append: AppendPlan,
    tail: SerializedFileWriter<Gate<W>>,
    rows: u64,
    verify_copied: bool,
}

impl<W: Write + Send> std::fmt::Debug for AppendRewriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppendRewriter")
            .field("key", &self.plan.key)
            .field("append", &self.append)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

/// Plans the append rewrite of `footer`'s file through `chain`, or says why it cannot be one.
///
/// # Errors
/// A step that cannot migrate the schema, or a schema the writer cannot encode.
pub fn plan_append(
    key: &str,
    footer: &Footer,
    chain: &[StepRegistration],
) -> Result<std::result::Result<AppendPlan, NotAppendable>> {
    let rewriter = RowGroupRewriter::new(key, footer, chain, &RewriteTarget::new("", 0), std::io::sink())?;
    Ok(append_plan(&rewriter.plan))
}

fn append_plan(plan: &Plan) -> std::result::Result<AppendPlan, NotAppendable> {
    let layout = &plan.layout;
    if layout.copied() == 0 {
        return Err(NotAppendable::NothingCopied);
    }
    let region_end = plan.footer.footer_start.ok_or(NotAppendable::UnknownFooterStart)?;
    let metadata = plan.footer.meta.metadata();
    let copied: Vec<usize> = layout
        .sources
        .iter()
        .flatten()
        .flat_map(|field| plan.input_leaves[*field].clone())
        .collect();
    let decoded: Vec<usize> = layout
        .decode
        .iter()
        .flat_map(|field| plan.input_leaves[*field].clone())
        .collect();
    let inside = |what: &str, range: Range<u64>| {
        if range.start < 4 || range.end > region_end || range.start > range.end {
            Err(NotAppendable::BadOffsets(format!(
                "{what} at bytes {}..{} is outside the data region 4..{region_end}",
                range.start, range.end
            )))
        } else {
            Ok(range)
        }
    };
    let mut dead = 0;
    let mut reads = Vec::with_capacity(metadata.num_row_groups());
    for (index, row_group) in metadata.row_groups().iter().enumerate() {
        let mut kept = Vec::new();
        for (leaf, column) in row_group.columns().iter().enumerate() {
            let (start, len) = column.byte_range();
            let what = format!("row group {index} column {leaf}");
            let chunk = inside(&what, start..start.saturating_add(len))?;
            if copied.contains(&leaf) {
                if let (Some(offset), Some(length)) = (column.bloom_filter_offset(), column.bloom_filter_length()) {
                    inside(
                        &format!("{what} bloom filter"),
                        offset as u64..offset as u64 + length as u64,
                    )?;
                } else if column.bloom_filter_offset().is_some() {
                    return Err(NotAppendable::BadOffsets(format!(
                        "{what} has a bloom filter of unknown length"
                    )));
                }
                for range in [column.column_index_range(), column.offset_index_range()]
                    .into_iter()
                    .flatten()
                {
                    inside(&format!("{what} page index"), range)?;
                }
                kept.push(chunk);
            } else {
                dead += len;
            }
        }
        kept.sort_by_key(|r| r.start);
        if let Some(pair) = kept.windows(2).find(|pair| pair[0].end > pair[1].start) {
            return Err(NotAppendable::BadOffsets(format!(
                "row group {index}: chunks at {}..{} and {}..{} overlap",
                pair[0].start, pair[0].end, pair[1].start, pair[1].end
            )));
        }
        reads.push(
            decoded
                .iter()
                .map(|&leaf| {
                    let (start, len) = row_group.column(leaf).byte_range();
                    start..start + len
                })
                .collect(),
        );
    }
    if dead as f64 > MAX_DEAD_SHARE * region_end as f64 {
        return Err(NotAppendable::TooMuchDead {
            dead,
            region: region_end,
        });
    }
    Ok(AppendPlan {
        region_end,
        dead,
        reads,
    })
}

impl<W: Write + Send> AppendRewriter<W> {
    /// Prepares the append rewrite of `footer`'s file through `chain`, recording
    /// `target.version_key = target.version`; `Ok(Err(why))` when the file cannot take the append layout
    /// (the caller rewrites it whole instead).
    ///
    /// # Errors
    /// As [`RowGroupRewriter::new`].
    pub(crate) fn new(
        key: &str,
        footer: &Footer,
        chain: &[StepRegistration],
        target: &RewriteTarget,
        sink: W,
    ) -> Result<std::result::Result<Self, (NotAppendable, W)>> {
        let plan = RowGroupRewriter::new(key, footer, chain, target, std::io::sink())?.plan;
        let append = match append_plan(&plan) {
            Ok(append) => append,
            Err(why) => return Ok(Err((why, sink))),
        };
        let write_err = |source| Error::Write {
            key: key.to_string(),
            source,
        };
        // The computed columns are written as a Parquet file of their own whose body (after
        // its magic) is the tail; its bloom filters go right after each row group, inside
        // the body. Its page indexes and footer are not kept: the final footer replaces them.
        let computed = Schema::new(
            plan.layout
                .sources
                .iter()
                .enumerate()
                .filter(|(_, source)| source.is_none())
                .map(|(i, _)| plan.output.field(i).clone())
                .collect::<Vec<_>>(),
        );
        let converted = ArrowSchemaConverter::new().convert(&computed).map_err(write_err)?;
        let mut props = writer_properties(key, footer, chain)?.into_builder();
        props = props.set_bloom_filter_position(BloomFilterPosition::AfterRowGroup);
        let tail = SerializedFileWriter::new(Gate::new(sink), converted.root_schema_ptr(), Arc::new(props.build()))
            .map_err(write_err)?;
        Ok(Ok(Self {
            plan,
            append,
            tail,
            rows: 0,
            verify_copied: target.verify_copied,
        }))
    }

    /// What the rewrite keeps and reads.
    pub(crate) fn plan(&self) -> &AppendPlan {
        &self.append
    }

    /// The check of the copied chunks the rewriter is not given, taken out of it for the
    /// caller to run (chunk by chunk, beside the rewrite): the rewriter keeps checking the
    /// copied chunks of the columns it decodes, which its input holds. `None` when checks are
    /// off or every copied chunk is decoded too.
    pub(crate) fn take_copy_check(&mut self) -> Option<CopyCheck> {
        if !self.verify_copied {
            return None;
        }
        let plan = &self.plan;
        let decoded: Vec<usize> = plan
            .layout
            .decode
            .iter()
            .flat_map(|field| plan.input_leaves[*field].clone())
            .collect();
        let (read, apart) = plan.copy_check.split(&decoded);
        self.plan.copy_check = read;
        (!apart.is_empty()).then_some(apart)
    }

    /// Output columns copied in place.
    pub(crate) fn copied_columns(&self) -> usize {
        self.plan.layout.copied()
    }

    /// Rewrites row group `index`: its computed chunks are encoded and written to the sink.
    ///
    /// # Errors
    /// As [`super::rewrite`]; a copied chunk that fails its check when checks are on.
    pub(crate) fn rewrite_row_group(&mut self, index: usize, input: &FileRanges) -> Result<()> {
        let plan = &self.plan;
        let verify = self.verify_copied && !plan.copy_check.is_empty();
        let next = AtomicUsize::new(0);
        let (encoded, checked) = std::thread::scope(|scope| {
            let checker = verify.then(|| {
                std::thread::Builder::new()
                    .name("pqmigrate-check".to_string())
                    .spawn_scoped(scope, || plan.copy_check.check_shared(index, input, &next))
            });
            let encoded = plan.encode_computed(index, input);
            let checked = match checker {
                Some(Ok(handle)) => handle
                    .join()
                    .unwrap_or_else(|payload| Err(plan.panicked(index, payload.as_ref()))),
                // No thread to be had: check here.
                Some(Err(_)) => plan.copy_check.check_shared(index, input, &next),
                None => Ok(()),
            };
            (encoded, checked)
        });
        let mut encoded = encoded?;
        checked?;
        let mut row_group = self.tail.next_row_group().map_err(|e| plan.write_err(e))?;
        for chunks in encoded.iter_mut() {
            for chunk in chunks.drain(..) {
                chunk
                    .append_to_row_group(&mut row_group)
                    .map_err(|e| plan.write_err(e))?;
            }
        }
        row_group.close().map_err(|e| plan.write_err(e))?;
        self.rows += plan.footer.meta.metadata().row_group(index).num_rows() as u64;
        Ok(())
    }

    /// Writes the computed columns' page indexes and the new footer; returns the sink, the
    /// rows written and the bytes written to the sink.
    ///
    /// # Errors
    /// [`Error::Write`].
    pub(crate) fn finish(mut self) -> Result<(W, u64, u64)> {
        let plan = &self.plan;
        let write_err = |source| plan.write_err(source);
        self.tail.flush().map_err(|e| write_err(e.into()))?;
        let body = self.tail.bytes_written() as u64 - 4;
        self.tail.inner_mut().open = false;
        let written = self.tail.finish().map_err(write_err)?;
        let mut sink = self.tail.inner_mut().inner.take().expect("the sink is taken once");
        let shift = self.append.region_end as i64 - 4;
        let metadata = plan.footer.meta.metadata();
        let schema = plan.descr.clone();
        let tail_index = written.page_index();
        let mut row_groups = Vec::with_capacity(metadata.num_row_groups());
        let mut indexes = NewIndexes::default();
        for (index, input) in metadata.row_groups().iter().enumerate() {
            let computed = written.row_group(index);
            let mut tail_leaf = 0;
            let mut columns = Vec::with_capacity(schema.num_columns());
            let mut column_index = Vec::with_capacity(schema.num_columns());
            let mut offset_index = Vec::with_capacity(schema.num_columns());
            for (field, source) in plan.layout.sources.iter().enumerate() {
                match source {
                    Some(input_field) => {
                        let leaves = plan.input_leaves[*input_field]
                            .clone()
                            .zip(plan.output_leaves[field].clone());
                        for (leaf, out_leaf) in leaves {
                            columns.push(plan.copied_metadata(input.column(leaf), out_leaf).map_err(write_err)?);
                            column_index.push(None);
                            offset_index.push(None);
                        }
                    }
                    None => {
                        for _ in plan.output_leaves[field].clone() {
                            columns.push(shifted(computed.column(tail_leaf), shift).map_err(write_err)?);
                            column_index.push(tail_index.and_then(|p| p.column_index(index, tail_leaf)).cloned());
                            offset_index.push(
                                tail_index
                                    .and_then(|p| p.offset_index(index, tail_leaf))
                                    .map(|o| shifted_offsets(o, shift)),
                            );
                            tail_leaf += 1;
                        }
                    }
                }
            }
            let total_byte_size = columns.iter().map(|c| c.uncompressed_size()).sum();
            let mut builder = RowGroupMetaData::builder(schema.clone())
                .set_column_metadata(columns)
                .set_total_byte_size(total_byte_size)
                .set_num_rows(input.num_rows())
                .set_ordinal(index as i32);
            if let Some(offset) = input.file_offset() {
                builder = builder.set_file_offset(offset);
            }
            row_groups.push(builder.build().map_err(write_err)?);
            indexes.column.push(column_index);
            indexes.offset.push(offset_index);
        }
        let file = FileMetaData::new(
            written.file_metadata().version(),
            metadata.file_metadata().num_rows(),
            written.file_metadata().created_by().map(str::to_string),
            Some(footer_entries(
                &plan.footer,
                &plan.chain,
                &plan.output,
                &plan.layout.sources,
                (&plan.target.version_key, plan.target.version),
            )),
            schema,
            None,
        );
        let combined = ParquetMetaDataBuilder::new(file)
            .set_row_groups(row_groups)
            .set_page_index(Some(Arc::new(indexes)))
            .build();
        let footer = serialize_footer(&combined, self.append.region_end + body).map_err(write_err)?;
        sink.write_all(&footer).map_err(|e| write_err(e.into()))?;
        Ok((sink, self.rows, body + footer.len() as u64))
    }
}

/// Rewrites a whole file held in memory in the append layout: the input up to its footer,
/// then the computed chunks and the new footer. `Ok(Err(why))` when the file cannot take it.
///
/// # Errors
/// As [`super::rewrite`].
pub fn rewrite_appended(
    key: &str,
    data: bytes::Bytes,
    footer: &Footer,
    chain: &[StepRegistration],
    version_key: &str,
    new_version: u32,
) -> Result<std::result::Result<super::Rewritten, NotAppendable>> {
    let target = RewriteTarget::new(version_key, new_version);
    let rewriter = match AppendRewriter::new(key, footer, chain, &target, Vec::new())? {
        Ok(rewriter) => rewriter,
        Err((why, _)) => return Ok(Err(why)),
    };
    let region_end = rewriter.plan().region_end as usize;
    let copied_columns = rewriter.copied_columns();
    let mut rewriter = rewriter;
    let input = FileRanges::whole(data.clone());
    for index in 0..footer.num_row_groups() {
        rewriter.rewrite_row_group(index, &input)?;
    }
    let (tail, rows, _) = rewriter.finish()?;
    let mut out = Vec::with_capacity(region_end + tail.len());
    out.extend_from_slice(&data[..region_end]);
    out.extend_from_slice(&tail);
    Ok(Ok(super::Rewritten {
        data: bytes::Bytes::from(out),
        rows,
        row_groups: footer.num_row_groups(),
        copied_columns,
    }))
}
