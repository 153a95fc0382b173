//! The append layout: the input's bytes up to its footer kept in place, the computed chunks and
//! a new footer after them. The output reads back equal to a full decode-and-encode rewrite in
//! parquet-rs, pyarrow, DuckDB and Polars, with statistics and page index on every column; a
//! footer whose offsets cannot be trusted, or one that would leave too many dead bytes, is
//! refused for it.

mod support;

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use pqmigrate_core::rewrite::{Footer, NotAppendable, plan_append, rewrite, rewrite_appended};
use pqmigrate_core::{ColumnUse, Migration, StepError, StepRegistration, version_key};
use pqmigrate_sensor_steps::{AddFeatures, DataSpec, RenameAndEncode, SCHEMA, generate_file};
use support::*;

/// Drops every `v..` payload column (most of the file's bytes) and keeps the rest.
struct DropPayload;

impl Migration for DropPayload {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef, StepError> {
        let kept: Vec<_> = input
            .fields()
            .iter()
            .filter(|f| !f.name().starts_with('v'))
            .cloned()
            .collect();
        let mut fields = kept;
        fields.push(Arc::new(arrow::datatypes::Field::new(
            "payload_dropped",
            arrow::datatypes::DataType::Boolean,
            false,
        )));
        Ok(Arc::new(Schema::new(fields)))
    }
    fn transform(&self, batch: RecordBatch, output: &SchemaRef) -> Result<RecordBatch, StepError> {
        let columns = output
            .fields()
            .iter()
            .map(|f| match batch.column_by_name(f.name()) {
                Some(c) => c.clone(),
                None => Arc::new(arrow::array::BooleanArray::from(vec![true; batch.num_rows()])) as _,
            })
            .collect();
        Ok(RecordBatch::try_new(output.clone(), columns)?)
    }
    fn column_use(&self) -> ColumnUse {
        ColumnUse::Declared {
            reads: &["x"],
            writes: &["payload_dropped"],
        }
    }
}

static DROP_PAYLOAD: DropPayload = DropPayload;

/// Renames `sensor_type` to `sensor_kind` and `v00` to `payload_0` and nothing else: a
/// metadata-only step.
struct RenameOnly;

impl Migration for RenameOnly {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef, StepError> {
        let fields: Vec<_> = input
            .fields()
            .iter()
            .map(|f| match self.renames().iter().find(|(old, _)| f.name() == old) {
                Some((_, new)) => Arc::new(f.as_ref().clone().with_name(*new)),
                None => f.clone(),
            })
            .collect();
        Ok(Arc::new(Schema::new_with_metadata(fields, input.metadata().clone())))
    }
    fn transform(&self, batch: RecordBatch, output: &SchemaRef) -> Result<RecordBatch, StepError> {
        Ok(RecordBatch::try_new(output.clone(), batch.columns().to_vec())?)
    }
    fn column_use(&self) -> ColumnUse {
        ColumnUse::Declared {
            reads: &[],
            writes: &[],
        }
    }
    fn renames(&self) -> &'static [(&'static str, &'static str)] {
        &[("sensor_type", "sensor_kind"), ("v00", "payload_0")]
    }
}

static RENAME_ONLY: RenameOnly = RenameOnly;

/// Declares that it renames `sensor_type` but keeps the name (a step bug): the declaration must
/// not turn the column into the stand-in's nulls.
struct FalseRename;

impl Migration for FalseRename {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef, StepError> {
        RENAME_ONLY.output_schema(input).map(|_| input.clone())
    }
    fn transform(&self, batch: RecordBatch, output: &SchemaRef) -> Result<RecordBatch, StepError> {
        Ok(RecordBatch::try_new(output.clone(), batch.columns().to_vec())?)
    }
    fn column_use(&self) -> ColumnUse {
        ColumnUse::Declared {
            reads: &["x"],
            writes: &[],
        }
    }
    fn renames(&self) -> &'static [(&'static str, &'static str)] {
        &[("sensor_type", "sensor_kind")]
    }
}

static FALSE_RENAME: FalseRename = FalseRename;
static OPAQUE_RENAME_ONLY: Opaque = Opaque(&RENAME_ONLY);

fn spec() -> DataSpec {
    DataSpec {
        rows: 12_000,
        row_group_rows: 5_000,
        seed: 11,
    }
}

fn appended(input: &Bytes, chain: &[StepRegistration], to: u32) -> Bytes {
    let footer = Footer::parse("f", input).unwrap();
    rewrite_appended("f", input.clone(), &footer, chain, &version_key(SCHEMA), to)
        .unwrap()
        .expect("the file takes the append layout")
        .data
}

fn full(input: &Bytes, chain: &[StepRegistration], to: u32) -> Bytes {
    let footer = Footer::parse("f", input).unwrap();
    rewrite("f", input.clone(), &footer, chain, &version_key(SCHEMA), to)
        .unwrap()
        .data
}

