//! The byte ranges a row group's rewrite reads, and the fetched pieces of a file that the
//! Parquet reader reads them from.

use std::ops::Range;

use bytes::{Buf, Bytes};
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};

/// The byte ranges the rewrite of row group `index` reads: its column chunks, and any bloom
/// filters.
pub(super) fn read_ranges(metadata: &parquet::file::metadata::ParquetMetaData, index: usize) -> Vec<Range<u64>> {
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

/// Parts of an input file, addressed by file offset: what a row group's rewrite reads.
#[derive(Debug, Clone)]
pub struct FileRanges {
    pub(super) file_len: u64,
    pub(super) pieces: Vec<(u64, Bytes)>,
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
