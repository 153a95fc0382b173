//! Migration 1->2 of one sensorData file (139,000 rows, 65 columns, row groups of 50,000,
//! Snappy) from the in-memory store: column-chunk passthrough, full decode and encode, and a raw
//! get + put of the same bytes as the floor. Throughput is MB/s of input.
//!
//! `cargo bench --bench rewrite` (scripts/bench.sh runs it and records the ratios).

mod common;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
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
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
