//! Checking the guarantees the write protocol relies on, instead of assuming them: on a scratch
//! key under `_pqmigrate/probe/`, a second create must fail, a stale `If-Match` must fail on a
//! PUT and on a multipart completion, tags and user metadata must round-trip, and whether the
//! store keeps versions is reported. The result is kept per store for a while, so a fleet of
//! workers does not probe per object.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::store::{
    Condition, INTERNAL_PREFIX, REQUEST_ATTEMPTS, Store, WriteOptions, in_rounds, metadata, user_metadata,
};

/// How long a probe's result is trusted.
const PROBE_TTL: Duration = Duration::from_secs(15 * 60);
const TAG: (&str, &str) = ("pqm-probe", "1");
const STALE_E_TAG: &str = "\"00000000000000000000000000000000\"";

/// What the probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guarantees {
    /// A create (`If-None-Match: *`) of an existing key fails.
    pub conditional_create: bool,
    /// A PUT with a stale `If-Match` fails.
    pub conditional_put: bool,
    /// A multipart completion with a stale `If-Match` fails; `None` where the store has no
    /// multipart uploads.
    pub conditional_complete: Option<bool>,
    /// Tags written with the data read back; `None` where the store has no tags.
    pub tags_round_trip: Option<bool>,
    /// User metadata written with the data reads back; `None` where the store keeps none.
    pub metadata_round_trips: Option<bool>,
    /// The store keeps earlier versions (rollback needs them).
    pub versioning: bool,
}

impl Guarantees {
    /// The first guarantee a migration needs that the store lacks, named; `None` when the
    /// store can be trusted (a missing conditional completion is avoided, not refused: see
    /// [`Guarantees::single_put_only`]).
    pub fn refusal(&self) -> Option<&'static str> {
        if !self.conditional_create {
            Some(
                "a create-only write of an existing key (If-None-Match: *, or if-generation-match 0 on GCS) was accepted, so two runs could both take the lease",
            )
        } else if !self.conditional_put {
            Some("a PUT with a stale If-Match was accepted, so a concurrent writer's change could be overwritten")
        } else if self.tags_round_trip == Some(false) {
            Some(
                "tags written with an object did not read back (is AWS_DISABLE_TAGGING or AZURE_DISABLE_TAGGING set?), so migrated objects would lose their version tag and their other tags",
            )
        } else if self.metadata_round_trips == Some(false) {
            Some("user metadata written with an object did not read back, so a written object could not name its run")
        } else {
            None
        }
    }

    /// Whether outputs must go out as single conditional PUTs (up to 5 GiB), because a stale
    /// `If-Match` on a multipart completion is not refused.
    pub fn single_put_only(&self) -> bool {
        self.conditional_complete == Some(false)
    }
}

fn cache() -> &'static Mutex<HashMap<String, (Instant, Guarantees)>> {
    static CACHE: OnceLock<Mutex<HashMap<String, (Instant, Guarantees)>>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// The store's guarantees, probed at most once every 15 minutes in this process.
///
/// # Errors
/// Store errors of the probe's own requests.
pub async fn guarantees(store: &Store) -> Result<Guarantees> {
    if let Some((at, found)) = cache().lock().expect("probe cache").get(store.identity()).copied()
        && at.elapsed() < PROBE_TTL
    {
        return Ok(found);
    }
    // Each round probes a fresh key, so a throttled round leaves nothing half-checked.
    let found = in_rounds(|| probe(store)).await?;
    cache()
        .lock()
        .expect("probe cache")
        .insert(store.identity().to_string(), (Instant::now(), found));
    Ok(found)
}

/// Refuses a store that lacks a guarantee a migration needs, naming it; returns the store
/// to write with (single conditional PUTs where a multipart completion ignores `If-Match`).
///
/// # Errors
/// [`Error::Config`] naming the missing guarantee, store errors of the probe.
pub async fn checked(store: Store) -> Result<Store> {
    let found = guarantees(&store).await?;
    if let Some(missing) = found.refusal() {
        return Err(Error::Config(format!("{} cannot be trusted: {missing}", store.url())));
    }
    if found.single_put_only() {
        tracing::warn!(
            "{}: a stale If-Match on CompleteMultipartUpload is accepted; every output goes out as one conditional PUT (up to 5 GiB)",
            store.url()
        );
        return Ok(store.single_puts_only());
    }
    Ok(store)
}

