//! Migrating one object: read, plan its chain, rewrite, and write back conditionally with the
//! new version in the same request.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::intent::{ATTEMPT_METADATA, RunContext};
use crate::migration::StepRegistration;
use crate::outcome::WritePath;
use crate::outcome::{Migrated, Outcome, Record};
use crate::registry::Registry;
use crate::rewrite::{Footer, RewriteTarget};
use crate::store::{CopySource, MIN_PART, ObjectInfo, Store, Written, metadata};
use crate::transfer::{ConditionalUpload, ObjectReader};
use crate::version::{VersionSource, version_key};
use crate::version_store::VersionStore;

mod pipeline;
mod tag_edits;

use pipeline::{Appending, Layout, append_plan_for, rewrite_into};
use tag_edits::{carry_over_late_tag_edit, tags_unchanged};

/// What to migrate objects to.
#[derive(Debug, Clone)]
#[non_exhaustive]
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
    /// Check the pages of copied column chunks before copying them (default `true`): every
    /// page's header parsed, its CRC compared where the writer recorded one, its data
    /// decompressed and its values counted, nothing decoded. A failed check fails the object
    /// and abandons its upload. Off, a damaged chunk in a column no step reads is copied as it
    /// is, unnoticed.
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

crate::setters::setters!(MigrateOptions {
    set version_key: String,
    val version_source: VersionSource,
    some_val max_steps: usize,
    val verify_copied: bool,
    some_val run: RunContext,
    some_val deadline: tokio::time::Instant,
    some_val origin: Origin,
});

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
    /// The steps a chain split over invocations applied before this one, with their
    /// fingerprints: the record of the chain's last invocation names them all, so a migration
    /// file edited after it migrated the object is found by `status` and refused by `run`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied: Vec<(crate::StepId, String)>,
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
    let done = |version, outcome| Record {
        attempts: 1,
        millis: started.elapsed().as_millis() as u64,
        ..Record::new(key, Some(version), outcome)
    };
    // 1. Read its head, the tags of exactly that version, its footer, and the version they
    //    record (which must agree).
    let versions = VersionStore::new(store, &options.version_key, options.version_source);
    let mut read = Read::of(store, &versions, key).await?;
    let version = read.version;
    let mut chain = match registry.chain(&options.schema, version, options.target) {
        Ok(chain) => chain,
        Err(outcome) => return Ok(done(version, outcome)),
    };
    if let Some(max) = options.max_steps {
        chain.truncate(max.max(1));
    }
    let new_version = chain.last().map_or(version, |s| s.to);
    let origin = options.origin.clone().unwrap_or(Origin {
        e_tag: read.info.e_tag.clone(),
        version_id: read.info.version_id.clone(),
        version,
        applied: Vec::new(),
    });
    // 3. The intent is durable in the run's journal before anything is written, and the
    //    written object will name the run and the attempt in its user metadata.
    let (mut named, tags) = {
        let (tags, attributes) = versions.record(&read.info, new_version)?;
        let named = ObjectInfo {
            attributes,
            ..read.info.clone()
        };
        (named, tags)
    };
    let attempt_id = match &options.run {
        Some(run) => Some(intend(run, &origin, new_version, &mut named).await?),
        None => None,
    };
    // 2. Stream it through the whole chain into one conditional upload (carrying the new
    //    version in its tags, footer and metadata), checking each step's output.
    let target = RewriteTarget::new(&options.version_key, new_version).verify_copied(options.verify_copied);
    let mut upload = ConditionalUpload::new(store, &named, &tags)?;
    let fresh = || ConditionalUpload::new(store, &named, &tags);
    let deadline = Deadline {
        at: options.deadline,
        started,
    };
    let rewritten = read.rewrite(store, &chain, &target, &mut upload, fresh, deadline).await;
    let (rows, path, streamed_because) = match rewritten {
        Ok(rewritten) => rewritten,
        Err(e) => {
            upload.abort().await;
            return Err(e);
        }
    };
    let (sent, copied) = (upload.bytes(), upload.copied());
    // 4. Complete it in one request, if the ETag read is still the object's; 5. a lost answer
    //    is found by the attempt id the object carries.
    let written = complete(store, &read.info, upload, options, attempt_id.as_deref()).await?;
    // The object is written: whatever happens now, it is recorded as migrated.
    if let Err(e) = carry_over_late_tag_edit(store, &read.info, &options.version_key, new_version, &written).await {
        tracing::warn!(
            "{key}: written, but checking for a tag edit made during the write failed: {}",
            e.report()
        );
    }
    // 6. Record the outcome.
    Ok(Record {
        from: Some(origin.version),
        ..done(
            version,
            Outcome::Migrated(Box::new(Migrated {
                to: new_version,
                steps: origin
                    .applied
                    .iter()
                    .map(|(id, _)| id.clone())
                    .chain(chain.iter().map(|s| s.id()))
                    .collect(),
                fingerprints: (origin.applied.iter().map(|(_, f)| f.clone()))
                    .chain(chain.iter().map(|s| s.fingerprint()))
                    .collect(),
                old_e_tag: origin.e_tag,
                new_e_tag: written.e_tag,
                old_version_id: origin.version_id,
                new_version_id: written.version_id,
                bytes_in: read.info.size,
                bytes_out: sent + copied,
                rows,
                path,
                streamed_because,
                received: read.reader.received(),
                sent,
                copied,
                attempt_id,
            })),
        )
    })
}

