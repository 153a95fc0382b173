//! Migrating one object: read, plan its chain, rewrite, and write back conditionally with the
//! new version in the same request.

use std::io::Write;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::intent::{ATTEMPT_METADATA, RunContext};
use crate::migration::StepRegistration;
use crate::outcome::WritePath;
use crate::outcome::{Migrated, Outcome, Record};
use crate::registry::Registry;
use crate::rewrite::{AppendPlan, AppendRewriter, FileRanges, Footer, RowGroupRewriter, plan_append};
use crate::store::{CopySource, MIN_PART, ObjectInfo, Store, Written, metadata};
use crate::transfer::{ConditionalUpload, ObjectReader};
use crate::version::{VersionSource, resolve_version, version_key, version_metadata_name};

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
    /// [`RowGroupRewriter::verify_copied`].
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
    let version = resolve_version(
        key,
        &options.version_key,
        options.version_source,
        info.tags.as_deref(),
        Some(&footer.entries()),
    )?;
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
    let tags = info.tags.as_ref().map(|tags| {
        let mut tags: Vec<(String, String)> = tags
            .iter()
            .filter(|(k, _)| *k != options.version_key)
            .cloned()
            .collect();
        tags.push((options.version_key.clone(), new_version.to_string()));
        tags
    });
    // In a run, the intent is durable before the write, and the object names the run and the
    // attempt in its user metadata.
    let mut named = info.clone();
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
    let capabilities = store.capabilities();
    if !capabilities.tags && capabilities.user_metadata {
        // No tags here: the version goes beside the data in the object's metadata.
        named.attributes.insert(
            object_store::Attribute::Metadata(version_metadata_name(&options.version_key).into()),
            new_version.to_string().into(),
        );
    }
    let tags = tags.as_deref().unwrap_or(&[]);
    let mut upload = ConditionalUpload::new(store, &named, tags)?;
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
                    upload = ConditionalUpload::new(store, &named, tags)?;
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
    match e {
        Error::S3Api { status, .. } => matches!(status, 200 | 400 | 403 | 405 | 501),
        Error::Config(_) => true,
        _ => false,
    }
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
    let mut tags: Vec<(String, String)> = now.into_iter().filter(|(k, _)| k != version_key).collect();
    tags.push((version_key.to_string(), version.to_string()));
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

/// What the rewrite writes.
#[derive(Debug, Clone)]
struct Target {
    version_key: String,
    version: u32,
    verify_copied: bool,
}

/// Output bytes handed from the encoder to the uploader at a time.
const OUTPUT_CHUNK: usize = 1024 * 1024;

/// The rewrite as a pipeline of three parts running at once: row groups fetched one ahead,
/// checked, decoded, transformed and encoded on blocking threads, and the output streamed to
/// `upload`. Memory holds about two row groups and a part, whatever the file size. Returns the
/// rows written; the upload is left for the caller to finish or abort.
async fn stream_rewrite(
    reader: &ObjectReader,
    footer: &Footer,
    chain: &[StepRegistration],
    target: &Target,
    upload: &mut ConditionalUpload,
) -> std::result::Result<u64, Appending> {
    let row_groups = footer.num_row_groups();
    let (input_tx, mut input_rx) = mpsc::channel::<(usize, FileRanges)>(1);
    let (output_tx, mut output_rx) = mpsc::channel::<Bytes>(4);
    let key = reader.key().to_string();
    // The first buffer is sized for the whole output when that goes out as one PUT, so it is
    // never copied again; a larger output continues in small chunks, streamed as parts.
    let estimate = usize::try_from(reader.size()).unwrap_or(usize::MAX);
    let estimate = estimate.saturating_add(estimate / 4).saturating_add(OUTPUT_CHUNK);
    let first_chunk = upload
        .whole_object_limit()
        .map_or(estimate, |limit| estimate.min(limit.saturating_add(1)))
        .max(OUTPUT_CHUNK);
    let encoder = {
        let footer = footer.clone();
        let chain = chain.to_vec();
        let target = target.clone();
        let key = key.clone();
        tokio::task::spawn_blocking(move || -> Result<u64> {
            let sink = ChannelSink::new(output_tx, first_chunk);
            let mut rewriter = RowGroupRewriter::new(&key, &footer, &chain, &target.version_key, target.version, sink)?
                .verify_copied(target.verify_copied);
            let mut received = 0;
            while let Some((index, ranges)) = input_rx.blocking_recv() {
                rewriter.rewrite_row_group(index, &ranges)?;
                received += 1;
            }
            if received != row_groups {
                return Err(Error::Write {
                    key,
                    source: parquet::errors::ParquetError::General(format!(
                        "input ended after {received} of {row_groups} row groups"
                    )),
                });
            }
            let (sink, rows) = rewriter.finish()?;
            sink.close().map_err(|e| Error::Write {
                key: key.clone(),
                source: e.into(),
            })?;
            Ok(rows)
        })
    };
    let fetch = async move {
        for index in 0..row_groups {
            // Reserve the slot first, so at most one row group waits while one is encoded.
            let Ok(slot) = input_tx.reserve().await else {
                break;
            };
            slot.send((index, reader.row_group(footer, index).await?));
        }
        Ok::<(), Error>(())
    };
    // Owns the receiver: when an upload fails it is dropped with this future, which stops the
    // encoder's sends instead of leaving it blocked on a full channel.
    let send = async move {
        while let Some(chunk) = output_rx.recv().await {
            upload.push(chunk).await?;
        }
        Ok::<(), Error>(())
    };
    let (fetched, sent, encoded) = tokio::join!(fetch, send, encoder);
    // Steps run under their own panic guard, so a task that ends abnormally failed outside them.
    let encoded = encoded.map_err(|e| Error::Task {
        key: key.clone(),
        message: e.to_string(),
    });
    // The most telling error first: a changed or unreadable input explains an encoder that
    // stopped early, and a failed upload explains an encoder whose output had nowhere to go.
    // An encoder failure ends the upload's input cleanly, so it surfaces last.
    fetched?;
    sent?;
    Ok(encoded??)
}

