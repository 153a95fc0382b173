use parquet::file::reader::ChunkReader;

use super::*;
use crate::rewrite::FileRanges;

#[test]
fn fetched_pieces_serve_reads_inside_them_and_name_what_was_not_fetched() {
    let data = Bytes::from_static(b"0123456789abcdef");
    let ranges = FileRanges::new(16, vec![(2, data.slice(2..6)), (10, data.slice(10..16))]);
    assert_eq!(ranges.get_bytes(3, 3).unwrap(), Bytes::from_static(b"345"));
    assert_eq!(ranges.get_bytes(10, 6).unwrap(), Bytes::from_static(b"abcdef"));
    let err = ranges.get_bytes(5, 3).unwrap_err().to_string();
    assert!(err.contains("bytes 5..8 were not fetched"), "{err}");
    assert!(ranges.get_read(7).is_err());
}

#[test]
fn a_row_group_reads_only_its_own_bytes() {
    let data = file(3);
    let footer = crate::rewrite::Footer::parse("f", &data).unwrap();
    let metadata = footer.meta.metadata();
    let read = crate::rewrite::read_ranges(metadata, 1);
    let chunks = metadata.row_group(1).columns();
    let (first, _) = chunks[0].byte_range();
    let (last, last_len) = chunks[chunks.len() - 1].byte_range();
    assert_eq!(
        read,
        std::iter::once(first..last + last_len).collect::<Vec<_>>(),
        "one span over the row group's chunks, no bloom filters here"
    );
    for other in [0, 2] {
        for column in metadata.row_group(other).columns() {
            let (start, len) = column.byte_range();
            assert!(
                start + len <= read[0].start || start >= read[0].end,
                "row group {other} stays out"
            );
        }
    }
}