#[test]
fn appended_outputs_read_back_equal_to_a_full_rewrite() {
    let input = generate_file(&spec(), 1);
    let footer = Footer::parse("f", &input).unwrap();
    let region_end = footer.footer_start().unwrap() as usize;
    for (fast, slow, to) in [
        (vec![sensor_step(1, &AddFeatures)], vec![sensor_step(1, &OPAQUE_ADD)], 2),
        (
            vec![sensor_step(1, &AddFeatures), sensor_step(2, &RenameAndEncode)],
            vec![sensor_step(1, &OPAQUE_ADD), sensor_step(2, &OPAQUE_RENAME)],
            3,
        ),
    ] {
        let out = appended(&input, &fast, to);
        assert_eq!(
            &out[..region_end],
            &input[..region_end],
            "the data region is kept as it was"
        );
        assert!(
            out.len() - region_end < input.len() / 5,
            "only the new chunks and the footer follow it: {} of {} bytes",
            out.len() - region_end,
            input.len()
        );
        let (a, b) = (read_all(&out), read_all(&full(&input, &slow, to)));
        assert_eq!(a.schema(), b.schema());
        assert_eq!(a, b, "same values as the full rewrite");
        assert_eq!(footer_version(&out, &version_key(SCHEMA)), Some(to));
        assert_features_match(&read_all(&input), &a);

        let (before, after) = (page_indexed_metadata(&input), page_indexed_metadata(&out));
        assert_eq!(after.num_row_groups(), before.num_row_groups());
        let page_index = after.page_index().expect("page index loaded");
        for rg in 0..after.num_row_groups() {
            assert_eq!(after.row_group(rg).num_rows(), before.row_group(rg).num_rows());
            for (i, column) in after.row_group(rg).columns().iter().enumerate() {
                let name = column.column_path().string();
                assert!(column.statistics().is_some(), "statistics of {name}");
                assert!(page_index.offset_index(rg, i).is_some(), "offset index of {name}");
                assert!(page_index.column_index(rg, i).is_some(), "column index of {name}");
                if let Some(old) = before
                    .row_group(rg)
                    .columns()
                    .iter()
                    .find(|c| c.column_path().string() == name && name != "device_id")
                {
                    assert_eq!(old.byte_range(), column.byte_range(), "{name} stays where it was");
                }
            }
        }
    }
}

/// A renamed column costs only the footer: its chunks stay where they were, with their
/// statistics, page index and encodings, under the new name. A step that only renames writes a
/// new footer and nothing else, and every reader sees the new names with the old values.
#[test]
fn renamed_columns_cost_only_the_footer() {
    let input = generate_file(&spec(), 5);
    let footer = Footer::parse("f", &input).unwrap();
    let region_end = footer.footer_start().unwrap() as usize;
    let before = page_indexed_metadata(&input);

    // Rename only: the data region and then a footer, nothing between.
    let out = appended(&input, &[sensor_step(1, &RENAME_ONLY)], 2);
    assert_eq!(&out[..region_end], &input[..region_end]);
    let new_footer = Footer::parse("out", &out).unwrap();
    assert_eq!(
        new_footer.footer_start(),
        Some(region_end as u64),
        "nothing but the footer follows the data region"
    );
    let (a, b) = (
        read_all(&out),
        read_all(&full(&input, &[sensor_step(1, &OPAQUE_RENAME_ONLY)], 2)),
    );
    assert_eq!(a.schema(), b.schema());
    assert_eq!(a, b, "same values as the full rewrite");
    assert!(a.column_by_name("sensor_kind").is_some() && a.column_by_name("sensor_type").is_none());
    let original = read_all(&input);
    assert_eq!(a.column_by_name("payload_0"), original.column_by_name("v00"));
    assert_eq!(a.column_by_name("sensor_kind"), original.column_by_name("sensor_type"));

    // The shipped 2->3 step declares its rename: sensor_kind is sensor_type's chunks, in place.
    for out in [
        out,
        appended(
            &input,
            &[sensor_step(1, &AddFeatures), sensor_step(2, &RenameAndEncode)],
            3,
        ),
    ] {
        let after = page_indexed_metadata(&out);
        let page_index = after.page_index().expect("page index loaded");
        let position = |meta: &parquet::file::metadata::ParquetMetaData, name: &str| {
            (0..meta.row_group(0).num_columns())
                .find(|i| meta.row_group(0).column(*i).column_path().string() == name)
                .unwrap_or_else(|| panic!("no column {name}"))
        };
        let (old, new) = (position(&before, "sensor_type"), position(&after, "sensor_kind"));
        for rg in 0..after.num_row_groups() {
            let (was, is) = (before.row_group(rg).column(old), after.row_group(rg).column(new));
            assert_eq!(
                was.byte_range(),
                is.byte_range(),
                "row group {rg}: the chunk stays where it was"
            );
            assert_eq!(was.statistics(), is.statistics());
            assert_eq!(was.encodings_mask(), is.encodings_mask());
            assert_eq!(was.offset_index_range(), is.offset_index_range());
            assert!(page_index.offset_index(rg, new).is_some() && page_index.column_index(rg, new).is_some());
        }
    }
}

