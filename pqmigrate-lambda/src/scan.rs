//! The scan handler: begins a run, finds the objects that need migration and writes them as a
//! JSON-lines manifest, one per-object event a line, for a Distributed Map's `ItemReader`; the
//! objects left out are recorded in the run with the reason. The same function closes the run
//! at the end of the parent machine.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use pqmigrate_core::detached;
use pqmigrate_core::identity::{host_name, now_rfc3339};
use pqmigrate_core::journal::{DEFAULT_JOURNAL_PREFIX, RunInfo};
use pqmigrate_core::plan::plan;
use pqmigrate_core::scan::{Candidates, ScanSpec};
use pqmigrate_core::transfer::ConditionalUpload;
use pqmigrate_core::{MigrateOptions, Outcome, Record, Registry, Store, new_run_id};

use crate::config::Config;
use crate::events::{
    CloseEvent, CloseResult, HandlerError, MigrateEvent, ScanEvent, ScanRequest, ScanResponse, ScanResult,
    schema_and_key,
};

/// How long a run begun by the scan holds the data set's lease unless the event says.
pub const DEFAULT_LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Causes listed in a closed run's `cause`, at most.
const CAUSES_SHOWN: usize = 20;

/// Scans and begins a run, or closes one.
///
/// # Errors
/// As [`handle`] and [`close`].
pub async fn handle_request(
    config: &Config,
    registry: &Registry,
    request: ScanRequest,
) -> Result<ScanResponse, HandlerError> {
    match request {
        ScanRequest::Scan(event) => handle(config, registry, event).await.map(ScanResponse::Scanned),
        ScanRequest::Close(event) => close(config, event).await.map(ScanResponse::Closed),
    }
}

/// Closes the run of `event`: its summary written from the records of every invocation, the
/// lease released, and the objects that need attention counted and named.
///
/// # Errors
/// [`crate::RETRYABLE_ERROR`] when the store fails transiently; `PqmStoreRefused` otherwise.
pub async fn close(config: &Config, event: CloseEvent) -> Result<CloseResult, HandlerError> {
    let store = config
        .checked_store(&event.bucket)
        .await
        .map_err(|e| HandlerError::store(&e))?;
    let summary = detached::close(&store, DEFAULT_JOURNAL_PREFIX, &event.close_run, event.expected)
        .await
        .map_err(|e| HandlerError::store(&e))?;
    let counts: BTreeMap<String, u64> = summary
        .by_status
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(status, n)| (status.name().to_string(), n))
        .collect();
    let needs_attention = summary.failures.len() as u64;
    let mut cause = format!(
        "{needs_attention} objects need attention (pqmigrate status <store> {})",
        summary.run_id
    );
    for (_, why) in summary.failures.iter().take(CAUSES_SHOWN) {
        cause.push_str("; ");
        cause.push_str(why);
    }
    Ok(CloseResult {
        run_id: summary.run_id,
        counts,
        needs_attention,
        fail_on_attention: event.fail_on_attention,
        cause,
    })
}

/// Default prefix of the manifests.
pub const DEFAULT_MANIFEST_PREFIX: &str = "_pqmigrate/manifests/";

/// Bytes of manifest lines gathered before they are handed to the upload.
const MANIFEST_CHUNK: usize = 1024 * 1024;

/// Scans the event's data set and writes the manifest.
///
/// # Errors
/// [`crate::RETRYABLE_ERROR`] when listing or writing fails transiently;
/// `PqmInvalidEvent` for a store that cannot be opened.
pub async fn handle(config: &Config, registry: &Registry, event: ScanEvent) -> Result<ScanResult, HandlerError> {
    let (schema, _) = schema_and_key(&event.schema);
    let store = config
        .checked_store(&event.bucket)
        .await
        .map_err(|e| HandlerError::store(&e))?;
    if migrations(config, &event).is_some() && !event.accept_changed_migrations {
        refuse_changed_files(&store, registry).await?;
    }
    let info = RunInfo {
        run_id: new_run_id(),
        started_at: now_rfc3339(),
        host: host_name(),
        store: store.url().to_string(),
        schema: schema.clone(),
        target: event.desired_version.0,
        prefixes: event.prefixes.clone(),
        suffix: event.suffix.clone(),
        filter: event.filter.clone(),
        shard: None,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        rolls_back: None,
    };
    let ttl = event
        .lease_ttl_seconds
        .map_or(DEFAULT_LEASE_TTL, std::time::Duration::from_secs);
    let mut begun = detached::begin(&store, DEFAULT_JOURNAL_PREFIX, &info, ttl, event.allow_table_files)
        .await
        .map_err(|e| HandlerError::store(&e))?;
    match scan_into_run(&store, registry, &event, &info, &mut begun).await {
        Ok(result) => Ok(result),
        Err(e) => {
            // A retried scan begins a new run: this one gives the data set back first.
            if let Err(release) = detached::abandon(&store, &info).await {
                tracing::warn!("run {}: releasing the lease failed: {}", info.run_id, release.report());
            }
            Err(e)
        }
    }
}

