//! Shared helpers of the integration tests: a bucket per test on the S3 server from the
//! environment, sample data, independent read-back.
#![allow(dead_code)]

pub mod runtime_api;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use arrow::array::{Array, Float64Array};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use pqmigrate::rewrite::Footer;
use pqmigrate::store::ReadOptions;
use pqmigrate::{Store, StoreOptions};
use pqmigrate_sensor_steps::DataSpec;
use serde_json::Value;

/// The S3 endpoint under test. The test command (scripts/test.sh) starts SeaweedFS and sets it;
/// a test that needs S3 fails loudly without it rather than skipping.
pub fn s3_endpoint() -> String {
    std::env::var("PQM_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!("PQM_S3_ENDPOINT is not set: run the tests with scripts/test.sh, which starts SeaweedFS, or point it at any S3 endpoint")
    })
}

/// S3 endpoint options for the server under test.
pub fn s3_options() -> StoreOptions {
    StoreOptions::default().endpoint(s3_endpoint()).max_retries(2)
}

/// A new, empty bucket with versioning on, private to the calling test.
pub async fn new_bucket(test: &str) -> (Store, String) {
    new_bucket_on(&s3_options(), test).await
}

/// The second S3 implementation of the test matrix, moto server: the test command starts it
/// and sets `PQM_MOTO_ENDPOINT`.
pub fn moto_endpoint() -> String {
    std::env::var("PQM_MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!("PQM_MOTO_ENDPOINT is not set: run the tests with scripts/test.sh, which starts moto server")
    })
}

/// A bucket or container name no other test of any process uses: `prefix-test-pid-n`, lower
/// case, at most 63 characters, never ending in `-`.
pub fn unique_name(prefix: &str, test: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let name: String = format!(
        "{prefix}-{}-{}-{}",
        test.replace('_', "-"),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
    .to_lowercase()
    .chars()
    .take(63)
    .collect();
    name.trim_end_matches('-').to_string()
}

/// A new, empty, versioned bucket on the S3 server `options` name.
pub async fn new_bucket_on(options: &StoreOptions, test: &str) -> (Store, String) {
    let prefix = std::env::var("PQM_S3_BUCKET_PREFIX").unwrap_or_else(|_| "pqm".into());
    let name = unique_name(&prefix, test);
    let store = Store::s3(&name, options).expect("S3 store");
    let api = store.s3_api().expect("S3 API");
    api.create_bucket().await.expect("create bucket");
    api.set_versioning(true).await.expect("enable versioning");
    (store, name)
}

/// The emulators of the test matrix beside S3: Azurite (Azure Blob) and fake-gcs-server (GCS).
/// The test command starts both and sets their endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    /// Azurite, at `PQM_AZURE_ENDPOINT`, account from `AZURE_STORAGE_ACCOUNT_NAME`/`_KEY`.
    Azure,
    /// fake-gcs-server, at `PQM_GCS_ENDPOINT`.
    Gcs,
}

impl Cloud {
    fn variable(self) -> &'static str {
        match self {
            Cloud::Azure => "PQM_AZURE_ENDPOINT",
            Cloud::Gcs => "PQM_GCS_ENDPOINT",
        }
    }

    /// The store options that reach the emulator.
    pub fn options(self) -> StoreOptions {
        let endpoint = std::env::var(self.variable()).unwrap_or_else(|_| {
            panic!(
                "{} is not set: run the tests with scripts/test.sh, which starts the emulators",
                self.variable()
            )
        });
        match self {
            Cloud::Azure => StoreOptions::default().azure_endpoint(endpoint),
            Cloud::Gcs => StoreOptions::default().gcs_endpoint(endpoint),
        }
    }

    /// A new, empty container (Azure) or bucket (GCS): its store and its URL.
    pub fn new_store(self, test: &str) -> (Store, String) {
        let name = unique_name("pqm", test);
        let name = match self {
            Cloud::Azure => name,
            // gcp-storage-emulator answers 501 to a percent-encoded bucket name, and object_store
            // encodes `-`.
            Cloud::Gcs => name.replace('-', ""),
        };
        let (kind, scheme) = match self {
            Cloud::Azure => ("azure", "az"),
            Cloud::Gcs => ("gcs", "gs"),
        };
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cloud_bucket.py");
        let status = std::process::Command::new("python3")
            .args([script, kind, &name])
            .status()
            .expect("python3");
        assert!(status.success(), "creating {kind} container {name}");
        let url = format!("{scheme}://{name}/");
        let (store, _) = Store::open(&url, &self.options()).expect("cloud store");
        (store, url)
    }
}

