//! Migrating one object: read, plan its chain, rewrite, and write back conditionally with the
//! new version in the same request.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::intent::{ATTEMPT_METADATA, RunContext};
use crate::migration::StepRegistration;
use crate::outcome::WritePath;
use crate::outcome::{Migrated, Outcome, Record};
use crate::registry::Registry;
use crate::rewrite::{AppendPlan, Footer, plan_append};
use crate::store::{CopySource, MIN_PART, ObjectInfo, Store, Written, metadata};
use crate::transfer::{ConditionalUpload, ObjectReader};
use crate::version::{VersionSource, VersionStore, version_key, with_version};

mod pipeline;

use pipeline::{Target, stream_append, stream_rewrite};

/// What to migrate objects to.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// Schema id whose steps apply.
    pub schema: String,
    /// Target version.
    pub target: u32,
    /// Tag and footer key holding the version; `schema:<id>:version` by default.
    pub version_key: String,
    /// Where versions are read.
    pub version_source: VersionSource,
    /// Apply at most this many steps in one write (the Lambda adapter's
    /// `maxStepsPerInvocation`); all of them when `None`.
    pub max_steps: Option<usize>,
    /// Check the pages of copied column chunks before copying them (default `true`); see
    /// [`crate::rewrite::RowGroupRewriter::verify_copied`].
    pub verify_copied: bool,
    /// The run the object is migrated in: its intent is journaled before the write, and the
    /// object names the run and the attempt in its user metadata. `None` for a lone migration.
    pub run: Option<RunContext>,
    /// Give up by this instant (a Lambda invocation's deadline, less a margin): a rewrite not
    /// finished by then is abandoned and its upload aborted before returning
    /// [`Error::Timeout`] (retryable); nothing is written. A completion already under way is
    /// let finish.
    pub deadline: Option<tokio::time::Instant>,
    /// Where the object stood before the run first wrote it, when this write continues a chain
    /// the same run began in an earlier write (the Lambda adapter's `maxStepsPerInvocation`):
    /// the intent and the record then name that version as the one a rollback restores.
    pub origin: Option<Origin>,
}

/// The version of an object before a run first wrote it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Origin {
    /// Its ETag then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
    /// Its version id then (versioned buckets): what a rollback restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Its schema version then.
    pub version: u32,
}

impl MigrateOptions {
    /// Options for `schema` to `target`, with the default version key and source.
    ///
    /// ```
    /// let o = pqmigrate_core::MigrateOptions::new("sensorData", 3);
    /// assert_eq!(o.version_key, "schema:sensorData:version");
    /// ```
    pub fn new(schema: &str, target: u32) -> Self {
        Self {
            schema: schema.to_string(),
            target,
            version_key: version_key(schema),
            version_source: VersionSource::Auto,
            max_steps: None,
            verify_copied: true,
            run: None,
            deadline: None,
            origin: None,
        }
    }
}

