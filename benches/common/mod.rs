//! What the benches share: the sensorData file, stores, and a full-decode variant of the steps.
#![allow(dead_code)]

use pqmigrate::test_support::{Opaque, test_step};
use pqmigrate::{Registry, Store, StoreOptions};
use pqmigrate_sensor_steps::{AddFeatures, SCHEMA};

static OPAQUE_ADD: Opaque = Opaque(&AddFeatures);

/// The registry of step 1->2 as registered (passthrough).
pub fn passthrough_registry() -> Registry {
    Registry::from_inventory().expect("registry")
}

/// Step 1->2 without its column declaration (full decode and encode).
pub fn full_registry() -> Registry {
    Registry::from_steps([test_step(SCHEMA, 1, &OPAQUE_ADD)]).expect("registry")
}

/// The S3 store of the endpoint in `PQM_S3_ENDPOINT` (scripts/bench.sh starts SeaweedFS and
/// sets it; MinIO or AWS work the same), in a bucket created for the bench.
pub async fn s3_bucket(name: &str) -> Store {
    let endpoint = std::env::var("PQM_S3_ENDPOINT")
        .expect("PQM_S3_ENDPOINT is not set: run scripts/bench.sh, which starts SeaweedFS, or point it at any S3");
    let bucket = format!("pqm-bench-{name}-{}", std::process::id());
    let store = Store::s3(&bucket, &StoreOptions::default().endpoint(endpoint)).expect("S3 store");
    store.create_bucket(false).await.expect("bucket");
    store
}
