//! What the benches share: the sensorData file, stores, and a full-decode variant of the steps.
#![allow(dead_code)]

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use pqmigrate::{Migration, Registry, StepError, StepRegistration, Store, StoreOptions};
use pqmigrate_sensor_steps::{AddFeatures, SCHEMA};

/// Hides a step's column use, forcing the full decode-and-encode path.
pub struct Opaque(pub &'static dyn Migration);

impl Migration for Opaque {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef, StepError> {
        self.0.output_schema(input)
    }
    fn transform(&self, batch: RecordBatch, output: &SchemaRef) -> Result<RecordBatch, StepError> {
        self.0.transform(batch, output)
    }
}

static OPAQUE_ADD: Opaque = Opaque(&AddFeatures);

/// The registry of step 1->2 as registered (passthrough).
pub fn passthrough_registry() -> Registry {
    Registry::from_inventory().expect("registry")
}

/// Step 1->2 without its column declaration (full decode and encode).
pub fn full_registry() -> Registry {
    Registry::from_steps([StepRegistration {
        schema: SCHEMA,
        from: 1,
        to: 2,
        name: "OpaqueAddFeatures",
        revision: "",
        crate_id: "benches",
        migration: &OPAQUE_ADD,
    }])
    .expect("registry")
}

/// The S3 store of the endpoint in `PQM_S3_ENDPOINT` (scripts/bench.sh starts SeaweedFS and
/// sets it; MinIO or AWS work the same), in a bucket created for the bench.
pub async fn s3_bucket(name: &str) -> Store {
    let endpoint = std::env::var("PQM_S3_ENDPOINT")
        .expect("PQM_S3_ENDPOINT is not set: run scripts/bench.sh, which starts SeaweedFS, or point it at any S3");
    let bucket = format!("pqm-bench-{name}-{}", std::process::id());
    let store = Store::s3(&bucket, &StoreOptions::default().endpoint(endpoint)).expect("S3 store");
    store.s3_api().expect("S3").create_bucket().await.expect("bucket");
    store
}