/// Migrates one object to `options.target` through every registered step on the way, in one
/// read and one conditional write.
///
/// The write carries the new data, the new version (tag and footer), the object's other tags and
/// its user metadata together, conditioned on the ETag read: if another writer changed the
/// object meanwhile, nothing is written and [`Error::Conflict`] (retryable) comes back.
///
/// Returns the object's [`Record`]: [`Outcome::Migrated`], or [`Outcome::AtTarget`],
/// [`Outcome::AheadOfTarget`] or [`Outcome::MissingStep`] for an object left untouched.
///
/// # Errors
/// Any [`Error`] naming the key; the object is then unchanged.
///
/// # Example
/// ```
/// # use pqmigrate_core::{Store, Registry, MigrateOptions, migrate_object};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = Store::memory();
/// let registry = Registry::from_steps([]).unwrap();
/// let err = migrate_object(&store, &registry, "missing.parquet", &MigrateOptions::new("s", 2)).await;
/// assert!(err.unwrap_err().to_string().starts_with("missing.parquet: head failed"));
/// # });
/// ```
pub async fn migrate_object(store: &Store, registry: &Registry, key: &str, options: &MigrateOptions) -> Result<Record> {
    let started = Instant::now();
    let info = store.object_info(key).await?;
    let reader = ObjectReader::new(store, key, info.size, info.e_tag.clone())?;
    // A file that may be copied in place needs no page index (copied chunks keep theirs where
    // they are); one streamed whole does, and reads it once the path is known.
    let may_append = store.copies_parts() && info.size >= MIN_PART;
    let mut footer = reader.footer(!may_append).await?;
    let versions = VersionStore::new(store, &options.version_key, options.version_source);
    let version = versions.of(key, info.tags.as_deref(), &footer)?;
    let origin = options.origin.clone().unwrap_or(Origin {
        e_tag: info.e_tag.clone(),
        version_id: info.version_id.clone(),
        version,
    });
    let done = |outcome| Record {
        attempts: 1,
        millis: started.elapsed().as_millis() as u64,
        ..Record::new(key, Some(version), outcome)
    };
    let mut chain = match registry.chain(&options.schema, version, options.target) {
        Ok(chain) => chain,
        Err(outcome) => return Ok(done(outcome)),
    };
    if let Some(max) = options.max_steps {
        chain.truncate(max.max(1));
    }
    let new_version = chain.last().map_or(version, |s| s.to);
    let (tags, attributes) = versions.record(&info, new_version)?;
    // In a run, the intent is durable before the write, and the object names the run and the
    // attempt in its user metadata.
    let mut named = ObjectInfo {
        attributes,
        ..info.clone()
    };
    let attempt_id = match &options.run {
        Some(run) => {
            run.check_fence(key)?;
            let attempt = run
                .record_intent(
                    key,
                    origin.e_tag.clone(),
                    origin.version_id.clone(),
                    origin.version,
                    new_version,
                )
                .await?;
            run.name_in(&mut named.attributes, &attempt);
            Some(attempt)
        }
        None => None,
    };
    let mut upload = ConditionalUpload::new(store, &named, &tags)?;
    let target = Target {
        version_key: options.version_key.clone(),
        version: new_version,
        verify_copied: options.verify_copied,
    };
    let append = append_plan_for(store, key, &footer, &chain)?;
    if may_append && append.is_err() {
        footer = reader.footer(true).await?;
    }
    let (streamed, path, streamed_because) = match append {
        Ok(plan) => {
            let source = CopySource {
                key: key.to_string(),
                e_tag: info.e_tag.clone().unwrap_or_default(),
                version_id: info.version_id.clone(),
                range: 0..plan.region_end,
            };
            let appended = within(
                Box::pin(stream_append(
                    &reader,
                    &footer,
                    &chain,
                    &target,
                    &plan,
                    source,
                    &mut upload,
                )),
                options.deadline,
                key,
                started,
            )
            .await;
            match appended {
                Err(Appending::CopyRefused(refused)) => {
                    // The store cannot copy parts after all: this object, and every later one,
                    // streams whole.
                    store.refuse_copies(&refused);
                    upload.abort().await;
                    upload = ConditionalUpload::new(store, &named, &tags)?;
                    footer = reader.footer(true).await?;
                    let streamed = within(
                        Box::pin(stream_rewrite(&reader, &footer, &chain, &target, &mut upload)),
                        options.deadline,
                        key,
                        started,
                    );
                    let because = format!("the store refused a copied part: {}", refused.report());
                    (
                        streamed.await.map_err(Appending::into_error),
                        WritePath::Streamed,
                        Some(because),
                    )
                }
                Err(Appending::Failed(e)) => (Err(e), WritePath::Appended, None),
                Ok(rows) => (Ok(rows), WritePath::Appended, None),
            }
        }
        Err(why) => {
            let streamed = within(
                Box::pin(stream_rewrite(&reader, &footer, &chain, &target, &mut upload)),
                options.deadline,
                key,
                started,
            );
            (
                streamed.await.map_err(Appending::into_error),
                WritePath::Streamed,
                Some(why),
            )
        }
    };
    let rows = match streamed {
        Ok(rows) => rows,
        Err(e) => {
            upload.abort().await;
            return Err(e);
        }
    };
    let (sent, copied) = (upload.bytes(), upload.copied());
    let bytes_out = sent + copied;
    // Nothing completes once the run's lease is no longer certainly its own. And a tag edit
    // does not change the ETag, so the write's condition cannot see one: the tags are read
    // again, and a change sends the object back to be read afresh.
    let checked = match options.run.as_ref().map_or(Ok(()), |run| run.check_fence(key)) {
        Ok(()) => tags_unchanged(store, &info).await,
        Err(e) => Err(e),
    };
    if let Err(e) = checked {
        upload.abort().await;
        return Err(e);
    }
    let written = match (upload.finish().await, &attempt_id) {
        (Ok(written), _) => written,
        // The write may have landed with its answer lost (a retry then fails its own
        // precondition): the object's metadata tells whether it is ours.
        (Err(e), Some(attempt)) => match written_by(store, key, attempt).await {
            Some(written) => written,
            None => return Err(e),
        },
        (Err(e), None) => return Err(e),
    };
    // The object is written: whatever happens now, it is recorded as migrated.
    if let Err(e) = carry_over_late_tag_edit(store, &info, &options.version_key, new_version, &written).await {
        tracing::warn!(
            "{key}: written, but checking for a tag edit made during the write failed: {}",
            e.report()
        );
    }
    let migrated = |outcome| Record {
        from: Some(origin.version),
        ..done(outcome)
    };
    Ok(migrated(Outcome::Migrated(Box::new(Migrated {
        to: new_version,
        steps: chain.iter().map(|s| s.id()).collect(),
        fingerprints: chain.iter().map(|s| s.fingerprint()).collect(),
        old_e_tag: origin.e_tag.clone(),
        new_e_tag: written.e_tag,
        old_version_id: origin.version_id.clone(),
        new_version_id: written.version_id,
        bytes_in: info.size,
        bytes_out,
        rows,
        path,
        streamed_because,
        received: reader.received(),
        sent,
        copied,
        attempt_id,
    }))))
}

