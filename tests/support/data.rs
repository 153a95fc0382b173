//! Sample data and independent read-back of what a run wrote.

use bytes::Bytes;
use pqmigrate::Store;
use pqmigrate::store::ReadOptions;
use pqmigrate_sensor_steps::DataSpec;

#[allow(unused_imports)]
pub use pqmigrate::test_support::{footer_version, read_all};
#[allow(unused_imports)]
pub use pqmigrate_sensor_steps::{assert_features_match, floats};

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