/// What step 1 read of an object.
struct Read {
    info: ObjectInfo,
    reader: ObjectReader,
    /// Without its page index when the file may be copied in place (copied chunks keep theirs
    /// where they are); with it when it is streamed whole.
    footer: Footer,
    version: u32,
}

impl Read {
    async fn of(store: &Store, versions: &VersionStore, key: &str) -> Result<Self> {
        let info = store.object_info(key).await?;
        let reader = ObjectReader::new(store, key, info.size, info.e_tag.clone())?;
        let footer = reader.footer(!Self::may_append(store, &info)).await?;
        let version = versions.of(key, info.tags.as_deref(), &footer)?;
        Ok(Self {
            info,
            reader,
            footer,
            version,
        })
    }

    fn may_append(store: &Store, info: &ObjectInfo) -> bool {
        store.copies_parts() && info.size >= MIN_PART
    }
}

/// Step 3: journals the intent to write `origin`'s object at `new_version`, and names the run
/// and the attempt in what will be written. Returns the attempt id.
async fn intend(run: &RunContext, origin: &Origin, new_version: u32, named: &mut ObjectInfo) -> Result<String> {
    run.check_fence(&named.key)?;
    let attempt = run
        .record_intent(
            &named.key,
            origin.e_tag.clone(),
            origin.version_id.clone(),
            origin.version,
            new_version,
        )
        .await?;
    run.name_in(&mut named.attributes, &attempt);
    Ok(attempt)
}

impl Read {
    /// Step 2: the rewrite into `upload`, appended after the data region copied in place where
    /// the store and the file allow it, else streamed whole (also when the store refuses a
    /// copied part, which turns copying off for the store; `fresh` then starts the upload
    /// again). Returns the rows written, the path taken and why the file was streamed whole.
    async fn rewrite(
        &mut self,
        store: &Store,
        chain: &[StepRegistration],
        target: &RewriteTarget,
        upload: &mut ConditionalUpload,
        fresh: impl Fn() -> Result<ConditionalUpload>,
        deadline: Deadline,
    ) -> Result<(u64, WritePath, Option<String>)> {
        let key = self.info.key.as_str();
        let why = match append_plan_for(store, key, &self.footer, chain)? {
            Ok(plan) => {
                let source = CopySource {
                    key: key.to_string(),
                    e_tag: self.info.e_tag.clone().unwrap_or_default(),
                    version_id: self.info.version_id.clone(),
                    range: 0..plan.region_end,
                };
                let layout = Layout::Append { plan: &plan, source };
                let appended = rewrite_into(&self.reader, &self.footer, chain, target, layout, upload);
                match deadline.within(Box::pin(appended), key).await {
                    Ok(rows) => return Ok((rows, WritePath::Appended, None)),
                    Err(Appending::Failed(e)) => return Err(e),
                    Err(Appending::CopyRefused(refused)) => {
                        // The store cannot copy parts after all: this object, and every later
                        // one, streams whole.
                        store.refuse_copies(&refused);
                        upload.abort().await;
                        *upload = fresh()?;
                        format!("the store refused a copied part: {}", refused.report())
                    }
                }
            }
            Err(why) => why,
        };
        if Self::may_append(store, &self.info) {
            self.footer = self.reader.footer(true).await?;
        }
        let key = self.info.key.as_str();
        let streamed = rewrite_into(&self.reader, &self.footer, chain, target, Layout::Whole, upload);
        let rows = deadline
            .within(Box::pin(streamed), key)
            .await
            .map_err(Appending::into_error)?;
        Ok((rows, WritePath::Streamed, Some(why)))
    }
}

/// When a rewrite must be done by (a Lambda invocation's deadline), and when it started.
#[derive(Debug, Clone, Copy)]
struct Deadline {
    at: Option<tokio::time::Instant>,
    started: Instant,
}

impl Deadline {
    /// Runs a rewrite, giving up at the deadline with [`Error::Timeout`].
    async fn within<T>(
        self,
        rewrite: std::pin::Pin<Box<dyn std::future::Future<Output = std::result::Result<T, Appending>> + Send + '_>>,
        key: &str,
    ) -> std::result::Result<T, Appending> {
        let Some(at) = self.at else {
            return rewrite.await;
        };
        match tokio::time::timeout_at(at, rewrite).await {
            Ok(done) => done,
            Err(_) => Err(Appending::Failed(Error::Timeout {
                key: key.to_string(),
                seconds: self.started.elapsed().as_secs_f64(),
            })),
        }
    }
}

/// Steps 4 and 5: completes the upload, conditional on the ETag read, once the run's lease is
/// still certainly its own and the tags read are still the object's (a tag edit does not change
/// the ETag, so the write's condition cannot see one). A write whose answer was lost is
/// recognised by `attempt`, which the object then carries.
async fn complete(
    store: &Store,
    info: &ObjectInfo,
    mut upload: ConditionalUpload,
    options: &MigrateOptions,
    attempt: Option<&str>,
) -> Result<Written> {
    let checked = match options.run.as_ref().map_or(Ok(()), |run| run.check_fence(&info.key)) {
        Ok(()) => tags_unchanged(store, info).await,
        Err(e) => Err(e),
    };
    if let Err(e) = checked {
        upload.abort().await;
        return Err(e);
    }
    match (upload.finish().await, attempt) {
        (Ok(written), _) => Ok(written),
        (Err(e), Some(attempt)) => written_by(store, &info.key, attempt).await.ok_or(e),
        (Err(e), None) => Err(e),
    }
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
mod tests;
