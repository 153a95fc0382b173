//! Migration 1->2 of one sensorData file at the reference size (1,000,000 rows, ~205 MB
//! stored) on S3 (SeaweedFS, or the S3 in `PQM_S3_ENDPOINT`): the data region copied in place by
//! the server with only the read columns fetched (trusting copied pages) or the whole region
//! read to check them, today's whole-file stream, a raw GET + PUT of the same bytes as the
//! floor of today's path, and the server's copy of the data region alone (the floor of the
//! appended paths). Also writes the bytes each path moved to `target/bench-report/copy-in-place.json`.
//!
//! `cargo bench --bench copy_in_place` (scripts/bench.sh runs it and records the ratios). It
//! writes the 311 MB object about sixty times; SeaweedFS keeps the bytes overwritten until its
//! volumes are vacuumed, about 20 GB by the end, which scripts/bench.sh does as the disk fills.
//! Run alone against SeaweedFS, it needs that much free disk (a full disk shows as HTTP 500s).

mod common;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pqmigrate::rewrite::Footer;
use pqmigrate::store::CopySource;
use pqmigrate::transfer::ConditionalUpload;
use pqmigrate::{MigrateOptions, Migrated, Outcome, Registry, Store, migrate_object};
use pqmigrate_sensor_steps::{DataSpec, SCHEMA, generate_file};

const KEY: &str = "parquet/year=2019/month=3/day=01/sensorData_000.parq.snappy";

async fn migrate(store: &Store, registry: &Registry, verify: bool) -> Migrated {
    let mut options = MigrateOptions::new(SCHEMA, 2);
    options.verify_copied = verify;
    let record = migrate_object(store, registry, KEY, &options).await.expect("migrate");
    match record.outcome {
        Outcome::Migrated(done) => *done,
        other => panic!("expected migrated, got {other:?}"),
    }
}

fn bench(c: &mut Criterion) {
    // `cargo test --all-targets` runs each bench once, unoptimised: a smaller file then (its
    // data region still fills a copied part), the reference size under `cargo bench`.
    let benching = std::env::args().any(|a| a == "--bench");
    let spec = DataSpec {
        rows: if benching { 1_000_000 } else { 40_000 },
        row_group_rows: 139_000,
        seed: 42,
    };
    let data = generate_file(&spec, 0);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = runtime.block_on(common::s3_bucket("copy-in-place"));
    let streaming = store.clone().without_copied_parts();
    let registry = common::passthrough_registry();

    let reset = |store: &Store| {
        runtime
            .block_on(store.put(KEY, data.clone(), &[], Default::default()))
            .expect("put");
    };
    // The bytes each path moves, from one migration each.
    let mut moved = serde_json::Map::new();
    for (name, on, verify) in [
        ("appended_trusted", &store, false),
        ("appended_checked", &store, true),
        ("streamed_checked", &streaming, true),
    ] {
        reset(&store);
        let done = runtime.block_on(migrate(on, &registry, verify));
        moved.insert(name.to_string(), serde_json::to_value(&done).expect("json"));
    }
    let footer = Footer::parse("f", &data).expect("footer");
    let meta = parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(&data)
        .expect("metadata");
    let read: u64 = meta
        .row_groups()
        .iter()
        .flat_map(|rg| rg.columns())
        .filter(|c| ["x", "y"].contains(&c.column_path().string().as_str()))
        .map(|c| c.byte_range().1)
        .sum();
    moved.insert("file_bytes".into(), data.len().into());
    moved.insert("region_end".into(), footer.footer_start().expect("footer start").into());
    moved.insert("read_chunks".into(), read.into());
    if benching {
        std::fs::create_dir_all("target/bench-report").expect("report folder");
        std::fs::write(
            "target/bench-report/copy-in-place.json",
            serde_json::to_string_pretty(&moved).expect("json"),
        )
        .expect("write");
    }

    let mut group = c.benchmark_group("copy_in_place");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    // Each iteration starts from the version 1 object; only `work` is timed, after `prepare`.
    let timed = |iters: u64, prepare: &dyn Fn() -> Option<CopySource>, work: &dyn Fn(Option<CopySource>)| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            reset(&store);
            let prepared = prepare();
            let start = Instant::now();
            work(prepared);
            total += start.elapsed();
        }
        total
    };
    let nothing = || None;
    let migration = |on: &Store, verify: bool| {
        runtime.block_on(migrate(on, &registry, verify));
    };
    group.bench_function("raw_get_put", |b| {
        b.iter_custom(|iters| {
            timed(iters, &nothing, &|_| {
                runtime.block_on(async {
                    let (_, bytes) = store.get(KEY, Default::default()).await.expect("get");
                    store.put(KEY, bytes, &[], Default::default()).await.expect("put");
                })
            })
        })
    });
    // The server's own copy of the data region, alone (into another key, with a 1 KiB last
    // part): the floor of both appended paths on this store.
    let region_end = footer.footer_start().expect("footer start");
    let source = || {
        let head = runtime.block_on(store.head(KEY)).expect("head");
        Some(CopySource {
            key: KEY.to_string(),
            e_tag: head.e_tag.expect("an ETag"),
            version_id: head.version_id,
            range: 0..region_end,
        })
    };
    group.bench_function("server_copy_only", |b| {
        b.iter_custom(|iters| {
            timed(iters, &source, &|source| {
                let source = source.expect("a source");
                runtime.block_on(async {
                    let mut upload = ConditionalUpload::new_object(&store, "copy-only/region");
                    upload.copy_first(&source).await.expect("copy");
                    upload
                        .push(bytes::Bytes::from(vec![0u8; 1024]))
                        .await
                        .expect("last part");
                    upload.copies_done().await.expect("copied");
                    upload.finish().await.expect("complete");
                })
            })
        })
    });
    group.bench_function("appended_trusted", |b| {
        b.iter_custom(|iters| timed(iters, &nothing, &|_| migration(&store, false)))
    });
    group.bench_function("appended_checked", |b| {
        b.iter_custom(|iters| timed(iters, &nothing, &|_| migration(&store, true)))
    });
    group.bench_function("streamed_checked", |b| {
        b.iter_custom(|iters| timed(iters, &nothing, &|_| migration(&streaming, true)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
