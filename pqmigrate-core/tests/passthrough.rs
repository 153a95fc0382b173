//! Column-chunk passthrough: untouched columns are copied byte for byte with their statistics
//! and page index, and the result reads back equal to a full decode-and-encode rewrite.

mod support;

use bytes::Bytes;
use parquet::file::metadata::ParquetMetaData;
use pqmigrate_core::rewrite::{Footer, rewrite};
use pqmigrate_core::test_support::{FileRanges, RewriteTarget, RowGroupRewriter};
use pqmigrate_core::{ColumnUse, Registry, StepRegistration, version_key};
use pqmigrate_sensor_steps::{AddFeatures, DataSpec, RenameAndEncode, SCHEMA, generate_file};
use support::*;

fn spec() -> DataSpec {
    DataSpec {
        rows: 12_000,
        row_group_rows: 5_000,
        seed: 5,
    }
}

fn chunk_bytes(data: &Bytes, meta: &ParquetMetaData, row_group: usize, column: &str) -> Bytes {
    let rg = meta.row_group(row_group);
    let chunk = rg
        .columns()
        .iter()
        .find(|c| c.column_path().string() == column)
        .unwrap();
    let (start, len) = chunk.byte_range();
    data.slice(start as usize..(start + len) as usize)
}

fn migrate(input: &Bytes, chain: &[StepRegistration], to: u32) -> pqmigrate_core::rewrite::Rewritten {
    let footer = Footer::parse("f", input).unwrap();
    rewrite("f", input.clone(), &footer, chain, &version_key(SCHEMA), to).unwrap()
}

#[test]
fn untouched_columns_are_copied_byte_for_byte() {
    let input = generate_file(&spec(), 1);
    let out = migrate(&input, &[sensor_step(1, &AddFeatures)], 2);
    assert_eq!(out.copied_columns, 65, "all 65 input columns copied, 4 computed");
    let (before, after) = (page_indexed_metadata(&input), page_indexed_metadata(&out.data));
    assert_eq!(after.num_row_groups(), 3);
    for rg in 0..3 {
        for column in ["ts", "device_id", "x", "v00", "v59"] {
            assert_eq!(
                chunk_bytes(&input, &before, rg, column),
                chunk_bytes(&out.data, &after, rg, column),
                "{column} in row group {rg}"
            );
        }
    }
}

/// A renamed column is copied too: the streamed rewrite writes sensor_type's chunks unchanged
/// under the name sensor_kind.
#[test]
fn renamed_columns_are_copied_byte_for_byte() {
    let input = generate_file(&spec(), 4);
    let out = migrate(
        &input,
        &[sensor_step(1, &AddFeatures), sensor_step(2, &RenameAndEncode)],
        3,
    );
    let (before, after) = (page_indexed_metadata(&input), page_indexed_metadata(&out.data));
    for rg in 0..3 {
        assert_eq!(
            chunk_bytes(&input, &before, rg, "sensor_type"),
            chunk_bytes(&out.data, &after, rg, "sensor_kind"),
            "row group {rg}"
        );
    }
    let batch = read_all(&out.data);
    assert_eq!(
        batch.column_by_name("sensor_kind"),
        read_all(&input).column_by_name("sensor_type")
    );
}

#[test]
fn passthrough_reads_back_equal_to_a_full_rewrite() {
    let input = generate_file(&spec(), 2);
    for (fast, slow, to) in [
        (vec![sensor_step(1, &AddFeatures)], vec![sensor_step(1, &OPAQUE_ADD)], 2),
        (
            vec![sensor_step(1, &AddFeatures), sensor_step(2, &RenameAndEncode)],
            vec![sensor_step(1, &OPAQUE_ADD), sensor_step(2, &OPAQUE_RENAME)],
            3,
        ),
    ] {
        let fast = migrate(&input, &fast, to);
        let slow = migrate(&input, &slow, to);
        // 1->3: device_id is re-encoded; sensor_kind is sensor_type's chunks, renamed.
        assert_eq!(fast.copied_columns, if to == 2 { 65 } else { 64 });
        assert_eq!(slow.copied_columns, 0);
        let (a, b) = (read_all(&fast.data), read_all(&slow.data));
        assert_eq!(a.schema(), b.schema());
        assert_eq!(a, b, "same values through both paths");
        assert_eq!(footer_version(&fast.data, &version_key(SCHEMA)), Some(to));
        assert_features_match(&read_all(&input), &a);
    }
}