/// A rename the step declares but its schema does not do is not trusted: the file is decoded
/// whole, and every value comes through.
#[test]
fn a_declared_rename_the_schema_does_not_do_is_not_trusted() {
    let input = generate_file(&spec(), 6);
    let out = full(&input, &[sensor_step(1, &FALSE_RENAME)], 2);
    assert_eq!(read_all(&out), read_all(&input), "sensor_type keeps its values");
    let footer = Footer::parse("f", &input).unwrap();
    assert_eq!(
        plan_append("f", &footer, &[sensor_step(1, &FALSE_RENAME)]).unwrap(),
        Err(NotAppendable::NothingCopied)
    );
}

/// pyarrow, DuckDB and Polars (installed by scripts/test.sh) read the appended output with the
/// same values as the full re-encode's, and find statistics and page index on every column.
#[test]
fn pyarrow_duckdb_and_polars_read_appended_outputs_as_full_rewrites() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate_file(&spec(), 4);
    let chain_fast = [sensor_step(1, &AddFeatures), sensor_step(2, &RenameAndEncode)];
    let chain_slow = [sensor_step(1, &OPAQUE_ADD), sensor_step(2, &OPAQUE_RENAME)];
    let files = [
        ("appended.parquet", appended(&input, &chain_fast, 3)),
        ("full.parquet", full(&input, &chain_slow, 3)),
        ("original.parquet", input),
    ];
    let stdout = python_check("check_outputs.py", dir.path(), &files);
    assert!(stdout.starts_with("ok: 12000 rows"), "{stdout}");
    assert!(stdout.contains("Polars"), "{stdout}");
}

/// The dead-bytes rule, both sides: a step that replaces two small columns leaves a few dead
/// bytes and keeps the append layout; one that drops the payload columns (most of the file)
/// is rewritten whole.
#[test]
fn dead_bytes_decide_between_append_and_a_whole_rewrite() {
    let input = generate_file(&spec(), 2);
    let footer = Footer::parse("f", &input).unwrap();
    let small = plan_append(
        "f",
        &footer,
        &[sensor_step(1, &AddFeatures), sensor_step(2, &RenameAndEncode)],
    )
    .unwrap()
    .expect("two replaced columns keep the append layout");
    assert!(
        small.dead > 0 && (small.dead as f64) < 0.05 * small.region_end as f64,
        "{small:?}"
    );
    match plan_append("f", &footer, &[sensor_step(1, &DROP_PAYLOAD)]).unwrap() {
        Err(NotAppendable::TooMuchDead { dead, region }) => {
            assert!(dead as f64 > 0.25 * region as f64, "{dead} of {region}")
        }
        other => panic!("dropping the payload must be rewritten whole, got {other:?}"),
    }
    // And the whole rewrite of it is what the caller falls back to: it drops the bytes.
    let compacted = full(&input, &[sensor_step(1, &DROP_PAYLOAD)], 2);
    assert!(compacted.len() < input.len() / 2);
    let unchanged = plan_append("f", &footer, &[sensor_step(1, &OPAQUE_ADD)]).unwrap();
    assert_eq!(unchanged, Err(NotAppendable::NothingCopied));
}

/// A footer whose chunks overlap, or point past the data region into the footer, is refused for
/// the append layout (the caller rewrites such a file whole, checking what it reads), never
/// copied in place.
#[test]
fn footers_with_unsafe_offsets_are_refused_for_the_append_layout() {
    let input = generate_file(&spec(), 3);
    let meta = page_indexed_metadata(&input);
    let start = Footer::parse("f", &input).unwrap().footer_start().unwrap();
    let chain = [sensor_step(1, &AddFeatures)];
    let damaged = |column: usize, offset: i64| {
        let mut row_groups: Vec<_> = meta.row_groups().to_vec();
        let rg = row_groups[0].clone();
        let mut columns: Vec<_> = rg.columns().to_vec();
        columns[column] = columns[column]
            .clone()
            .into_builder()
            .set_data_page_offset(offset)
            .set_dictionary_page_offset(None)
            .build()
            .unwrap();
        row_groups[0] = rg.into_builder().set_column_metadata(columns).build().unwrap();
        let metadata = meta.clone().into_builder().set_row_groups(row_groups).build();
        Footer::from_metadata("f", metadata).unwrap().with_footer_start(start)
    };
    let next = meta.row_group(0).column(3).byte_range().0 as i64;
    for (what, footer) in [
        ("overlapping", damaged(2, next + 10)),
        ("past the data region", damaged(5, start as i64 - 10)),
        ("inside the magic", damaged(5, 1)),
    ] {
        match plan_append("f", &footer, &chain).unwrap() {
            Err(NotAppendable::BadOffsets(message)) => assert!(message.contains("row group 0"), "{what}: {message}"),
            other => panic!("{what}: expected a refusal, got {other:?}"),
        }
    }
    assert!(
        plan_append("f", &Footer::parse("f", &input).unwrap(), &chain)
            .unwrap()
            .is_ok()
    );
}