/// A second, independent client for the same bucket.
pub fn other_client(bucket: &str) -> Store {
    Store::s3(bucket, &s3_options()).expect("S3 store")
}

/// A small sensorData file (3 row groups).
pub fn small_spec() -> DataSpec {
    DataSpec {
        rows: 2_500,
        row_group_rows: 1_000,
        seed: 42,
    }
}

/// Reads an object's bytes.
pub async fn raw_bytes(store: &Store, key: &str) -> Bytes {
    store.get(key, ReadOptions::default()).await.unwrap().1
}

/// Reads a specific version's bytes.
pub async fn version_bytes(store: &Store, key: &str, version: &str) -> Bytes {
    let options = ReadOptions {
        version_id: Some(version.to_string()),
        ..ReadOptions::default()
    };
    store.get(key, options).await.unwrap().1
}

/// All rows of a Parquet file as one batch.
pub fn read_all(data: &Bytes) -> RecordBatch {
    let reader = ParquetRecordBatchReaderBuilder::try_new(data.clone())
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

/// A float64 column by name.
pub fn floats(batch: &RecordBatch, name: &str) -> Float64Array {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("column {name} missing"))
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap_or_else(|| panic!("column {name} is not float64"))
        .clone()
}

/// The footer version of a file.
pub fn footer_version(data: &Bytes, version_key: &str) -> Option<u32> {
    Footer::parse("x", data).unwrap().version("x", version_key).unwrap()
}

/// Asserts the 1->2 features of `migrated` match a recomputation from `original`'s x and y.
pub fn assert_features_match(original: &RecordBatch, migrated: &RecordBatch) {
    assert_eq!(original.num_rows(), migrated.num_rows());
    let (x, y) = (floats(original, "x"), floats(original, "y"));
    let (m, a, n) = (
        floats(migrated, "magnitude"),
        floats(migrated, "angle"),
        floats(migrated, "x_norm"),
    );
    for i in 0..x.len() {
        if x.is_null(i) || y.is_null(i) {
            assert!(
                m.is_null(i) && a.is_null(i) && n.is_null(i),
                "row {i}: null in, null out"
            );
            continue;
        }
        let (xv, yv) = (x.value(i), y.value(i));
        assert_eq!(m.value(i), xv.hypot(yv), "magnitude row {i}");
        assert_eq!(a.value(i), yv.atan2(xv), "angle row {i}");
        if xv.hypot(yv) == 0.0 {
            assert!(n.is_null(i), "x_norm null at magnitude 0, row {i}");
        } else {
            assert_eq!(n.value(i), xv / xv.hypot(yv), "x_norm row {i}");
        }
    }
}

/// A loopback TCP proxy to the S3 server that drops every connection once the client has sent
/// more than `cut_after` bytes on it: a real upload dying mid-body. Small requests pass.
pub async fn cutting_proxy(upstream: &str, cut_after: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = upstream.trim_start_matches("http://").to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.split();
                let (mut server_read, mut server_write) = tokio::io::split(server);
                let upload = async {
                    let mut sent = 0usize;
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match client_read.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if sent + n > cut_after {
                            let keep = cut_after.saturating_sub(sent);
                            let _ = server_write.write_all(&buf[..keep]).await;
                            return;
                        }
                        sent += n;
                        if server_write.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                let download = async {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                };
                // Whichever side ends first ends the connection: a cut upload drops both.
                tokio::select! {
                    _ = upload => {},
                    _ = download => {},
                }
            });
        }
    });
    format!("http://{addr}")
}

/// `store` with another writer that puts `theirs` over the object just before each conditional
/// write: the worst moment for a lost update.
pub fn with_racing_writer(store: &Store, theirs: Bytes) -> Store {
    use pqmigrate::store::fault::FaultConfig;
    use pqmigrate::store::{SharedIo, WriteOptions};
    let config = FaultConfig {
        before_conditional_put: Some(Arc::new(move |io: SharedIo, key: String| {
            let data = theirs.clone();
            Box::pin(async move {
                io.put(&key, data.into(), WriteOptions::default()).await.unwrap();
            })
        })),
        ..FaultConfig::default()
    };
    store.clone().with_faults(config).0
}