#[test]
fn statistics_and_page_index_are_present_on_every_column() {
    let input = generate_file(&spec(), 3);
    let out = migrate(
        &input,
        &[sensor_step(1, &AddFeatures), sensor_step(2, &RenameAndEncode)],
        3,
    );
    let meta = page_indexed_metadata(&out.data);
    let page_index = meta.page_index().expect("page index loaded");
    for rg in 0..meta.num_row_groups() {
        for (i, column) in meta.row_group(rg).columns().iter().enumerate() {
            let name = column.column_path().string();
            assert!(column.statistics().is_some(), "statistics of {name}");
            assert!(page_index.offset_index(rg, i).is_some(), "offset index of {name}");
            assert!(page_index.column_index(rg, i).is_some(), "column index of {name}");
        }
    }
    let stats = meta
        .row_group(0)
        .columns()
        .iter()
        .find(|c| c.column_path().string() == "magnitude")
        .unwrap()
        .statistics()
        .unwrap();
    assert!(stats.null_count_opt().unwrap() > 0 || stats.min_bytes_opt().is_some());
}

#[test]
fn the_registry_steps_declare_their_columns() {
    let registry = Registry::from_inventory().unwrap();
    for s in registry.steps().filter(|s| s.schema == SCHEMA) {
        assert!(
            matches!(s.migration.column_use(), ColumnUse::Declared { .. }),
            "{}",
            s.name
        );
    }
}

/// pyarrow and DuckDB (installed by scripts/test.sh) read the passthrough output with the
/// same values as the full re-encode's, and find statistics and page index on every column.
#[test]
fn pyarrow_and_duckdb_read_passthrough_outputs_as_full_rewrites() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate_file(&spec(), 4);
    let chain_fast = [sensor_step(1, &AddFeatures), sensor_step(2, &RenameAndEncode)];
    let chain_slow = [sensor_step(1, &OPAQUE_ADD), sensor_step(2, &OPAQUE_RENAME)];
    let files = [
        ("passthrough.parquet", migrate(&input, &chain_fast, 3).data),
        ("full.parquet", migrate(&input, &chain_slow, 3).data),
        ("original.parquet", input),
    ];
    let stdout = python_check("check_outputs.py", dir.path(), &files);
    assert!(stdout.starts_with("ok: 12000 rows"), "{stdout}");
}

/// Whether parquet's own reader parses and decompresses every page of every column chunk.
fn every_page_decompresses(data: &Bytes) -> bool {
    use parquet::file::reader::FileReader;
    use parquet::file::serialized_reader::SerializedFileReader;
    let Ok(file) = SerializedFileReader::new(data.clone()) else {
        return false;
    };
    (0..file.num_row_groups()).all(|rg| {
        let Ok(row_group) = file.get_row_group(rg) else {
            return false;
        };
        (0..row_group.num_columns()).all(|c| match row_group.get_column_page_reader(c) {
            Ok(mut pages) => std::iter::from_fn(|| pages.get_next_page().transpose()).all(|p| p.is_ok()),
            Err(_) => false,
        })
    })
}

/// Damage in the column data, most of it in columns the step copies without decoding: every
/// file in which some page no longer parses or decompresses is refused by the checked rewrite,
/// naming the object and the column, and what the check lets through reads back whole.
#[test]
fn the_checked_rewrite_refuses_every_file_whose_pages_are_damaged() {
    let input = generate_file(&spec(), 6);
    let meta = page_indexed_metadata(&input);
    let data_end = (0..meta.num_row_groups())
        .flat_map(|rg| meta.row_group(rg).columns().iter().map(|c| c.byte_range()))
        .map(|(start, len)| start + len)
        .max()
        .unwrap() as usize;
    let chain = [sensor_step(1, &AddFeatures)];
    let (mut broken, mut refused_columns) = (0, std::collections::BTreeSet::new());
    // 150 places spread over the column data, each with 16 bytes overwritten.
    for n in 0..150usize {
        let at = 4 + (n * 7_919 * 13) % (data_end - 20);
        let mut damaged = input.to_vec();
        for (i, b) in damaged[at..at + 16].iter_mut().enumerate() {
            *b = (*b ^ 0xa5).wrapping_add(i as u8);
        }
        let damaged = Bytes::from(damaged);
        let footer = Footer::parse("damaged.parquet", &damaged).unwrap();
        let result = rewrite(
            "damaged.parquet",
            damaged.clone(),
            &footer,
            &chain,
            &version_key(SCHEMA),
            2,
        );
        if every_page_decompresses(&damaged) {
            continue;
        }
        broken += 1;
        let err = match result {
            Ok(_) => panic!("damage at byte {at} breaks a page but the rewrite accepted it"),
            Err(e) => e.to_string(),
        };
        assert!(err.starts_with("damaged.parquet: "), "{err}");
        if let Some(column) = err.split(", column ").nth(1) {
            refused_columns.insert(column.split(':').next().unwrap().to_string());
        }
    }
    assert!(broken >= 30, "only {broken} of 150 damages broke a page");
    // Most columns are copied, so most refusals come from the check of copied chunks.
    assert!(refused_columns.len() >= 10, "refused in {refused_columns:?}");
}

