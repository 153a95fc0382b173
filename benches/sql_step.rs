//! Migration 1->2 of the reference sensorData file (139,000 rows, 65 columns, row groups of
//! 50,000, Snappy) from the in-memory store, by the SQL file `V2__add_features.sql` and by the
//! compiled step it restates, in one run: the cost of planning and evaluating with DataFusion
//! and of the Arrow IPC bridge to its Arrow version.
//!
//! `cargo bench --bench sql_step` (scripts/bench.sh runs it and records the ratio).

mod common;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pqmigrate::{MigrateOptions, Outcome, Registry, Store, migrate_object};
use pqmigrate_sensor_steps::{DataSpec, SCHEMA, generate_file};

const KEY: &str = "parquet/year=2019/month=3/day=01/sensorData_000.parq.snappy";

fn sql_registry() -> Registry {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sql-migrations");
    let migrations = pqmigrate_sql::Migrations::from_dir(dir).expect("the example's migrations");
    Registry::from_steps(migrations.registrations().into_iter().filter(|s| s.from == 1)).expect("registry")
}

fn bench(c: &mut Criterion) {
    let data = generate_file(&DataSpec::default(), 0);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let compiled = common::passthrough_registry();
    let sql = sql_registry();

    let mut group = c.benchmark_group("sql_step");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(20));
    let timed = |registry: &Registry, iters: u64| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let store = Store::memory();
            runtime
                .block_on(store.put(KEY, data.clone(), &[], Default::default()))
                .expect("put");
            let start = Instant::now();
            let record = runtime
                .block_on(migrate_object(&store, registry, KEY, &MigrateOptions::new(SCHEMA, 2)))
                .expect("migrate");
            total += start.elapsed();
            assert!(matches!(record.outcome, Outcome::Migrated(_)));
        }
        total
    };
    group.bench_function("compiled", |b| b.iter_custom(|iters| timed(&compiled, iters)));
    group.bench_function("sql", |b| b.iter_custom(|iters| timed(&sql, iters)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
