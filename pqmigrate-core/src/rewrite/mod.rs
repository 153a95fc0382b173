//! The fused rewrite of one Parquet file through a chain of steps (synchronous, CPU-bound).

use bytes::Bytes;

mod append;
mod contract;
mod footer;
mod layout;
pub mod limits;
mod pandas;
mod placement;
// The row-group rewriter and its inputs are the crate's own; the workspace's tests reach them
// through `test_support`.
#[cfg_attr(not(feature = "test-support"), allow(unreachable_pub))]
pub(crate) mod ranges;
mod renames;
#[cfg_attr(not(feature = "test-support"), allow(unreachable_pub))]
pub(crate) mod row_group;
#[cfg_attr(not(feature = "test-support"), allow(unreachable_pub))]
pub(crate) mod target;
mod verify;

pub(crate) use append::AppendRewriter;
pub use append::{AppendPlan, MAX_DEAD_SHARE, NotAppendable, plan_append, rewrite_appended};
use layout::decoded_schema;
pub use layout::{Layout, plan_layout, renames_hold};
pub(crate) use verify::CopyCheck;

use crate::error::Result;
use crate::migration::StepRegistration;

pub(crate) use contract::output_schemas;
pub(crate) use contract::panic_message;
use contract::{apply_chain, leaf_ranges, thin_schemas, writer_properties};
use footer::footer_entries;
pub use footer::{Footer, STEPS_FOOTER_KEY, footer_start};
pub(crate) use ranges::FileRanges;
use ranges::read_ranges;
use renames::{renamed_chunk, renamed_type};
use row_group::Plan;
pub(crate) use row_group::RowGroupRewriter;
use target::Job;
pub(crate) use target::RewriteTarget;

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

/// Rewrites a whole file held in memory through `chain`, row group by row group: each input
/// row group becomes one output row group with the same rows. Columns the steps leave untouched
/// are copied as encoded chunks (with statistics, page index and bloom filters) when every step
/// declares its [`ColumnUse`](crate::migration::ColumnUse); the columns steps read are decoded
/// and only new or changed columns are encoded. Each step's output is checked against its
/// declared schema and the input row count, and a panicking step is contained.
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
