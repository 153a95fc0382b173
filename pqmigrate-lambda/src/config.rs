//! Handler configuration, from the environment in Lambda and explicit in tests.

#[cfg(feature = "fault-injection")]
use pqmigrate_core::store::fault::FaultConfig;
use pqmigrate_core::{Store, StoreOptions};

/// How handlers reach the store.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// S3 endpoint and sizes; AWS's defaults when empty.
    pub store: StoreOptions,
    /// Faults to inject into every store request (chaos testing only).
    #[cfg(feature = "fault-injection")]
    pub faults: Option<FaultConfig>,
    /// Where the migration files are when an event names none (`PQM_MIGRATIONS`).
    pub migrations: Option<String>,
    /// One store for every bucket an event names, instead of S3 (tests over the memory store,
    /// embedders with a store of their own).
    pub fixed: Option<Store>,
}

impl Config {
    /// From `PQM_S3_ENDPOINT` (or `AWS_ENDPOINT_URL`), `PQM_MIGRATIONS` and `PQM_INJECT_FAULTS`; region and
    /// credentials come from the Lambda environment as usual.
    ///
    /// # Errors
    /// A malformed `PQM_INJECT_FAULTS`.
    pub fn from_env() -> pqmigrate_core::Result<Self> {
        let endpoint = std::env::var("PQM_S3_ENDPOINT")
            .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
            .ok();
        #[cfg(feature = "fault-injection")]
        let faults = std::env::var("PQM_INJECT_FAULTS")
            .ok()
            .map(|s| FaultConfig::parse(&s))
            .transpose()?;
        #[cfg(not(feature = "fault-injection"))]
        if std::env::var_os("PQM_INJECT_FAULTS").is_some() {
            return Err(pqmigrate_core::Error::Config(
                "PQM_INJECT_FAULTS is set, but this bootstrap was built without the fault-injection feature".into(),
            ));
        }
        let mut store = StoreOptions::default();
        store.endpoint = endpoint;
        Ok(Self {
            store,
            #[cfg(feature = "fault-injection")]
            faults,
            migrations: std::env::var("PQM_MIGRATIONS").ok().filter(|s| !s.is_empty()),
            fixed: None,
        })
    }

    /// Handlers that work on `store` whatever bucket an event names.
    ///
    /// ```
    /// let config = pqmigrate_lambda::Config::over(pqmigrate_core::Store::memory());
    /// assert_eq!(config.store("any-bucket").unwrap().url(), "memory://");
    /// ```
    pub fn over(store: Store) -> Self {
        Self {
            fixed: Some(store),
            ..Self::default()
        }
    }

    /// The store for `bucket`, after the capability probe (run once per store and process
    /// every 15 minutes, so a warm sandbox does not probe per object): a store that lacks a
    /// guarantee is refused, naming it; one that ignores `If-Match` on multipart completions
    /// writes single conditional PUTs.
    ///
    /// # Errors
    /// [`pqmigrate_core::Error::Config`] naming the missing guarantee, store errors of the probe.
    pub async fn checked_store(&self, bucket: &str) -> pqmigrate_core::Result<Store> {
        pqmigrate_core::transfer::checked(self.store(bucket)?).await
    }

    /// The store for `bucket`.
    ///
    /// # Errors
    /// [`pqmigrate_core::Error::Config`].
    pub fn store(&self, bucket: &str) -> pqmigrate_core::Result<Store> {
        let store = match &self.fixed {
            Some(store) => store.clone(),
            None => Store::s3(bucket, &self.store)?,
        };
        #[cfg(feature = "fault-injection")]
        if let Some(faults) = &self.faults {
            return Ok(store.with_faults(faults.clone()).0);
        }
        Ok(store)
    }
}