/// Runs the probe now, on a fresh scratch key.
///
/// # Errors
/// Store errors of the probe's own requests.
pub async fn probe(store: &Store) -> Result<Guarantees> {
    let key = format!("{INTERNAL_PREFIX}probe/{:016x}", rand::random::<u64>());
    let result = probe_at(store, &key).await;
    let _ = store.delete(&key).await;
    result
}

async fn probe_at(store: &Store, key: &str) -> Result<Guarantees> {
    let capabilities = store.capabilities();
    let tags = vec![(TAG.0.to_string(), TAG.1.to_string())];
    let create = WriteOptions {
        condition: Condition::Create,
        tags: tags.clone(),
        attributes: user_metadata(&[TAG]),
        encryption: None,
    };
    let probe = Bytes::from_static(b"probe");
    match store.write(key, probe.clone(), create.clone()).await {
        Ok(_) => {}
        // Our own create, whose answer was lost.
        Err(e) if e.is_already_exists() && store.get_if_exists(key).await?.is_some_and(|(_, b)| b == probe) => {}
        Err(e) => return Err(e),
    }
    // Read back before the checks below, which may replace the object on a store that
    // ignores a condition.
    let head = store.head(key).await?;
    let metadata_round_trips = capabilities
        .user_metadata
        .then(|| metadata(&head.attributes, TAG.0) == Some(TAG.1));
    let tags_round_trip = match capabilities.tags {
        false => None,
        true => Some(
            store
                .tags_at(key, head.version_id.as_deref())
                .await?
                .is_some_and(|found| found.contains(&tags[0])),
        ),
    };
    let conditional_create = match store.write(key, Bytes::from_static(b"again"), create).await {
        Err(e) if e.is_already_exists() => true,
        Ok(_) => false,
        Err(e) => return Err(e),
    };
    let stale = WriteOptions {
        condition: Condition::IfMatch(STALE_E_TAG.into()),
        ..WriteOptions::default()
    };
    let conditional_put = match store.write(key, Bytes::from_static(b"stale"), stale.clone()).await {
        Err(Error::Conflict { .. }) => true,
        Ok(_) => false,
        Err(e) => return Err(e),
    };
    let conditional_complete = match capabilities.multipart {
        false => None,
        true => Some(stale_complete_refused(store, key, &stale).await?),
    };
    Ok(Guarantees {
        conditional_create,
        conditional_put,
        conditional_complete,
        tags_round_trip,
        metadata_round_trips,
        versioning: store.versioning_enabled().await?,
    })
}

async fn stale_complete_refused(store: &Store, key: &str, stale: &WriteOptions) -> Result<bool> {
    let upload = store.create_multipart(key, stale).await?;
    let refused = complete_stale(store, key, &upload, stale).await;
    let _ = store.abort_multipart(key, &upload).await;
    refused
}

/// Completes `upload` (one small part) under the stale condition: whether it is refused.
async fn complete_stale(store: &Store, key: &str, upload: &str, stale: &WriteOptions) -> Result<bool> {
    let part = store
        .upload_part(key, upload, 0, Bytes::from_static(b"stale").into())
        .await?;
    let parts = std::slice::from_ref(&part);
    // The completion is refused (or not) whatever happened before it, so repeating it after
    // a transient failure is safe here.
    let mut completed = store.complete_multipart(key, upload, parts, &stale.condition).await;
    for _ in 1..REQUEST_ATTEMPTS {
        if !matches!(&completed, Err(e) if e.is_transient()) {
            break;
        }
        completed = store.complete_multipart(key, upload, parts, &stale.condition).await;
    }
    match completed {
        Err(Error::Conflict { .. }) => Ok(true),
        Ok(_) => Ok(false),
        Err(e) => Err(e),
    }
}
