//! The scan handler: finds the objects that need migration and writes them as a JSON-lines
//! manifest, one per-object event a line, for a Distributed Map's `ItemReader`.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use pqmigrate_core::plan::plan;
use pqmigrate_core::scan::{Candidates, ScanSpec};
use pqmigrate_core::store::ConditionalUpload;
use pqmigrate_core::{MigrateOptions, Outcome, Registry, new_run_id};

use crate::config::Config;
use crate::events::{HandlerError, MigrateEvent, ScanEvent, ScanResult, schema_and_key};

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
    let (schema, version_key) = schema_and_key(&event.schema);
    let target = event.desired_version.0;
    let mut options = MigrateOptions::new(&schema, target);
    options.version_key = version_key;
    let store = config
        .checked_store(&event.bucket)
        .await
        .map_err(|e| HandlerError::store(&e))?;
    let spec = ScanSpec {
        prefixes: event.prefixes.clone(),
        suffix: event.suffix.clone(),
        filter: event.filter.clone(),
        concurrency: 32,
        ..ScanSpec::default()
    };
    let mut entries = plan(
        &store,
        Arc::new(registry.clone()),
        &options,
        &spec,
        &Candidates::Listing,
    );
    let prefix = event.manifest_prefix.as_deref().unwrap_or(DEFAULT_MANIFEST_PREFIX);
    let manifest_key = format!(
        "{}/{}-{schema}-v{target}.jsonl",
        prefix.trim_end_matches('/'),
        new_run_id()
    );
    // The manifest streams out as it is made (multipart above the threshold), so a data set of
    // millions of objects takes no more memory than a few parts.
    let mut manifest = ConditionalUpload::new_object(&store, &manifest_key);
    let mut lines = String::new();
    let mut counts = BTreeMap::new();
    let mut listed = 0u64;
    while let Some(entry) = entries.next().await {
        let entry = entry.map_err(|e| HandlerError::retryable(&e))?;
        *counts.entry(entry.status().name().to_string()).or_default() += 1;
        if matches!(entry.outcome, Outcome::NeedsMigration { .. }) {
            let item = MigrateEvent {
                state: "Start".into(),
                s3_bucket: event.bucket.clone(),
                s3_key: entry.key,
                schema: event.schema.clone(),
                desired_version: event.desired_version,
                max_steps_per_invocation: None,
                error_cause: None,
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
    }
    manifest
        .push(Bytes::from(lines))
        .await
        .map_err(|e| HandlerError::retryable(&e))?;
    manifest.finish().await.map_err(|e| HandlerError::retryable(&e))?;
    Ok(ScanResult {
        manifest_bucket: event.bucket,
        manifest_key,
        objects: listed,
        counts,
    })
}
