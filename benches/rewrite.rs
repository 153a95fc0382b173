//! Migration 1->2 of one sensorData file (139,000 rows, 65 columns, row groups of 50,000,
//! Snappy) from the in-memory store: column-chunk passthrough, full decode and encode, and a raw
//! get + put of the same bytes as the floor. Throughput is MB/s of input. Beside them, the floor
//! of the default mode's check of copied pages: Snappy decompression of every page of the file
//! into one reused buffer, nothing else (the check parses, counts and decompresses them).
//!
//! `cargo bench --bench rewrite` (scripts/bench.sh runs it and records the ratios).

mod common;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use parquet::basic::Compression;
use parquet::column::page::{Page, PageReader};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::serialized_reader::SerializedPageReader;
use pqmigrate::{MigrateOptions, Outcome, Registry, Store, migrate_object};
use pqmigrate_sensor_steps::{DataSpec, SCHEMA, generate_file};

const KEY: &str = "parquet/year=2019/month=3/day=01/sensorData_000.parq.snappy";

async fn fresh_store(data: &bytes::Bytes) -> Store {
    let store = Store::memory();
    store
        .put(KEY, data.clone(), &[], Default::default())
        .await
        .expect("put");
    store
}

async fn migrate(store: &Store, registry: &Registry, verify: bool) {
    let mut options = MigrateOptions::new(SCHEMA, 2);
    options.verify_copied = verify;
    let record = migrate_object(store, registry, KEY, &options).await.expect("migrate");
    assert!(matches!(record.outcome, Outcome::Migrated(_)));
}

/// The Snappy streams of every page of `data`, as stored (each page's levels left out).
fn snappy_streams(data: &bytes::Bytes) -> Vec<bytes::Bytes> {
    let reader = SerializedFileReader::new(data.clone()).expect("a parquet file");
    let mut streams = Vec::new();
    for row_group in reader.metadata().row_groups() {
        for column in row_group.columns() {
            assert_eq!(column.compression(), Compression::SNAPPY);
            // Read as stored: the page reader would otherwise decompress them itself.
            let stored = column
                .clone()
                .into_builder()
                .set_compression(Compression::UNCOMPRESSED)
                .build()
                .expect("metadata");
            let rows = row_group.num_rows() as usize;
            let mut pages =
                SerializedPageReader::new(std::sync::Arc::new(data.clone()), &stored, rows, None).expect("page reader");
            while let Some(page) = pages.get_next_page().expect("page") {
                let levels = match &page {
                    Page::DataPageV2 {
                        def_levels_byte_len,
                        rep_levels_byte_len,
                        is_compressed: true,
                        ..
                    } => (def_levels_byte_len + rep_levels_byte_len) as usize,
                    Page::DataPageV2 { .. } => continue,
                    _ => 0,
                };
                streams.push(page.buffer().slice(levels..));
            }
        }
    }
    streams
}

/// Decompresses every stream into `buffer`; returns the bytes they hold.
fn decompress_all(streams: &[bytes::Bytes], buffer: &mut Vec<u8>) -> usize {
    let mut decoder = snap::raw::Decoder::new();
    streams
        .iter()
        .map(|stream| {
            let len = snap::raw::decompress_len(stream).expect("snappy");
            if buffer.len() < len {
                buffer.resize(len, 0);
            }
            decoder.decompress(stream, &mut buffer[..len]).expect("snappy")
        })
        .sum()
}

fn bench(c: &mut Criterion) {
    let data = generate_file(&DataSpec::default(), 0);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let passthrough = common::passthrough_registry();
    let full = common::full_registry();

    let mut group = c.benchmark_group("rewrite");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(20));

    // Each iteration starts from a store holding the version 1 file; only the migration is timed.
    let timed = |registry: &Registry, verify: bool, iters: u64| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let store = runtime.block_on(fresh_store(&data));
            let start = Instant::now();
            runtime.block_on(migrate(&store, registry, verify));
            total += start.elapsed();
        }
        total
    };
    group.bench_function("raw_copy", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let store = runtime.block_on(fresh_store(&data));
                let start = Instant::now();
                runtime.block_on(async {
                    // The bytes are copied once, as receiving them from a network would: the
                    // in-memory store otherwise hands back the very buffer it holds.
                    let (_, bytes) = store.get(KEY, Default::default()).await.expect("get");
                    let copy = bytes::Bytes::copy_from_slice(&bytes);
                    store.put(KEY, copy, &[], Default::default()).await.expect("put");
                });
                total += start.elapsed();
            }
            total
        })
    });
    group.bench_function("passthrough", |b| {
        b.iter_custom(|iters| timed(&passthrough, true, iters))
    });
    group.bench_function("passthrough_unverified", |b| {
        b.iter_custom(|iters| timed(&passthrough, false, iters))
    });
    group.bench_function("full_reencode", |b| b.iter_custom(|iters| timed(&full, true, iters)));
    let streams = snappy_streams(&data);
    let mut buffer = Vec::new();
    assert!(decompress_all(&streams, &mut buffer) > data.len() / 2);
    group.bench_function("snappy_decompression_only", |b| {
        b.iter(|| decompress_all(&streams, &mut buffer))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