/// The append rewrite as the same three-part pipeline: the input's data region copied by the
/// store first (while the computed columns are encoded), then the new chunks and footer
/// streamed after it. Only the read columns' chunks come down, or whole row groups when the
/// copied chunks are checked. Returns the rows written.
async fn stream_append(
    reader: &ObjectReader,
    footer: &Footer,
    chain: &[StepRegistration],
    target: &Target,
    plan: &AppendPlan,
    source: CopySource,
    upload: &mut ConditionalUpload,
) -> std::result::Result<u64, Appending> {
    let row_groups = footer.num_row_groups();
    let (input_tx, mut input_rx) = mpsc::channel::<(usize, FileRanges)>(1);
    // Room for the encoder to run ahead while the store copies the data region.
    let (output_tx, mut output_rx) = mpsc::channel::<Bytes>(16);
    let key = reader.key().to_string();
    let encoder = {
        let footer = footer.clone();
        let chain = chain.to_vec();
        let target = target.clone();
        let key = key.clone();
        tokio::task::spawn_blocking(move || -> Result<u64> {
            let sink = ChannelSink::new(output_tx, OUTPUT_CHUNK);
            let mut rewriter = AppendRewriter::new(&key, &footer, &chain, &target.version_key, target.version, sink)?
                .map_err(|(why, _)| Error::Write {
                    key: key.clone(),
                    source: parquet::errors::ParquetError::General(format!("the append layout does not apply: {why}")),
                })?
                .verify_copied(target.verify_copied);
            let mut received = 0;
            while let Some((index, ranges)) = input_rx.blocking_recv() {
                rewriter.rewrite_row_group(index, &ranges)?;
                received += 1;
            }
            if received != row_groups {
                return Err(Error::Write {
                    key,
                    source: parquet::errors::ParquetError::General(format!(
                        "input ended after {received} of {row_groups} row groups"
                    )),
                });
            }
            let (sink, rows, _) = rewriter.finish()?;
            sink.close().map_err(|e| Error::Write {
                key: key.clone(),
                source: e.into(),
            })?;
            Ok(rows)
        })
    };
    let verify = target.verify_copied;
    let fetch = async move {
        for index in 0..row_groups {
            let Ok(slot) = input_tx.reserve().await else {
                break;
            };
            let ranges = if verify {
                reader.row_group(footer, index).await?
            } else {
                reader.ranges(&plan.reads[index]).await?
            };
            slot.send((index, ranges));
        }
        Ok::<(), Error>(())
    };
    let send = async move {
        if let Err(e) = upload.copy_first(&source).await {
            return Err(if copy_refused(&e) {
                Appending::CopyRefused(e)
            } else {
                Appending::Failed(e)
            });
        }
        while let Some(chunk) = output_rx.recv().await {
            upload.push(chunk).await?;
        }
        // The copies run while the new bytes go out; a refusal shows here at the latest.
        upload.copies_done().await.map_err(|e| {
            if copy_refused(&e) {
                Appending::CopyRefused(e)
            } else {
                Appending::Failed(e)
            }
        })?;
        Ok::<(), Appending>(())
    };
    let (fetched, sent, encoded) = tokio::join!(fetch, send, encoder);
    let encoded = encoded.map_err(|e| Error::Task {
        key: key.clone(),
        message: e.to_string(),
    });
    // A refused copy first: the caller then streams the file whole.
    sent?;
    fetched?;
    Ok(encoded??)
}

/// A `Write` that hands the encoder's output to the async uploader in chunks: a first one of
/// the size it is given, then chunks of [`OUTPUT_CHUNK`].
struct ChannelSink {
    tx: mpsc::Sender<Bytes>,
    buffer: Vec<u8>,
}

impl ChannelSink {
    fn new(tx: mpsc::Sender<Bytes>, first_chunk: usize) -> Self {
        Self {
            tx,
            buffer: Vec::with_capacity(first_chunk),
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        let chunk = Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(OUTPUT_CHUNK)));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the upload stopped"))
    }

    fn close(mut self) -> std::io::Result<()> {
        if !self.buffer.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}

impl Write for ChannelSink {
    /// Fills the chunk to its capacity and no further (growing it would copy it), sending it
    /// when full; `write_all` comes back for the rest.
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = self.buffer.capacity() - self.buffer.len();
        let taken = data.len().min(room);
        self.buffer.extend_from_slice(&data[..taken]);
        if taken == room {
            self.send()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
