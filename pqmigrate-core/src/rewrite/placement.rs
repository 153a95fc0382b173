//! Placing the appended chunks: copied chunks' metadata moved along the file, the new page
//! indexes, the footer serialized for a given offset, and the writers that skip the copied
//! region or hold output back until it may go.

use std::io::Write;

use parquet::file::metadata::page_index::PageIndexProvider;
use parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData, ParquetMetaDataWriter};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::page_index::offset_index::OffsetIndexMetaData;
use parquet::file::writer::TrackedWrite;

/// `column` moved `shift` bytes further into the file.
pub(super) fn shifted(column: &ColumnChunkMetaData, shift: i64) -> parquet::errors::Result<ColumnChunkMetaData> {
    let mut builder = column
        .clone()
        .into_builder()
        .set_data_page_offset(column.data_page_offset() + shift)
        .set_dictionary_page_offset(column.dictionary_page_offset().map(|o| o + shift))
        .set_bloom_filter_offset(column.bloom_filter_offset().map(|o| o + shift));
    if let Some(offset) = column.index_page_offset() {
        builder = builder.set_index_page_offset(Some(offset + shift));
    }
    builder.build()
}

pub(super) fn shifted_offsets(index: &OffsetIndexMetaData, shift: i64) -> OffsetIndexMetaData {
    let mut index = index.clone();
    for page in &mut index.page_locations {
        page.offset += shift;
    }
    index
}

/// The page indexes of the computed columns; copied columns have none here, so their
/// original indexes (inside the copied region) stay where they are.
#[derive(Debug, Default)]
pub(super) struct NewIndexes {
    pub(super) column: Vec<Vec<Option<ColumnIndexMetaData>>>,
    pub(super) offset: Vec<Vec<Option<OffsetIndexMetaData>>>,
}

impl PageIndexProvider for NewIndexes {
    fn has_offset_indexes(&self) -> bool {
        true
    }

    fn has_column_indexes(&self) -> bool {
        true
    }

    fn column_index(&self, row_group_idx: usize, column_idx: usize) -> Option<&ColumnIndexMetaData> {
        self.column.get(row_group_idx)?.get(column_idx)?.as_ref()
    }

    fn offset_index(&self, row_group_idx: usize, column_idx: usize) -> Option<&OffsetIndexMetaData> {
        self.offset.get(row_group_idx)?.get(column_idx)?.as_ref()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The page indexes and footer of `metadata`, laid out to start at file offset `at`.
pub(super) fn serialize_footer(metadata: &ParquetMetaData, at: u64) -> parquet::errors::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut tracked = TrackedWrite::new(Skip {
        skip: at,
        out: &mut out,
    });
    // The writer records offsets from its own count of bytes: count the file before `at`.
    let zeros = [0u8; 64 * 1024];
    let mut left = at;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        tracked.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    ParquetMetaDataWriter::new_with_tracked(tracked, metadata)
        .with_preserve_page_index_locations(true)
        .finish()?;
    Ok(out)
}

/// Drops the first `skip` bytes written, keeps the rest.
pub(super) struct Skip<'a> {
    pub(super) skip: u64,
    pub(super) out: &'a mut Vec<u8>,
}

impl Write for Skip<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let dropped = (self.skip.min(data.len() as u64)) as usize;
        self.skip -= dropped as u64;
        self.out.extend_from_slice(&data[dropped..]);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The tail writer's sink: drops the leading magic, passes the body, and drops everything once
/// closed (the tail's own page indexes and footer).
pub(super) struct Gate<W> {
    pub(super) inner: Option<W>,
    pub(super) magic: usize,
    pub(super) open: bool,
}

impl<W> Gate<W> {
    pub(super) fn new(inner: W) -> Self {
        Self {
            inner: Some(inner),
            magic: 4,
            open: true,
        }
    }
}

impl<W: Write> Write for Gate<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let dropped = self.magic.min(data.len());
        self.magic -= dropped;
        match (&mut self.inner, self.open) {
            (Some(inner), true) if dropped < data.len() => inner.write_all(&data[dropped..])?,
            _ => {}
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match (&mut self.inner, self.open) {
            (Some(inner), true) => inner.flush(),
            _ => Ok(()),
        }
    }
}
