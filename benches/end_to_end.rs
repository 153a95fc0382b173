//! Whole runs against S3 (the endpoint in `PQM_S3_ENDPOINT`; scripts/bench.sh starts SeaweedFS):
//! 200 sensorData files migrated 1->2 by the local executor at concurrency 1, 8 and 32.
//! Throughput is files per second. Files have 2,780 rows (a fiftieth of the reference case's, about 1 MB)
//! so a sample takes seconds and the disk does not fill; the per-byte cost is measured by the
//! `rewrite` bench.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures::stream::{self, StreamExt};
use pqmigrate::scan::ScanSpec;
use pqmigrate::{MigrateOptions, Migrator, RunOptions, Status, Store};
use pqmigrate_sensor_steps::{DataSpec, SCHEMA, generate_file};

const FILES: usize = 200;

async fn upload(store: &Store, prefix: &str, data: &bytes::Bytes) {
    stream::iter(0..FILES)
        .for_each_concurrent(32, |i| {
            let store = store.clone();
            let data = data.clone();
            async move {
                let key = format!("{prefix}/sensorData_{i:03}.parq.snappy");
                store.put(&key, data, &[], Default::default()).await.expect("put");
            }
        })
        .await;
}

/// Deletes a sample's objects so samples do not pile up on the server's disk.
async fn remove(store: &Store, prefix: &str) {
    let keys: Vec<String> = store
        .list_prefix(&format!("{prefix}/"), None)
        .map(|c| c.expect("list").key)
        .collect()
        .await;
    stream::iter(keys)
        .for_each_concurrent(32, |key| {
            let store = store.clone();
            async move {
                store.delete(&key).await.expect("delete");
            }
        })
        .await;
}

async fn run(store: &Store, prefix: &str, concurrency: usize) -> Duration {
    let spec = ScanSpec::default().prefixes([format!("{prefix}/")]).concurrency(32);
    let start = Instant::now();
    let report = Migrator::new(
        store.clone(),
        Arc::new(common::passthrough_registry()),
        MigrateOptions::new(SCHEMA, 2),
    )
    .scan(spec)
    .run_options(RunOptions::default().concurrency(concurrency))
    .run()
    .await
    .expect("run");
    let elapsed = start.elapsed();
    assert_eq!(
        report.summary.count(Status::Migrated),
        FILES as u64,
        "{:?}",
        report.summary
    );
    elapsed
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = runtime.block_on(common::s3_bucket("e2e"));
    let data = generate_file(
        &DataSpec {
            rows: 2_780,
            ..DataSpec::default()
        },
        0,
    );
    let mut group = c.benchmark_group("end_to_end");
    group.throughput(Throughput::Elements(FILES as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    let mut round = 0usize;
    for concurrency in [1usize, 8, 32] {
        group.bench_with_input(
            BenchmarkId::new("files", concurrency),
            &concurrency,
            |b, &concurrency| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        round += 1;
                        let prefix = format!("c{concurrency}-r{round}");
                        runtime.block_on(upload(&store, &prefix, &data));
                        total += runtime.block_on(run(&store, &prefix, concurrency));
                        runtime.block_on(remove(&store, &prefix));
                    }
                    total
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
