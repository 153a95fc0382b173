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
//! The stock bootstrap (`pqmigrate-bootstrap`, built with the `sql` feature) has no step
//! compiled in: it reads migration files from the location an event names (`migrations`) or
//! the function's `PQM_MIGRATIONS`, and runs the handler the function's `Handler` setting names.
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
mod logging;
pub mod migrate;
pub mod scan;
mod steps;

pub use config::Config;
pub use events::{
    CloseEvent, CloseResult, HandlerError, INVALID_EVENT_ERROR, MigrateEvent, RETRYABLE_ERROR, STORE_REFUSED_ERROR,
    ScanEvent, ScanRequest, ScanResponse, ScanResult, Version,
};
pub use logging::{METRICS_NAMESPACE, metric_line};
pub use steps::{NO_STEPS, Steps};

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};

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

impl Handler {
    /// The handler named by the function's `Handler` setting, which Lambda passes to a custom
    /// runtime as `_HANDLER` (`migrate`, `scan` or `batch`): one stock binary serves all three
    /// functions of the shipped template.
    ///
    /// ```
    /// use pqmigrate_lambda::Handler;
    /// assert_eq!(Handler::named("scan").unwrap(), Handler::Scan);
    /// assert!(Handler::named("bootstrap").unwrap_err().contains("migrate, scan or batch"));
    /// ```
    ///
    /// # Errors
    /// A message naming what was given when it is none of the three.
    pub fn named(name: &str) -> Result<Self, String> {
        match name.trim() {
            "migrate" => Ok(Self::Migrate),
            "scan" => Ok(Self::Scan),
            "batch" => Ok(Self::Batch),
            other => Err(format!(
                "the function's Handler setting (_HANDLER) is {other:?}: the stock bootstrap runs migrate, scan or batch"
            )),
        }
    }

    /// [`Handler::named`] of `_HANDLER`.
    ///
    /// # Errors
    /// As [`Handler::named`], and when `_HANDLER` is not set.
    pub fn from_env() -> Result<Self, String> {
        Self::named(&std::env::var("_HANDLER").map_err(|_| "_HANDLER is not set: the stock bootstrap runs under Lambda, whose Handler setting names migrate, scan or batch".to_string())?)
    }
}

/// Runs `handler` under the Lambda runtime, with configuration from the environment, logs in the
/// function's log format and level (`AWS_LAMBDA_LOG_FORMAT`, `AWS_LAMBDA_LOG_LEVEL`; no colour
/// escapes off a terminal) and one Embedded Metric Format line per object ([`metric_line`]), the steps
/// linked into this binary and, with the `sql` feature, the migration files an event or
/// `PQM_MIGRATIONS` names ([`Steps`]). Clients are built once, not per invocation; migration
/// files are read again only when they change.
///
/// # Errors
/// When the runtime cannot start, no steps are linked in and none can be read from files
/// ([`NO_STEPS`]), or the registered steps are inconsistent.
pub fn run(handler: Handler) -> Result<(), lambda_runtime::Error> {
    pqmigrate_core::malloc::one_arena();
    logging::init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let config = Arc::new(Config::from_env()?);
        let steps = Arc::new(Steps::from_inventory()?);
        if steps.compiled().is_empty() && (cfg!(not(feature = "sql")) || config.migrations.is_none()) {
            tracing::warn!("{NO_STEPS}");
        }
        match handler {
            Handler::Migrate => {
                lambda_runtime::run(service_fn(move |event: LambdaEvent<MigrateEvent>| {
                    let (config, steps) = (config.clone(), steps.clone());
                    let deadline = std::time::UNIX_EPOCH + std::time::Duration::from_millis(event.context.deadline);
                    async move {
                        let registry = steps.for_event(&config, event.payload.migrations.as_deref()).await?;
                        migrate::handle_until(&config, &registry, event.payload, Some(deadline)).await
                    }
                }))
                .await
            }
            Handler::Scan => {
                lambda_runtime::run(service_fn(move |event: LambdaEvent<ScanRequest>| {
                    let (config, steps) = (config.clone(), steps.clone());
                    async move {
                        match event.payload {
                            ScanRequest::Scan(scan) => {
                                let registry = steps.for_event(&config, scan.migrations.as_deref()).await?;
                                scan::handle(&config, &registry, scan).await.map(ScanResponse::Scanned)
                            }
                            ScanRequest::Close(close) => scan::close(&config, close).await.map(ScanResponse::Closed),
                        }
                    }
                }))
                .await
            }
            Handler::Batch => {
                lambda_runtime::run(service_fn(move |event: LambdaEvent<batch::BatchEvent>| {
                    let (config, steps) = (config.clone(), steps.clone());
                    async move {
                        let location = batch::migrations(&event.payload);
                        let registry = steps.for_event(&config, location.as_deref()).await?;
                        batch::handle(&config, &registry, event.payload).await
                    }
                }))
                .await
            }
        }
    })
}