/// Where the event's migration files are: its own `migrations`, or the function's.
fn migrations(config: &Config, event: &ScanEvent) -> Option<String> {
    event.migrations.clone().or_else(|| config.migrations.clone())
}

/// Flyway's validate-on-migrate: no run begins while a migration file that earlier runs applied
/// to the data set has changed since, unless the event accepts it.
async fn refuse_changed_files(store: &Store, registry: &Registry) -> Result<(), HandlerError> {
    let changed = pqmigrate_core::status::overview(store, DEFAULT_JOURNAL_PREFIX, registry)
        .await
        .map_err(|e| HandlerError::store(&e))?
        .changed_files;
    if changed.is_empty() {
        return Ok(());
    }
    Err(HandlerError::invalid(format!(
        "migration files changed since earlier runs applied them: {}; no run was begun (`pqmigrate status` names the objects; \"acceptChangedMigrations\": true goes on)",
        changed.join(", ")
    )))
}

async fn scan_into_run(
    store: &Store,
    registry: &Registry,
    event: &ScanEvent,
    info: &RunInfo,
    begun: &mut detached::Begun,
) -> Result<ScanResult, HandlerError> {
    let (schema, version_key) = schema_and_key(&event.schema);
    let target = event.desired_version.0;
    let mut options = MigrateOptions::new(&schema, target);
    options.version_key = version_key;
    let spec = ScanSpec::default()
        .prefixes(event.prefixes.clone())
        .suffix(event.suffix.as_str())
        .filter(event.filter.as_str())
        .concurrency(32);
    let mut entries = plan(store, Arc::new(registry.clone()), &options, &spec, &Candidates::Listing);
    // Every object of the run migrates with the same files, wherever its invocation runs.
    let migrations = event.migrations.clone();
    let prefix = event.manifest_prefix.as_deref().unwrap_or(DEFAULT_MANIFEST_PREFIX);
    let manifest_key = format!(
        "{}/{}-{schema}-v{target}.jsonl",
        prefix.trim_end_matches('/'),
        info.run_id
    );
    // The manifest streams out as it is made (multipart above the threshold), so a data set of
    // millions of objects takes no more memory than a few parts.
    let mut manifest = ConditionalUpload::new_object(store, &manifest_key);
    let mut lines = String::new();
    let mut counts = BTreeMap::new();
    let (mut listed, mut recorded, mut skipped) = (0u64, 0u64, 0u64);
    while let Some(entry) = entries.next().await {
        let entry = entry.map_err(|e| HandlerError::retryable(&e))?;
        *counts.entry(entry.status().name().to_string()).or_default() += 1;
        match entry.outcome {
            Outcome::NeedsMigration { .. } => {
                let item = MigrateEvent {
                    state: "Start".into(),
                    s3_bucket: event.bucket.clone(),
                    s3_key: entry.key,
                    schema: event.schema.clone(),
                    desired_version: event.desired_version,
                    max_steps_per_invocation: event.max_steps_per_invocation,
                    error_cause: None,
                    run_id: Some(info.run_id.clone()),
                    migrations: migrations.clone(),
                    extra: Default::default(),
                };
                lines.push_str(&serde_json::to_string(&item).expect("serializable"));
                lines.push('\n');
                listed += 1;
                if lines.len() >= MANIFEST_CHUNK {
                    let chunk = Bytes::from(std::mem::take(&mut lines));
                    manifest.push(chunk).await.map_err(|e| HandlerError::retryable(&e))?;
                }
            }
            // Every other object is recorded in the run, as a run of the CLI records it; one
            // that cannot be read is one that failed.
            outcome => {
                let outcome = match outcome {
                    Outcome::Unreadable { error_kind, error } => Outcome::Failed { error_kind, error },
                    other => other,
                };
                let record = Record::new(&entry.key, entry.version, outcome);
                if record.status().needs_attention() {
                    skipped += 1;
                }
                begun
                    .record_left_out(&record)
                    .await
                    .map_err(|e| HandlerError::retryable(&e))?;
                recorded += 1;
            }
        }
    }
    begun.flush().await.map_err(|e| HandlerError::retryable(&e))?;
    manifest
        .push(Bytes::from(lines))
        .await
        .map_err(|e| HandlerError::retryable(&e))?;
    manifest.finish().await.map_err(|e| HandlerError::retryable(&e))?;
    Ok(ScanResult {
        manifest_bucket: event.bucket.clone(),
        manifest_key,
        objects: listed,
        counts,
        run_id: info.run_id.clone(),
        skipped,
        expected: listed + recorded,
        max_concurrency: event.max_concurrency,
        tolerated_failure_percentage: event.tolerated_failure_percentage,
        fail_on_attention: event.fail_on_attention,
        schema: event.schema.clone(),
    })
}
