//! Limits a Parquet file must keep before anything is sized from what its footer declares: a
//! hostile or broken file is a per-object error naming what it exceeds, never a process that
//! runs out of memory or fetches the same bytes over and over.

use parquet::file::metadata::ParquetMetaData;

use crate::error::{Error, Result};

/// Largest footer (or page index) fetched in one piece.
pub const MAX_METADATA_BYTES: u64 = 64 * 1024 * 1024;
/// Most row groups in one file.
pub const MAX_ROW_GROUPS: usize = 20_000;
/// Most leaf columns in one file.
pub const MAX_COLUMNS: usize = 10_000;
/// Deepest nesting of a leaf column (its path's length).
pub const MAX_NESTING: usize = 64;
/// Largest declared uncompressed size of one column chunk.
pub const MAX_CHUNK_UNCOMPRESSED: i64 = 8 * 1024 * 1024 * 1024;

fn exceeded(key: &str, message: String) -> Error {
    Error::Limit {
        key: key.to_string(),
        message,
    }
}

/// Refuses a fetch of footer or page-index bytes larger than [`MAX_METADATA_BYTES`].
///
/// # Errors
/// [`Error::Limit`] naming `key`.
pub fn check_metadata_fetch(key: &str, what: &str, len: u64) -> Result<()> {
    if len > MAX_METADATA_BYTES {
        return Err(exceeded(
            key,
            format!("its {what} would need a read of {len} bytes; the limit is {MAX_METADATA_BYTES}"),
        ));
    }
    Ok(())
}

/// Checks a parsed footer against the limits and against the file's length: the row groups,
/// columns and nesting it declares, each chunk's declared size, and that the byte ranges the
/// rewrite would read lie inside the file and add up to no more than it (a footer whose chunks
/// all span the whole file would otherwise make every row group fetch the whole file).
///
/// # Errors
/// [`Error::Limit`] naming `key` and the limit.
pub fn check_footer(
    key: &str,
    metadata: &ParquetMetaData,
    file_len: u64,
    ranges: &[std::ops::Range<u64>],
) -> Result<()> {
    let row_groups = metadata.num_row_groups();
    if row_groups > MAX_ROW_GROUPS {
        return Err(exceeded(
            key,
            format!("{row_groups} row groups; the limit is {MAX_ROW_GROUPS}"),
        ));
    }
    let schema = metadata.file_metadata().schema_descr();
    if schema.num_columns() > MAX_COLUMNS {
        return Err(exceeded(
            key,
            format!("{} leaf columns; the limit is {MAX_COLUMNS}", schema.num_columns()),
        ));
    }
    if let Some(deepest) = schema.columns().iter().max_by_key(|c| c.path().parts().len())
        && deepest.path().parts().len() > MAX_NESTING
    {
        return Err(exceeded(
            key,
            format!(
                "column nested {} levels deep; the limit is {MAX_NESTING}",
                deepest.path().parts().len()
            ),
        ));
    }
    for (index, row_group) in metadata.row_groups().iter().enumerate() {
        for column in row_group.columns() {
            let size = column.uncompressed_size();
            if !(0..=MAX_CHUNK_UNCOMPRESSED).contains(&size) || column.compressed_size() < 0 {
                return Err(exceeded(
                    key,
                    format!(
                        "row group {index}, column {}: declared size {size} bytes; the limit is {MAX_CHUNK_UNCOMPRESSED}",
                        column.column_path()
                    ),
                ));
            }
        }
    }
    let mut total = 0u64;
    for range in ranges {
        if range.end > file_len || range.start > range.end {
            return Err(exceeded(
                key,
                format!("a column chunk at bytes {range:?} lies outside the file of {file_len} bytes"),
            ));
        }
        total += range.end - range.start;
    }
    if total > file_len {
        return Err(exceeded(
            key,
            format!("its column chunks span {total} bytes in all, more than the file's {file_len}: they overlap"),
        ));
    }
    Ok(())
}