/// A step's `writer_properties` shapes the columns it writes: the sensor step's float features
/// are written plain, its four-valued `quadrant` keeps a dictionary, and copied columns keep
/// the encodings they had.
#[test]
fn steps_choose_the_encoding_of_the_columns_they_write() {
    use parquet::basic::Encoding;
    let input = generate_file(&spec(), 7);
    let out = migrate(&input, &[sensor_step(1, &AddFeatures)], 2);
    let (before, after) = (page_indexed_metadata(&input), page_indexed_metadata(&out.data));
    let encodings = |meta: &ParquetMetaData, name: &str| {
        let column = meta
            .row_group(0)
            .columns()
            .iter()
            .find(|c| c.column_path().string() == name)
            .unwrap();
        column.encodings().collect::<Vec<_>>()
    };
    for name in ["magnitude", "angle", "x_norm"] {
        assert!(!encodings(&after, name).contains(&Encoding::RLE_DICTIONARY), "{name}");
    }
    assert!(encodings(&after, "quadrant").contains(&Encoding::RLE_DICTIONARY));
    for name in ["x", "v00", "device_id"] {
        assert_eq!(encodings(&after, name), encodings(&before, name), "{name}");
    }
}

/// Page checksums, where the writer recorded them (pyarrow's `write_page_checksum`, Spark's
/// default), are compared for copied chunks: a changed byte inside a page of random floats still
/// decompresses, and the copy without checks carries it into the new version, but the checked
/// rewrite refuses it.
#[test]
fn a_page_checksum_mismatch_in_a_copied_column_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crc.parquet");
    let script = r#"
import random, sys, pyarrow as pa, pyarrow.parquet as pq
rng = random.Random(3)
n = 20_000
column = lambda: pa.array([rng.gauss(0, 1) for _ in range(n)], pa.float64())
table = pa.table({"x": column(), "y": column(), "payload": column()})
pq.write_table(table, sys.argv[1], compression="snappy", use_dictionary=False, write_page_checksum=True)
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "pyarrow (installed by scripts/test.sh) wrote no file: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let good = Bytes::from(std::fs::read(&path).unwrap());
    let chain = [sensor_step(1, &AddFeatures)];
    let footer = Footer::parse("crc.parquet", &good).unwrap();
    rewrite("crc.parquet", good.clone(), &footer, &chain, &version_key(SCHEMA), 2).expect("the intact file migrates");

    let meta = page_indexed_metadata(&good);
    let (start, len) = meta
        .row_group(0)
        .columns()
        .iter()
        .find(|c| c.column_path().string() == "payload")
        .unwrap()
        .byte_range();
    let mut damaged = good.to_vec();
    damaged[(start + len / 2) as usize] ^= 0x10;
    let damaged = Bytes::from(damaged);
    let footer = Footer::parse("crc.parquet", &damaged).unwrap();

    let target = RewriteTarget::new(version_key(SCHEMA), 2).verify_copied(false);
    let mut unchecked = RowGroupRewriter::new("crc.parquet", &footer, &chain, &target, Vec::new()).unwrap();
    let input = FileRanges::whole(damaged.clone());
    for rg in 0..footer.num_row_groups() {
        unchecked.rewrite_row_group(rg, &input).unwrap();
    }
    let (carried, _) = unchecked.finish().unwrap();
    assert_ne!(carried, good.to_vec(), "the unchecked copy carries the damage along");

    let err = rewrite("crc.parquet", damaged, &footer, &chain, &version_key(SCHEMA), 2)
        .expect_err("the checked rewrite refuses the damaged page")
        .to_string();
    assert!(err.starts_with("crc.parquet: "), "{err}");
    assert!(
        err.contains("column \"payload\"") && err.contains("CRC checksum mismatch"),
        "{err}"
    );
}
