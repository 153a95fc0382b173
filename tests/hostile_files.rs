//! Hostile files: footers, row groups, nesting and chunk ranges that would make a reader
//! allocate or fetch without bound. Each is a per-object error naming the object and the limit,
//! the rest of the data set migrates, and the process's peak memory stays small.

mod support;

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, StructArray};
use arrow::datatypes::Field;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::{ParquetMetaDataReader, ParquetMetaDataWriter};
use parquet::file::properties::WriterProperties;
use pqmigrate::rewrite::limits::{MAX_NESTING, MAX_ROW_GROUPS};
use pqmigrate::{Error, MigrateOptions, Registry, Store, migrate_object};
use pqmigrate_sensor_steps::{DataSpec, SCHEMA, generate_file};
use support::*;

fn tiny(seed: u64) -> Bytes {
    let spec = DataSpec {
        rows: 200,
        row_group_rows: 100,
        seed,
    };
    generate_file(&spec, seed)
}

/// A file whose footer claims `declared` bytes (all zeros).
fn huge_footer(declared: u32) -> Bytes {
    let mut data = b"PAR1".to_vec();
    data.resize(4 + declared as usize, 0);
    data.extend_from_slice(&declared.to_le_bytes());
    data.extend_from_slice(b"PAR1");
    data.into()
}

fn write(batch: &RecordBatch, properties: WriterProperties) -> Bytes {
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(properties)).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
    out.into()
}

/// A valid file of `count` one-row row groups.
fn many_row_groups(count: usize) -> Bytes {
    let values: ArrayRef = Arc::new(Int32Array::from_iter_values(0..count as i32));
    let batch = RecordBatch::try_from_iter([("v", values)]).unwrap();
    let properties = WriterProperties::builder()
        .set_max_row_group_row_count(Some(1))
        .set_statistics_enabled(parquet::file::properties::EnabledStatistics::None)
        .build();
    write(&batch, properties)
}

/// A valid file with one leaf nested `depth` structs deep.
fn deeply_nested(depth: usize) -> Bytes {
    let mut column: ArrayRef = Arc::new(Int32Array::from(vec![1, 2]));
    for level in 0..depth {
        let field = Arc::new(Field::new(format!("l{level}"), column.data_type().clone(), true));
        column = Arc::new(StructArray::from(vec![(field, column)]));
    }
    let batch = RecordBatch::try_from_iter([("root", column)]).unwrap();
    write(&batch, WriterProperties::builder().build())
}

/// `good` with a new footer in which every column chunk claims the whole data region.
fn chunks_spanning_the_file(good: &Bytes) -> Bytes {
    let metadata_len = u32::from_le_bytes(good[good.len() - 8..good.len() - 4].try_into().unwrap()) as usize;
    let footer_start = good.len() - 8 - metadata_len;
    let metadata = ParquetMetaDataReader::new().parse_and_finish(good).unwrap();
    let row_groups = metadata
        .row_groups()
        .iter()
        .map(|rg| {
            let columns = rg
                .columns()
                .iter()
                .map(|c| {
                    c.clone()
                        .into_builder()
                        .set_dictionary_page_offset(None)
                        .set_data_page_offset(4)
                        .set_total_compressed_size(footer_start as i64 - 4)
                        .build()
                        .unwrap()
                })
                .collect();
            rg.clone().into_builder().set_column_metadata(columns).build().unwrap()
        })
        .collect();
    let metadata = metadata.into_builder().set_row_groups(row_groups).build();
    let mut out = good[..footer_start].to_vec();
    ParquetMetaDataWriter::new(&mut out, &metadata).finish().unwrap();
    out.into()
}

/// Each hostile file with the limit its error must name.
fn corpus() -> Vec<(&'static str, Bytes, &'static str)> {
    let rows = many_row_groups(MAX_ROW_GROUPS + 1);
    vec![
        (
            "d/sensorData_footer.parq.snappy",
            huge_footer(200 * 1024 * 1024),
            "footer or page index would need a read of",
        ),
        ("d/sensorData_rowgroups.parq.snappy", rows, "row groups; the limit is"),
        (
            "d/sensorData_nested.parq.snappy",
            deeply_nested(MAX_NESTING + 6),
            "levels deep; the limit is",
        ),
        (
            "d/sensorData_spanning.parq.snappy",
            chunks_spanning_the_file(&tiny(9)),
            "they overlap",
        ),
    ]
}

#[tokio::test]
async fn each_hostile_file_is_refused_naming_the_limit() {
    let store = Store::memory();
    let registry = Registry::from_inventory().unwrap();
    for (key, data, limit) in corpus() {
        store.put(key, data.clone(), &[], Default::default()).await.unwrap();
        let err = migrate_object(&store, &registry, key, &MigrateOptions::new(SCHEMA, 3))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Limit { .. }), "{key}: {err}");
        let message = err.to_string();
        assert!(message.starts_with(key) && message.contains(limit), "{message}");
        assert_eq!(raw_bytes(&store, key).await, data, "{key} untouched");
    }
}

#[test]
fn a_data_set_with_hostile_files_migrates_the_rest_in_bounded_memory() {
    let root = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = Store::local(root.path()).unwrap();
    let corpus = corpus();
    let good: Vec<(String, Bytes)> = (0..6)
        .map(|i| (format!("d/sensorData_{i:03}.parq.snappy"), tiny(i)))
        .collect();
    rt.block_on(async {
        for (key, data, _) in &corpus {
            store.put(key, data.clone(), &[], Default::default()).await.unwrap();
        }
        for (key, data) in &good {
            store.put(key, data.clone(), &[], Default::default()).await.unwrap();
        }
    });
    let url = format!("file://{}/d", root.path().display());
    let out = cli(&["run", &url, "--schema", SCHEMA, "--to", "3", "--json"], &[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let summary = json(&out);
    assert_eq!(summary["by_status"]["migrated"].as_u64(), Some(6), "{summary}");
    let failures = summary["failures"].as_array().unwrap();
    assert_eq!(failures.len(), corpus.len(), "{summary}");
    for (key, _, limit) in &corpus {
        // The store is the folder the URL names, so keys are relative to it.
        let key = key.trim_start_matches("d/");
        let failure = failures
            .iter()
            .find(|f| f[0] == key)
            .unwrap_or_else(|| panic!("{key} not named: {summary}"));
        assert!(failure[1].as_str().unwrap().contains(limit), "{failure}");
    }
    let peak = summary["peak_rss_bytes"].as_u64().expect("peak memory reported");
    assert!(peak > 1024 * 1024, "{peak}");
    assert!(
        peak < 150 * 1024 * 1024,
        "peak RSS {} MB with a footer claiming 200 MB",
        peak / (1024 * 1024)
    );
    rt.block_on(async {
        for (key, data) in &good {
            let migrated = raw_bytes(&store, key).await;
            assert_eq!(footer_version(&migrated, &pqmigrate::version_key(SCHEMA)), Some(3));
            assert_features_match(&read_all(data), &read_all(&migrated));
        }
    });
}
