//! The steps a handler migrates with: those linked into the bootstrap and, with the `sql`
//! feature, the migration files at the location the event names (`migrations`) or the
//! function's environment does (`PQM_MIGRATIONS`). Files are loaded once per sandbox and read
//! again only when one is added, removed or replaced (its ETag): an invocation costs one listing.

use std::sync::Arc;

use pqmigrate_core::{Registry, StepRegistration};

use crate::config::Config;
use crate::events::HandlerError;

/// Why a bootstrap refuses an event it has no steps for: it would answer every object with
/// `MissingMigrationStep` and let the execution succeed having migrated nothing.
pub const NO_STEPS: &str = "this bootstrap has no migration steps: name a folder of migration files in the event (\"migrations\": \"s3://bucket/migrations\") or in PQM_MIGRATIONS with the stock bootstrap, or build a bootstrap that names your step crate (`use my_steps as _;`), as examples/sensor-lambda does";

/// The compiled steps, and the migration files loaded so far.
#[derive(Debug)]
pub struct Steps {
    registry: Arc<Registry>,
    #[cfg(feature = "sql")]
    files: pqmigrate_sql::Cache,
}

impl Steps {
    /// The steps linked into this binary.
    ///
    /// # Errors
    /// [`pqmigrate_core::Error::Registry`] when two of them leave the same version.
    pub fn from_inventory() -> pqmigrate_core::Result<Self> {
        Self::new(Registry::from_inventory()?.steps().copied())
    }

    /// These steps.
    ///
    /// ```
    /// let steps = pqmigrate_lambda::Steps::new([]).unwrap();
    /// assert!(steps.compiled().is_empty());
    /// ```
    ///
    /// # Errors
    /// [`pqmigrate_core::Error::Registry`] when two of them leave the same version.
    pub fn new(compiled: impl IntoIterator<Item = StepRegistration>) -> pqmigrate_core::Result<Self> {
        Ok(Self {
            registry: Arc::new(Registry::from_steps(compiled)?),
            #[cfg(feature = "sql")]
            files: pqmigrate_sql::Cache::default(),
        })
    }

    /// The compiled steps alone.
    pub fn compiled(&self) -> &Registry {
        &self.registry
    }

    /// The steps for an invocation: the compiled ones and the migration files at `location`
    /// (the event's), or at the configuration's ([`Config::migrations`]) when the event names
    /// none.
    ///
    /// # Errors
    /// `PqmInvalidEvent` when there are no steps at all ([`NO_STEPS`]), a file is refused or
    /// clashes with a compiled step, or this bootstrap cannot read migration files;
    /// `PqmRetryable` when the store failed transiently while reading them.
    pub async fn for_event(&self, config: &Config, location: Option<&str>) -> Result<Arc<Registry>, HandlerError> {
        let registry = match location.or(config.migrations.as_deref()) {
            None => self.registry.clone(),
            Some(location) => self.with_files(config, location).await?,
        };
        if registry.is_empty() {
            return Err(HandlerError::invalid(NO_STEPS));
        }
        Ok(registry)
    }

    #[cfg(feature = "sql")]
    async fn with_files(&self, config: &Config, location: &str) -> Result<Arc<Registry>, HandlerError> {
        let loaded = self.files.load(location, &config.store).await.map_err(|e| {
            if e.is_retryable() {
                HandlerError::retryable_message(e.to_string())
            } else {
                HandlerError::invalid(e.to_string())
            }
        })?;
        if loaded.reloaded {
            tracing::info!(
                location,
                steps = loaded.migrations.steps().len(),
                "migration files loaded"
            );
        }
        if loaded.migrations.is_empty() {
            return Err(HandlerError::invalid(format!(
                "{location}: no migration files (<schema>/V<to>__<description>.sql) there"
            )));
        }
        loaded
            .migrations
            .registry(self.registry.steps().copied())
            .map(Arc::new)
            .map_err(|e| HandlerError::invalid(e.report()))
    }

    #[cfg(not(feature = "sql"))]
    async fn with_files(&self, _config: &Config, location: &str) -> Result<Arc<Registry>, HandlerError> {
        Err(HandlerError::invalid(format!(
            "migrations {location}: this bootstrap was built without migration files (the pqmigrate-lambda `sql` feature); deploy the stock bootstrap (pqmigrate-bootstrap)"
        )))
    }
}
