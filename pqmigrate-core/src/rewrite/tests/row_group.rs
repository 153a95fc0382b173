use super::*;
use crate::rewrite::{FileRanges, Footer, RewriteTarget, RowGroupRewriter};

#[test]
fn untouched_columns_are_copied_and_the_new_one_computed_row_group_by_row_group() {
    static DOUBLE: Double = Double;
    let data = file(3);
    let footer = Footer::parse("f", &data).unwrap();
    let chain = [registration(&DOUBLE, "Double")];
    let target = RewriteTarget::new(VERSION_KEY, 2);
    let mut rewriter = RowGroupRewriter::new("f", &footer, &chain, &target, Vec::new()).unwrap();
    assert_eq!(
        rewriter.copied_columns(),
        2,
        "`a` (read, not written) and `name` are copied; only `double` is encoded"
    );
    for index in 0..footer.num_row_groups() {
        // Each row group from its own bytes only.
        let pieces = footer
            .row_group_ranges(index)
            .into_iter()
            .map(|r| (r.start, data.slice(r.start as usize..r.end as usize)))
            .collect();
        rewriter
            .rewrite_row_group(index, &FileRanges::new(data.len() as u64, pieces))
            .unwrap();
    }
    let (out, rows) = rewriter.finish().unwrap();
    let out = Bytes::from(out);
    assert_eq!(rows, 9);
    assert_eq!(column_i64(&out, "a"), (0..9).collect::<Vec<_>>());
    assert_eq!(column_i64(&out, "double"), (0..9).map(|v| v * 2).collect::<Vec<_>>());
    let written = Footer::parse("f", &out).unwrap();
    assert_eq!(written.num_row_groups(), 3, "one output row group per input row group");
    assert_eq!(written.version("f", VERSION_KEY).unwrap(), Some(2));
    assert_eq!(
        written.value("owner"),
        Some("ops"),
        "the input's footer entries are kept"
    );
    assert!(
        written
            .value(crate::rewrite::STEPS_FOOTER_KEY)
            .unwrap()
            .contains("1->2")
    );
    // The copied chunk's bytes are the input's.
    let chunk = |file: &Bytes, footer: &Footer, column: &str| {
        let meta = footer.meta.metadata().row_group(1);
        let c = meta
            .columns()
            .iter()
            .find(|c| c.column_path().string() == column)
            .unwrap();
        let (start, len) = c.byte_range();
        file.slice(start as usize..(start + len) as usize)
    };
    assert_eq!(chunk(&out, &written, "name"), chunk(&data, &footer, "name"));
    assert_eq!(chunk(&out, &written, "a"), chunk(&data, &footer, "a"));
}

#[test]
fn a_row_group_missing_from_the_input_is_refused_not_written_short() {
    static DOUBLE: Double = Double;
    let data = file(2);
    let footer = Footer::parse("f", &data).unwrap();
    let target = RewriteTarget::new(VERSION_KEY, 2);
    let mut rewriter =
        RowGroupRewriter::new("f", &footer, &[registration(&DOUBLE, "Double")], &target, Vec::new()).unwrap();
    let only_the_first = footer
        .row_group_ranges(0)
        .into_iter()
        .map(|r| (r.start, data.slice(r.start as usize..r.end as usize)))
        .collect();
    let err = rewriter
        .rewrite_row_group(1, &FileRanges::new(data.len() as u64, only_the_first))
        .unwrap_err();
    assert!(err.to_string().starts_with("f:"), "{err}");
}
