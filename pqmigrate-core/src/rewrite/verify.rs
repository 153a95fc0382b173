//! Checking a column chunk that is about to be copied, without decoding it: every page header
//! is parsed, page checksums are compared where the writer recorded them, value counts are
//! summed, and every page is decompressed. Snappy pages, the common case, are decompressed
//! into one reused buffer per thread, so the check allocates nothing per page; other codecs go
//! through the page reader's own decompression.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parquet::basic::Compression;
use parquet::column::page::{Page, PageReader};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData};
use parquet::file::serialized_reader::SerializedPageReader;

use super::FileRanges;
use crate::error::{Error, Result};

/// The check of the column chunks a rewrite copies, for one file.
#[derive(Debug, Clone)]
pub(crate) struct CopyCheck {
    key: String,
    metadata: Arc<ParquetMetaData>,
    /// Input leaf columns that are copied, ascending.
    leaves: Arc<[usize]>,
}

impl CopyCheck {
    pub(crate) fn new(key: &str, metadata: Arc<ParquetMetaData>, leaves: Vec<usize>) -> Self {
        Self {
            key: key.to_string(),
            metadata,
            leaves: leaves.into(),
        }
    }

    /// This check in two: the chunks of `leaves`, and the others.
    pub(crate) fn split(&self, leaves: &[usize]) -> (CopyCheck, CopyCheck) {
        let (inside, outside): (Vec<usize>, Vec<usize>) = self.leaves.iter().partition(|leaf| leaves.contains(leaf));
        let part = |leaves: Vec<usize>| CopyCheck {
            leaves: leaves.into(),
            ..self.clone()
        };
        (part(inside), part(outside))
    }

    /// Whether there is anything to check (some column is copied).
    pub(crate) fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    /// Checks the copied chunks of row group `index`, which `input` holds: page headers,
    /// checksums where recorded, value counts, and decompression. The chunks are shared with
    /// other threads that call it with the same `next`: each takes the next unchecked chunk
    /// until none is left.
    pub(crate) fn check_shared(&self, index: usize, input: &FileRanges, next: &AtomicUsize) -> Result<()> {
        while let Some(checked) = self.check_next(index, input, next) {
            checked?;
        }
        Ok(())
    }

    /// Checks the next unchecked chunk, as [`CopyCheck::check_shared`] does; `None` when none
    /// is left.
    pub(crate) fn check_next(&self, index: usize, input: &FileRanges, next: &AtomicUsize) -> Option<Result<()>> {
        let position = next.fetch_add(1, Ordering::Relaxed);
        (position < self.leaves.len()).then(|| self.check_chunk(index, position, input))
    }

    /// The byte ranges of row group `index`'s copied chunks, in the order
    /// [`CopyCheck::check_chunk`] numbers them.
    pub(crate) fn chunk_ranges(&self, index: usize) -> Vec<Range<u64>> {
        let row_group = self.metadata.row_group(index);
        self.leaves
            .iter()
            .map(|&leaf| {
                let (start, length) = row_group.column(leaf).byte_range();
                start..start.saturating_add(length)
            })
            .collect()
    }

    /// Checks copied chunk `position` of row group `index`, which `input` holds (at least the
    /// chunk's range of [`CopyCheck::chunk_ranges`]).
    ///
    /// # Errors
    /// [`Error::NotParquet`] naming the object, the row group, the column and what is wrong.
    pub(crate) fn check_chunk(&self, index: usize, position: usize, input: &FileRanges) -> Result<()> {
        let row_group = self.metadata.row_group(index);
        let rows = row_group.num_rows() as usize;
        verify_copied_chunk(&self.key, index, row_group.column(self.leaves[position]), rows, input)
    }
}

