//! The fused rewrite of one Parquet file through a chain of steps (synchronous, CPU-bound).

use bytes::Bytes;

mod append;
mod contract;
mod footer;
mod layout;
pub mod limits;
mod placement;
mod ranges;
mod renames;
mod row_group;
mod target;
mod verify;

pub use append::{AppendPlan, AppendRewriter, MAX_DEAD_SHARE, NotAppendable, plan_append, rewrite_appended};
use layout::decoded_schema;
pub use layout::{Layout, plan_layout, renames_hold};
use verify::CopyCheck;

use crate::error::Result;
use crate::migration::StepRegistration;

pub(crate) use contract::output_schemas;
pub(crate) use contract::panic_message;
use contract::{apply_chain, leaf_ranges, thin_schemas, writer_properties};
use footer::{ARROW_SCHEMA_KEY, footer_entries, steps_record};
pub use footer::{Footer, STEPS_FOOTER_KEY, footer_start};
pub use ranges::FileRanges;
use ranges::read_ranges;
use renames::{renamed_chunk, renamed_type};
use row_group::Plan;
pub use row_group::RowGroupRewriter;
use target::Job;
pub use target::RewriteTarget;

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
/// [`crate::Error::Step`], [`crate::Error::StepPanicked`], [`crate::Error::StepContract`], [`crate::Error::NotParquet`] for
/// undecodable pages, [`crate::Error::Write`] for encoder failures. All name `key`.
pub fn rewrite(
    key: &str,
    data: Bytes,
    footer: &Footer,
    chain: &[StepRegistration],
    version_key: &str,
    new_version: u32,
) -> Result<Rewritten> {
    let capacity = data.len() + data.len() / 4;
    let target = RewriteTarget::new(version_key, new_version);
    let mut rewriter = RowGroupRewriter::new(key, footer, chain, &target, Vec::with_capacity(capacity))?;
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

#[cfg(test)]
mod tests;
