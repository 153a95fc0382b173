use super::*;
use crate::rewrite::{Footer, footer_start};

#[test]
fn a_footer_says_its_version_entries_and_row_groups() {
    let data = file(2);
    let footer = Footer::parse("f", &data).unwrap();
    assert_eq!((footer.num_row_groups(), footer.num_rows()), (2, 6));
    assert_eq!(footer.value("owner"), Some("ops"));
    assert_eq!(
        footer.version("f", VERSION_KEY).unwrap(),
        None,
        "no version entry: version 1"
    );
    assert!(footer.entries().contains(&("owner", Some("ops"))));
    let ranges = footer.row_group_ranges(1);
    assert!(!ranges.is_empty() && ranges.iter().all(|r| r.end <= data.len() as u64));
}

#[test]
fn the_footer_start_is_found_from_the_tail() {
    let data = file(1);
    let len = data.len() as u64;
    let start = footer_start(len, &data).unwrap();
    let footer_len = u32::from_le_bytes(data[data.len() - 8..data.len() - 4].try_into().unwrap()) as u64;
    assert_eq!(start, len - 8 - footer_len);
    assert_eq!(footer_start(len, b"not a parquet tail"), None);
}

#[test]
fn what_is_not_parquet_is_named() {
    let err = Footer::parse("dir/x.csv", &Bytes::from_static(b"a,b\n1,2\n")).unwrap_err();
    assert_eq!(err.kind().name(), "NotParquet");
    assert!(err.to_string().starts_with("dir/x.csv:"), "{err}");
    let mut truncated = file(1).to_vec();
    truncated.truncate(truncated.len() / 2);
    let err = Footer::parse("half.parquet", &Bytes::from(truncated)).unwrap_err();
    assert_eq!(err.kind().name(), "NotParquet");
}