/// Runs a rewrite, giving up at `deadline` with [`Error::Timeout`].
async fn within<T>(
    rewrite: std::pin::Pin<Box<dyn std::future::Future<Output = std::result::Result<T, Appending>> + Send + '_>>,
    deadline: Option<tokio::time::Instant>,
    key: &str,
    started: Instant,
) -> std::result::Result<T, Appending> {
    let Some(deadline) = deadline else {
        return rewrite.await;
    };
    match tokio::time::timeout_at(deadline, rewrite).await {
        Ok(done) => done,
        Err(_) => Err(Appending::Failed(Error::Timeout {
            key: key.to_string(),
            seconds: started.elapsed().as_secs_f64(),
        })),
    }
}

/// The append plan of an object, or why it streams whole: the store must copy parts, the
/// file take the append layout, and its data region fill a 5 MiB part.
fn append_plan_for(
    store: &Store,
    key: &str,
    footer: &Footer,
    chain: &[StepRegistration],
) -> Result<std::result::Result<AppendPlan, String>> {
    if !store.copies_parts() {
        return Ok(Err("the store copies no parts".to_string()));
    }
    let plan = match plan_append(key, footer, chain)? {
        Ok(plan) => plan,
        Err(why) => return Ok(Err(why.to_string())),
    };
    if plan.region_end < MIN_PART {
        return Ok(Err(format!(
            "its data region ({} bytes) is smaller than a 5 MiB part",
            plan.region_end
        )));
    }
    Ok(Ok(plan))
}

/// How an append rewrite failed: the store refused the copied part (the caller streams the
/// file whole instead), or anything else.
enum Appending {
    CopyRefused(Error),
    Failed(Error),
}

impl Appending {
    fn into_error(self) -> Error {
        match self {
            Appending::CopyRefused(e) | Appending::Failed(e) => e,
        }
    }
}

impl From<Error> for Appending {
    fn from(e: Error) -> Self {
        Appending::Failed(e)
    }
}

/// Whether a failed copied part means the store does not do them (rather than a changed
/// source or a transient failure).
fn copy_refused(e: &Error) -> bool {
    matches!(e, Error::Unsupported { .. })
}

/// Tags compared as sets: a store need not return them in the order they were written.
fn same_tags(a: &[(String, String)], b: &[(String, String)]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}

/// Fails with [`Error::TagsChanged`] when the tags of the version read are no longer the ones
/// read (where the store has tags).
async fn tags_unchanged(store: &Store, info: &ObjectInfo) -> Result<()> {
    let Some(read) = &info.tags else {
        return Ok(());
    };
    match store.tags_at(&info.key, info.version_id.as_deref()).await? {
        Some(now) if !same_tags(&now, read) => Err(Error::TagsChanged { key: info.key.clone() }),
        _ => Ok(()),
    }
}

/// On a versioned bucket, a tag edit that reached the version read after the last check (and
/// before the write replaced it) is still on that version: carried over to the written one,
/// with the new version, so no edit is silently reverted. Returns whether one was carried.
async fn carry_over_late_tag_edit(
    store: &Store,
    info: &ObjectInfo,
    version_key: &str,
    version: u32,
    written: &Written,
) -> Result<bool> {
    let (Some(read), Some(old), Some(new)) = (&info.tags, &info.version_id, &written.version_id) else {
        return Ok(false);
    };
    let Some(now) = store.tags_at(&info.key, Some(old)).await? else {
        return Ok(false);
    };
    if same_tags(&now, read) {
        return Ok(false);
    }
    let tags = with_version(&now, version_key, version);
    tracing::info!(
        "{}: tags edited during the rewrite carried over to the new version",
        info.key
    );
    store.put_tags_at(&info.key, Some(new), &tags).await?;
    Ok(true)
}

/// The current version of `key`, when attempt `attempt` wrote it: a write whose answer was lost
/// (its retry then fails its own precondition) is found by the attempt id it carries.
pub(crate) async fn written_by(store: &Store, key: &str, attempt: &str) -> Option<Written> {
    let head = store.head(key).await.ok()?;
    (metadata(&head.attributes, ATTEMPT_METADATA) == Some(attempt)).then_some(Written {
        e_tag: head.e_tag,
        version_id: head.version_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the store's own lasting answer turns copying in place off for the store; a caller's
    /// mistake (a configuration error) or a failed request does not.
    #[test]
    fn only_a_store_that_does_not_copy_parts_turns_copies_off() {
        let unsupported = Error::Unsupported {
            key: "k".into(),
            what: "copy parts in place",
            message: "501 NotImplemented".into(),
        };
        let bug = Error::Config("k: a copied part must come first".into());
        let throttled = Error::S3Api {
            key: "k".into(),
            op: "UploadPartCopy",
            status: 503,
            message: "SlowDown".into(),
        };
        assert!(copy_refused(&unsupported));
        assert!(!copy_refused(&bug) && !copy_refused(&throttled));
    }
}
