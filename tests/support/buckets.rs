//! Buckets and stores on the servers the test command starts.

use std::sync::atomic::{AtomicU32, Ordering};

use pqmigrate::{Store, StoreOptions};

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
