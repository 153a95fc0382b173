//! The AWS Lambda adapter of pqmigrate, thin over the core:
//!
//! - [`migrate`]: the per-object event `{state, s3Bucket, s3Key, schema, desiredVersion}`
//!   in, the same event with its new `state` out (`Done`, `Migrating`, `MissingMigrationStep`,
//!   `Error` with `errorCause`). Retryable failures come back as Lambda errors of type
//!   [`RETRYABLE_ERROR`], which the shipped state machines retry with backoff and jitter.
//! - [`scan`]: the scan event `{bucket, prefixes, type, filter, schema, desiredVersion}`;
//!   begins a run (lease, `run.json`), writes the objects that need migration as a JSON-lines
//!   manifest for a Distributed Map and records the others in the run; `{closeRun, ...}`
//!   closes the run at the end. `pqmigrate status` and `rollback` work on such a run.
//! - [`batch`]: S3 Batch Operations (invocation schema 2.0).
//! - [`definitions`]: the Step Functions state machines and the SAM template, from one source.
//!
//! A binary with your own steps names the step crate and runs a handler:
//!
//! ```no_run
//! // use my_steps as _;
//! fn main() -> Result<(), lambda_runtime::Error> {
//!     pqmigrate_lambda::run(pqmigrate_lambda::Handler::Migrate)
//! }
//! ```

pub mod batch;
mod config;
pub mod definitions;
mod events;
pub mod migrate;
pub mod scan;

pub use config::Config;
pub use events::{
    CloseEvent, CloseResult, HandlerError, INVALID_EVENT_ERROR, MigrateEvent, RETRYABLE_ERROR, STORE_REFUSED_ERROR,
    ScanEvent, ScanRequest, ScanResponse, ScanResult, Version,
};

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use pqmigrate_core::Registry;

/// Which handler a bootstrap binary runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    /// [`migrate::handle`].
    Migrate,
    /// [`scan::handle`].
    Scan,
    /// [`batch::handle`].
    Batch,
}

/// Why a bootstrap without steps refuses to start: it would answer every object with
/// `MissingMigrationStep` and let the execution succeed having migrated nothing.
pub const NO_STEPS: &str = "this bootstrap has no migration steps registered, so it would migrate nothing: build it in a binary that names your step crate (`use my_steps as _;`), as examples/sensor-lambda does";

/// Refuses a registry without steps ([`NO_STEPS`]).
///
/// ```
/// let empty = pqmigrate_core::Registry::default();
/// let err = pqmigrate_lambda::require_steps(&empty).unwrap_err();
/// assert!(err.to_string().contains("no migration steps registered"));
/// ```
///
/// # Errors
/// [`NO_STEPS`] when `registry` is empty.
pub fn require_steps(registry: &Registry) -> Result<(), lambda_runtime::Error> {
    if registry.is_empty() {
        return Err(NO_STEPS.into());
    }
    Ok(())
}

/// Runs `handler` under the Lambda runtime, with configuration from the environment and the
/// steps linked into this binary. Clients and the registry are built once, not per invocation.
///
/// # Errors
/// When the runtime cannot start, no steps are linked in ([`NO_STEPS`]), or the registered
/// steps are inconsistent.
pub fn run(handler: Handler) -> Result<(), lambda_runtime::Error> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("PQM_LOG").unwrap_or_else(|_| "info".into()))
        .without_time()
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let config = Arc::new(Config::from_env()?);
        let registry = Arc::new(Registry::from_inventory()?);
        require_steps(&registry)?;
        match handler {
            Handler::Migrate => {
                lambda_runtime::run(service_fn(move |event: LambdaEvent<MigrateEvent>| {
                    let (config, registry) = (config.clone(), registry.clone());
                    let deadline = std::time::UNIX_EPOCH + std::time::Duration::from_millis(event.context.deadline);
                    async move { migrate::handle_until(&config, &registry, event.payload, Some(deadline)).await }
                }))
                .await
            }
            Handler::Scan => {
                lambda_runtime::run(service_fn(move |event: LambdaEvent<ScanRequest>| {
                    let (config, registry) = (config.clone(), registry.clone());
                    async move { scan::handle_request(&config, &registry, event.payload).await }
                }))
                .await
            }
            Handler::Batch => {
                lambda_runtime::run(service_fn(move |event: LambdaEvent<batch::BatchEvent>| {
                    let (config, registry) = (config.clone(), registry.clone());
                    async move { batch::handle(&config, &registry, event.payload).await }
                }))
                .await
            }
        }
    })
}