/// Runs the library's `run` use case over the `.parquet` objects under `prefix` to version 3 of
/// sensorData, asserting that all `count` are migrated.
pub async fn run_to_3(store: &Store, prefix: &str, count: u64) -> pqmigrate::RunReport {
    let registry = Arc::new(pqmigrate::Registry::from_inventory().unwrap());
    let report = pqmigrate::Migrator::new(
        store.clone(),
        registry,
        pqmigrate::MigrateOptions::new(pqmigrate_sensor_steps::SCHEMA, 3),
    )
    .scan(
        pqmigrate::scan::ScanSpec::default()
            .prefixes([prefix.to_string()])
            .suffix(".parquet"),
    )
    .run()
    .await
    .unwrap();
    assert_eq!(
        report.summary.count(pqmigrate::Status::Migrated),
        count,
        "{:?}",
        report.summary
    );
    report
}

/// Another writer replaces `changed` after the run `run`, which is then rolled back: every
/// other object the run wrote is restored, `changed` is refused naming it, and the other
/// writer's bytes stand.
pub async fn roll_back_around_a_change(
    store: &Store,
    run: &pqmigrate::RunReport,
    changed: &str,
    restored: u64,
) -> pqmigrate::rollback::RollbackReport {
    use pqmigrate::Status;
    use pqmigrate::rollback::{RollbackOptions, rollback_run};
    let theirs = pqmigrate_sensor_steps::generate_file(&small_spec(), 77);
    store
        .put(changed, theirs.clone(), &[], Default::default())
        .await
        .unwrap();
    let rollback = rollback_run(store, "_pqmigrate/runs/", &run.info.run_id, &RollbackOptions::default())
        .await
        .unwrap();
    assert!(rollback.failure.is_none(), "{:?}", rollback.failure);
    assert_eq!(rollback.info.rolls_back.as_deref(), Some(run.info.run_id.as_str()));
    assert_eq!(
        rollback.summary.count(Status::Migrated),
        restored,
        "{:?}",
        rollback.summary
    );
    assert_eq!(rollback.summary.failures.len(), 1);
    let (key, why) = &rollback.summary.failures[0];
    assert_eq!(key, changed);
    assert!(why.contains("not restored") && why.contains(changed), "{why}");
    assert_eq!(
        raw_bytes(store, changed).await,
        theirs,
        "the other writer's change stands"
    );
    rollback
}

/// Migrates `key` to `target` of `schema` and returns the version it was found at and the
/// migration, failing on any other outcome.
pub async fn migrate_done(store: &Store, key: &str, schema: &str, target: u32) -> (u32, pqmigrate::Migrated) {
    let registry = pqmigrate::Registry::from_inventory().unwrap();
    let options = pqmigrate::MigrateOptions::new(schema, target);
    let record = pqmigrate::migrate_object(store, &registry, key, &options)
        .await
        .unwrap();
    match record.outcome {
        pqmigrate::Outcome::Migrated(done) => (record.from.unwrap(), *done),
        other => panic!("{key}: expected migrated, got {other:?}"),
    }
}