/// Checks the pages of one column chunk of row group `index`, which holds `rows` rows.
///
/// # Errors
/// [`Error::NotParquet`] naming `key`, the row group, the column and what is wrong.
fn verify_copied_chunk(
    key: &str,
    index: usize,
    column: &ColumnChunkMetaData,
    rows: usize,
    input: &FileRanges,
) -> Result<()> {
    let corrupt = |message: String| Error::NotParquet {
        key: key.to_string(),
        source: ParquetError::General(format!("row group {index}, column {}: {message}", column.column_path())),
    };
    let in_place = column.compression() == Compression::SNAPPY;
    // Snappy pages are read as stored (the codec hidden from the reader) and decompressed here;
    // other codecs are decompressed by the reader.
    let stored;
    let meta = if in_place {
        stored = column
            .clone()
            .into_builder()
            .set_compression(Compression::UNCOMPRESSED)
            .build()
            .map_err(|e| corrupt(e.to_string()))?;
        &stored
    } else {
        column
    };
    let mut pages =
        SerializedPageReader::new(Arc::new(input.clone()), meta, rows, None).map_err(|e| corrupt(e.to_string()))?;
    let mut values = 0i64;
    let mut stored_bytes = 0u64;
    let mut expanded_bytes = 0u64;
    let mut number = 0usize;
    while let Some(page) = pages.get_next_page().map_err(|e| corrupt(e.to_string()))? {
        let payload = page.buffer();
        stored_bytes += payload.len() as u64;
        let (levels, compressed) = match &page {
            Page::DataPageV2 {
                def_levels_byte_len,
                rep_levels_byte_len,
                is_compressed,
                ..
            } => ((*def_levels_byte_len + *rep_levels_byte_len) as usize, *is_compressed),
            _ => (0, true),
        };
        expanded_bytes += if in_place && compressed {
            let body = payload
                .get(levels..)
                .ok_or_else(|| corrupt(format!("page {number}: levels are longer than the page")))?;
            let length = snappy_check(body).map_err(|e| corrupt(format!("page {number}: snappy: {e}")))?;
            (levels + length) as u64
        } else {
            payload.len() as u64
        };
        if !matches!(page, Page::DictionaryPage { .. }) {
            values += i64::from(page.num_values());
        }
        number += 1;
    }
    if values != column.num_values() {
        return Err(corrupt(format!(
            "pages hold {values} values, the footer says {}",
            column.num_values()
        )));
    }
    if in_place {
        // Page headers are the same bytes in both sizes; what differs is each page's payload
        // before and after decompression, and that must add up to the footer's sizes.
        let headers = (column.compressed_size() as u64).checked_sub(stored_bytes);
        let expected = headers.and_then(|h| (column.uncompressed_size() as u64).checked_sub(h));
        if expected != Some(expanded_bytes) {
            return Err(corrupt(format!(
                "pages decompress to {expanded_bytes} bytes of data, the footer says {}",
                expected.map_or_else(|| "less than the headers".to_string(), |e| e.to_string())
            )));
        }
    }
    Ok(())
}

/// Scratch buffers larger than this are not kept between pages.
const KEPT_SCRATCH: usize = 16 * 1024 * 1024;

thread_local! {
    /// Where Snappy pages are decompressed to be checked, reused from page to page.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Decompresses a raw Snappy stream into this thread's scratch buffer; returns its length.
fn snappy_check(stream: &[u8]) -> Result<usize, String> {
    let length = snap::raw::decompress_len(stream).map_err(|e| e.to_string())?;
    // No Snappy element yields more than 64 bytes from 3, so a longer declared length is
    // damage, refused before any buffer is sized by it.
    if length / 22 > stream.len() {
        return Err(format!(
            "declares {length} bytes, more than {} bytes can hold",
            stream.len()
        ));
    }
    SCRATCH.with_borrow_mut(|buffer| {
        if buffer.len() < length {
            buffer.resize(length, 0);
        }
        let checked = snap::raw::Decoder::new()
            .decompress(stream, &mut buffer[..length])
            .map_err(|e| e.to_string());
        if buffer.len() > KEPT_SCRATCH {
            *buffer = Vec::new();
        }
        checked
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snappy_streams_are_checked_as_the_decoder_reads_them() {
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 1_000).to_le_bytes()).collect();
        let stream = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(snappy_check(&stream), Ok(data.len()));
        assert!(snappy_check(&stream[..stream.len() - 1]).is_err(), "truncated");
        assert!(snappy_check(&[]).is_err(), "empty");
        // A header declaring 4 GiB over a few bytes is refused before any buffer is sized.
        let huge = [0xff, 0xff, 0xff, 0xff, 0x0f, 0, b'a'];
        let err = snappy_check(&huge).unwrap_err();
        assert!(err.contains("more than 7 bytes can hold"), "{err}");
        SCRATCH.with_borrow(|buffer| assert!(buffer.len() <= KEPT_SCRATCH));
    }
}
