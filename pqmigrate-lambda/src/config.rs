//! Handler configuration, from the environment in Lambda and explicit in tests.

use pqmigrate_core::fault::{FaultConfig, FaultyStore};
use pqmigrate_core::{Store, StoreOptions};

/// How handlers reach the store.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// S3 endpoint and sizes; AWS's defaults when empty.
    pub store: StoreOptions,
    /// Faults to inject into every store call (chaos testing only).
    pub faults: Option<FaultConfig>,
}

impl Config {
    /// From `PQM_S3_ENDPOINT` (or `AWS_ENDPOINT_URL`) and `PQM_INJECT_FAULTS`; region and
    /// credentials come from the Lambda environment as usual.
    ///
    /// # Errors
    /// A malformed `PQM_INJECT_FAULTS`.
    pub fn from_env() -> pqmigrate_core::Result<Self> {
        let endpoint = std::env::var("PQM_S3_ENDPOINT")
            .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
            .ok();
        let faults = std::env::var("PQM_INJECT_FAULTS")
            .ok()
            .map(|s| FaultConfig::parse(&s))
            .transpose()?;
        Ok(Self {
            store: StoreOptions {
                endpoint,
                ..StoreOptions::default()
            },
            faults,
        })
    }

    /// The store for `bucket`.
    ///
    /// # Errors
    /// [`pqmigrate_core::Error::Config`].
    pub fn store(&self, bucket: &str) -> pqmigrate_core::Result<Store> {
        let store = Store::s3(bucket, &self.store)?;
        Ok(match &self.faults {
            Some(faults) => {
                let faults = faults.clone();
                store.map_inner(|inner| std::sync::Arc::new(FaultyStore::new(inner, faults)))
            }
            None => store,
        })
    }
}