/// The CLI binary with the sensorData steps: the `sensor_data` example, built by
/// `cargo build --examples` (scripts/test.sh does it before the tests).
/// A bootstrap of examples/sensor-lambda built by `cargo build --workspace --bins`
/// (scripts/test.sh does it).
pub fn bootstrap(name: &str) -> PathBuf {
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let binary = deps.parent().unwrap().join(name);
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build --workspace --bins` (scripts/test.sh does)",
        binary.display()
    );
    binary
}

pub fn cli_binary() -> PathBuf {
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let binary = deps.parent().unwrap().join("examples").join("sensor_data");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build --workspace --examples` (scripts/test.sh does)",
        binary.display()
    );
    binary
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(cli_binary());
    command.args(args);
    // Runs on local disk need no S3 server; S3 runs fail loudly on their own without one.
    if let Ok(endpoint) = std::env::var("PQM_S3_ENDPOINT") {
        command.env("PQM_S3_ENDPOINT", endpoint);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("run the CLI");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The keys `status <run>` on the store at `url` says the run wrote, recorded or found from its
/// intents and the objects' metadata, and how many of them only the latter tell of.
pub fn keys_written_by(url: &str, run_id: &str) -> (std::collections::BTreeSet<String>, usize) {
    let status = cli(&["status", url, run_id, "--json"], &[]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    let status = json(&status);
    let recorded = status["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "migrated");
    let unrecorded = status["changes"]["unrecorded"].as_array().unwrap();
    let keys: std::collections::BTreeSet<String> = recorded
        .chain(unrecorded.iter())
        .map(|r| r["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(status["changes"]["objects"].as_u64().unwrap() as usize, keys.len());
    (keys, unrecorded.len())
}

pub fn json(out: &Output) -> Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", out.stdout, out.stderr))
}

/// What an independent look at one object found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Byte for byte one of the contents the object was given, never migrated.
    Untouched,
    /// A complete migration of one of its contents: values recomputed and equal, tag and footer
    /// at `version`, each step applied once.
    Migrated { version: u32 },
}

/// Checks one object against the contents it was ever given (`known`, oldest first): it must be
/// exactly one of them, or a full migration of one of them to `target` with tag and footer
/// agreeing. Panics, naming the key, otherwise.
pub async fn check_object(store: &Store, key: &str, known: &[Bytes], target: u32) -> Found {
    let data = raw_bytes(store, key).await;
    let tag_key = pqmigrate::version_key(pqmigrate_sensor_steps::SCHEMA);
    let tags = store.tags(key).await.unwrap().unwrap_or_default();
    let tag = tags.iter().find(|(k, _)| *k == tag_key).map(|(_, v)| v.clone());
    if known.contains(&data) {
        assert_eq!(tag, None, "{key}: original content but a version tag {tag:?}");
        return Found::Untouched;
    }
    let footer = Footer::parse(key, &data).unwrap_or_else(|e| panic!("{key}: neither original nor readable: {e}"));
    let version = footer.version(key, &tag_key).unwrap();
    assert_eq!(version, Some(target), "{key}: footer version");
    assert_eq!(
        tag.as_deref(),
        Some(target.to_string().as_str()),
        "{key}: tag and footer disagree"
    );
    let steps = footer.value(pqmigrate::rewrite::STEPS_FOOTER_KEY).unwrap_or_default();
    let applied: Vec<&str> = steps.split(',').map(|s| s.split('@').next().unwrap()).collect();
    assert_eq!(
        applied,
        ["sensorData:1->2", "sensorData:2->3"][..target as usize - 1],
        "{key}: each step once"
    );
    let migrated = read_all(&data);
    let source = known
        .iter()
        .map(read_all)
        .find(|original| {
            floats(original, "x") == floats(&migrated, "x") && floats(original, "v00") == floats(&migrated, "v00")
        })
        .unwrap_or_else(|| panic!("{key}: migrated from none of its known contents"));
    assert_features_match(&source, &migrated);
    Found::Migrated { version: target }
}

/// What [`OtherWriter`] does to an object, through the store beneath the hook.
pub type OtherWrite = Arc<
    dyn Fn(pqmigrate::store::SharedIo, String) -> futures::future::BoxFuture<'static, pqmigrate::Result<()>>
        + Send
        + Sync,
>;

/// Another writer that acts once per key, when a request of kind `at` about it passes (only a
/// conditional one when `conditional_only`): at a `Get` its change lands while the object is
/// being rewritten, at a conditional `Put` just before the write.
pub struct OtherWriter {
    at: pqmigrate::store::Request,
    conditional_only: bool,
    write: OtherWrite,
    done: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl std::fmt::Debug for OtherWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtherWriter").field("at", &self.at).finish()
    }
}

/// The tag [`OtherWriter::tag_editor`] adds.
pub const EDITED_TAG: (&str, &str) = ("edited", "by-other");

impl OtherWriter {
    pub fn new(at: pqmigrate::store::Request, conditional_only: bool, write: OtherWrite) -> Self {
        Self {
            at,
            conditional_only,
            write,
            done: Default::default(),
        }
    }

    /// Adds [`EDITED_TAG`] to the object's current tags, keeping the rest.
    pub fn tag_editor(at: pqmigrate::store::Request, conditional_only: bool) -> Self {
        Self::new(
            at,
            conditional_only,
            Arc::new(|io, key| {
                Box::pin(async move {
                    let mut tags = io.get_tags(&key, None).await?;
                    tags.push((EDITED_TAG.0.to_string(), EDITED_TAG.1.to_string()));
                    io.put_tags(&key, None, &tags).await
                })
            }),
        )
    }

    /// Keys it acted on.
    pub fn acted_on(&self) -> Vec<String> {
        self.done.lock().unwrap().iter().cloned().collect()
    }
}

#[async_trait::async_trait]
impl pqmigrate::store::Hook for OtherWriter {
    async fn before(
        &self,
        request: pqmigrate::store::Request,
        key: &str,
        conditional: bool,
        inner: &pqmigrate::store::SharedIo,
    ) -> pqmigrate::Result<()> {
        if request != self.at || (self.conditional_only && !conditional) || key.starts_with("_pqmigrate/") {
            return Ok(());
        }
        if !self.done.lock().unwrap().insert(key.to_string()) {
            return Ok(());
        }
        (self.write)(inner.clone(), key.to_string()).await
    }
}

/// Whether `message` refuses a store behind a [`ProxyMode::StripConditions`] proxy: the probe
/// found the condition ignored, or the server refused the altered request outright (a server
/// that checks the signed headers of every request sees `If-None-Match` missing; SeaweedFS does
/// that at times). Either way nothing may be written, which the callers check.
pub fn refused_for_stripped_conditions(message: &str) -> bool {
    message.contains("a create-only write of an existing key") || message.contains("SignatureDoesNotMatch")
}

/// What [`http_proxy`] does to the requests it passes on.
#[derive(Debug, Clone, Copy)]
pub enum ProxyMode {
    /// Removes `If-Match` and `If-None-Match`: a server (or a proxy in front of one) that
    /// ignores conditions.
    StripConditions,
    /// Passes every `n`-th write (object PUT, CompleteMultipartUpload) on, waits until the server
    /// has answered it, and then drops the connection instead of the answer.
    LoseEveryNthWrite(u64),
    /// Answers `501 NotImplemented` to every copied part (`x-amz-copy-source`): a server
    /// without `UploadPartCopy`.
    RefuseCopies,
    /// Passes everything, counting the bytes each way.
    Count,
}

/// What [`http_proxy`] has done so far.
#[derive(Debug, Default)]
pub struct ProxyCounts {
    /// Requests passed on.
    pub requests: std::sync::atomic::AtomicU64,
    /// Conditions removed.
    pub stripped: std::sync::atomic::AtomicU64,
    /// Writes applied whose answer was dropped.
    pub lost: std::sync::atomic::AtomicU64,
    /// Copied parts refused.
    pub refused: std::sync::atomic::AtomicU64,
    /// Bytes from the client to the server (request heads and bodies).
    pub up: std::sync::atomic::AtomicU64,
    /// Bytes from the server to the client (answer heads and bodies).
    pub down: std::sync::atomic::AtomicU64,
}

/// A loopback HTTP/1.1 proxy to the S3 server that alters requests as `mode` says. Each
/// connection carries one request (the proxy asks for `Connection: close`), so the answer is
/// simply what the server sends until it closes. Returns the proxy's endpoint.
pub async fn http_proxy(upstream: &str, mode: ProxyMode) -> (String, Arc<ProxyCounts>) {
    use std::sync::atomic::Ordering::Relaxed;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = upstream.trim_start_matches("http://").to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counts = Arc::new(ProxyCounts::default());
    let writes = Arc::new(AtomicU32::new(0));
    let shared = counts.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let (upstream, counts, writes) = (upstream.clone(), shared.clone(), writes.clone());
            tokio::spawn(async move {
                // The request head, and whatever of the body came with it.
                let mut buf = Vec::new();
                let mut chunk = vec![0u8; 64 * 1024];
                let head_end = loop {
                    match client.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
                let request_line = lines.next().unwrap_or_default().to_string();
                let mut headers = Vec::new();
                for line in lines {
                    let name = line.split(':').next().unwrap_or_default().trim().to_ascii_lowercase();
                    let strip =
                        matches!(mode, ProxyMode::StripConditions) && (name == "if-match" || name == "if-none-match");
                    if strip {
                        counts.stripped.fetch_add(1, Relaxed);
                    } else if name != "connection" {
                        headers.push(line.to_string());
                    }
                }
                headers.push("Connection: close".to_string());
                if matches!(mode, ProxyMode::RefuseCopies)
                    && headers
                        .iter()
                        .any(|h| h.to_ascii_lowercase().starts_with("x-amz-copy-source:"))
                {
                    counts.refused.fetch_add(1, Relaxed);
                    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NotImplemented</Code><Message>UploadPartCopy is not implemented here</Message></Error>";
                    let answer = format!(
                        "HTTP/1.1 501 Not Implemented\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = client.write_all(answer.as_bytes()).await;
                    return;
                }
                let mut parts = request_line.split(' ');
                let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
                let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
                let is_write = (method == "PUT" && !query.contains("tagging") && !query.contains("partNumber"))
                    || (method == "POST" && query.contains("uploadId"));
                let lose = match mode {
                    ProxyMode::LoseEveryNthWrite(n) if is_write => u64::from(writes.fetch_add(1, Relaxed) + 1) % n == 0,
                    _ => false,
                };
                let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let new_head = format!("{request_line}\r\n{}\r\n\r\n", headers.join("\r\n"));
                counts.requests.fetch_add(1, Relaxed);
                counts.up.fetch_add(buf.len() as u64, Relaxed);
                if server.write_all(new_head.as_bytes()).await.is_err()
                    || server.write_all(&buf[head_end..]).await.is_err()
                {
                    return;
                }
                let (mut client_read, mut client_write) = client.split();
                let (mut server_read, mut server_write) = server.split();
                let upload = async {
                    let _ = counted_copy(&mut client_read, &mut server_write, &counts.up).await;
                    // The client keeps its side open for the answer: only the server ends this.
                    std::future::pending::<()>().await
                };
                let download = async {
                    if lose {
                        // Let the server finish the request, then hang up on the client.
                        let mut answer = Vec::new();
                        let _ = server_read.read_to_end(&mut answer).await;
                        counts.lost.fetch_add(1, Relaxed);
                    } else {
                        let _ = counted_copy(&mut server_read, &mut client_write, &counts.down).await;
                    }
                };
                // The request is over when the server has answered and closed.
                tokio::select! {
                    _ = upload => {},
                    _ = download => {},
                }
            });
        }
    });
    (format!("http://{addr}"), counts)
}

/// Copies until the reader ends, adding every byte to `count` as it goes.
async fn counted_copy(
    from: &mut (impl tokio::io::AsyncRead + Unpin),
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
    count: &std::sync::atomic::AtomicU64,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        count.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        to.write_all(&buf[..n]).await?;
    }
}

