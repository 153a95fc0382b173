//! Scanning 10,000 objects on S3 (the endpoint in `PQM_S3_ENDPOINT`): listing plus one version
//! look-up (GetObjectTagging) per object, 32 look-ups in flight. Throughput is objects per
//! second.

mod common;

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::stream::{self, StreamExt};
use pqmigrate::scan::{ScanSpec, list_candidates, scan};
use pqmigrate::{MigrateOptions, version_key};
use pqmigrate_sensor_steps::SCHEMA;

const OBJECTS: usize = 10_000;

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = runtime.block_on(async {
        let store = common::s3_bucket("scan").await;
        stream::iter(0..OBJECTS)
            .for_each_concurrent(64, |i| {
                let store = store.clone();
                async move {
                    let tags = if i % 3 == 0 {
                        vec![(version_key(SCHEMA), "2".to_string())]
                    } else {
                        vec![]
                    };
                    let key = format!("data/day={:02}/sensorData_{i:05}.parq.snappy", i % 30);
                    store
                        .put(&key, bytes::Bytes::from_static(b"PAR1"), &tags, Default::default())
                        .await
                        .expect("put");
                }
            })
            .await;
        store
    });
    let spec = ScanSpec::default().prefixes(["data/".to_string()]);
    let options = MigrateOptions::new(SCHEMA, 3);
    let mut group = c.benchmark_group("scan");
    group.throughput(Throughput::Elements(OBJECTS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.bench_function("objects", |b| {
        b.to_async(&runtime).iter(|| async {
            let found = scan(&store, list_candidates(&store, &spec), &options, 32)
                .filter(|o| std::future::ready(matches!(o, Ok(o) if o.version.is_ok())))
                .count()
                .await;
            assert_eq!(found, OBJECTS);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