/// Hides a step's column use, forcing the full decode-and-encode path.
pub struct Opaque(pub &'static dyn pqmigrate::Migration);

impl pqmigrate::Migration for Opaque {
    fn output_schema(
        &self,
        input: &arrow::datatypes::SchemaRef,
    ) -> Result<arrow::datatypes::SchemaRef, pqmigrate::StepError> {
        self.0.output_schema(input)
    }
    fn transform(
        &self,
        batch: RecordBatch,
        output: &arrow::datatypes::SchemaRef,
    ) -> Result<RecordBatch, pqmigrate::StepError> {
        self.0.transform(batch, output)
    }
}

/// The sensor step 1->2 without its column declaration.
pub static OPAQUE_ADD: Opaque = Opaque(&pqmigrate_sensor_steps::AddFeatures);
/// The sensor step 2->3 without its column declaration.
pub static OPAQUE_RENAME: Opaque = Opaque(&pqmigrate_sensor_steps::RenameAndEncode);

/// A sensorData step `from -> from + 1` running `migration`, registered by a test.
pub fn sensor_step(from: u32, migration: &'static dyn pqmigrate::Migration) -> pqmigrate::StepRegistration {
    pqmigrate::StepRegistration {
        schema: pqmigrate_sensor_steps::SCHEMA,
        from,
        to: from + 1,
        name: "test",
        revision: "",
        crate_id: "tests",
        migration,
    }
}

/// A file's metadata with its page index, which must be there.
pub fn page_indexed_metadata(data: &Bytes) -> parquet::file::metadata::ParquetMetaData {
    parquet::file::metadata::ParquetMetaDataReader::new()
        .with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Required)
        .parse_and_finish(data)
        .unwrap()
}
