//! The run lease: one lock object per data set, so two runs on the same data set cannot
//! interleave. Created with `If-None-Match: *`, renewed while the run lives, taken over only
//! once lapsed (conditionally, so two takers cannot both win), and released at the end, only
//! while still ours (conditionally).
//!
//! A lease is a fence, not just a lock: its expiry is judged by the store's clock (the lease
//! object's `Last-Modified` plus its TTL, against the server's `Date`), so machines whose
//! clocks disagree still agree on it; and a holder that cannot renew within three quarters of
//! the TTL gives it up ([`Lease::lost`]) before anyone else may take it, so its run stops
//! starting writes and aborts uploads not yet completed.

use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::identity::host_name;
use crate::store::{Condition, INTERNAL_PREFIX, Store, WriteOptions, in_rounds};

/// Why a run or a rollback stopped when its lease was lost.
pub const LEASE_LOST: &str = "the lease was lost (taken by another run, or not renewed in time)";

/// Default time a lease lives without renewal.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(60);

/// What a lease object holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseInfo {
    /// Run holding it.
    pub run_id: String,
    /// Host of that run.
    pub host: String,
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// When the lease lapses unless renewed (RFC 3339, by the holder's clock: for people; the
    /// decision uses the store's clock and `ttl_ms`).
    pub expires_at: String,
    /// How long the lease lives after its last write, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// Released by its holder: free to take.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub released: bool,
}

impl LeaseInfo {
    /// Whether the lease has lapsed at `now` (the store's clock), last written at
    /// `last_modified` (the store's clock too). One second of slack covers the resolution of
    /// HTTP dates.
    fn lapsed_at(&self, now: DateTime<Utc>, last_modified: Option<DateTime<Utc>>) -> bool {
        if self.released {
            return true;
        }
        match (self.ttl_ms, last_modified) {
            (Some(ttl), Some(written)) => now > written + chrono::Duration::milliseconds(ttl as i64 + 1000),
            // A lease from an older version: its own expiry, by the store's clock.
            _ => DateTime::parse_from_rfc3339(&self.expires_at).map_or(true, |t| t < now),
        }
    }
}

/// A lease as read: what it says, its ETag and when the store last wrote it.
struct Found {
    info: LeaseInfo,
    e_tag: Option<String>,
    last_modified: Option<DateTime<Utc>>,
}

impl Found {
    async fn lapsed(&self, store: &Store) -> Result<bool> {
        if self.info.released {
            return Ok(true);
        }
        Ok(self
            .info
            .lapsed_at(in_rounds(|| store.server_time()).await?, self.last_modified))
    }
}

/// The key of the lease for a schema id (and shard, so shards of one data set run side by side).
///
/// ```
/// assert_eq!(pqmigrate_core::lease::lease_key("sensorData", None), "_pqmigrate/leases/sensorData.json");
/// assert_eq!(pqmigrate_core::lease::lease_key("sensorData", Some("1/4")), "_pqmigrate/leases/sensorData.shard-1-of-4.json");
/// ```
pub fn lease_key(schema: &str, shard: Option<&str>) -> String {
    match shard {
        Some(shard) => format!(
            "{INTERNAL_PREFIX}leases/{schema}.shard-{}.json",
            shard.replace('/', "-of-")
        ),
        None => format!("{INTERNAL_PREFIX}leases/{schema}.json"),
    }
}

/// A held lease. Renewed in the background until [`Lease::release`]; if renewal finds the
/// lease taken, `lost` is cancelled so the run stops taking objects.
#[derive(Debug)]
pub struct Lease {
    store: Store,
    key: String,
    run_id: String,
    /// A lease found expired and taken over at acquisition.
    pub took_over: Option<LeaseInfo>,
    lost: CancellationToken,
    stop: CancellationToken,
    renewer: tokio::task::JoinHandle<Option<String>>,
}

fn expiry(ttl: Duration) -> String {
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(60));
    (Utc::now() + ttl).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn body(info: &LeaseInfo) -> Bytes {
    Bytes::from(serde_json::to_vec_pretty(info).expect("serializable"))
}

fn conditional(condition: Condition) -> WriteOptions {
    WriteOptions {
        condition,
        ..WriteOptions::default()
    }
}

async fn read(store: &Store, key: &str) -> Result<Option<Found>> {
    let Some((head, bytes)) = in_rounds(|| store.get_if_exists(key)).await? else {
        return Ok(None);
    };
    let info = serde_json::from_slice(&bytes).map_err(|e| Error::journal(key, format!("unreadable lease: {e}")))?;
    Ok(Some(Found {
        info,
        e_tag: head.e_tag,
        last_modified: head.last_modified,
    }))
}

/// Reads the lease at `key`, if one is held (for `status` and operators): its holder, and
/// whether it has lapsed by the store's clock. A released lease is none.
///
/// # Errors
/// Store errors, or an unreadable lease.
pub async fn current_lease(store: &Store, key: &str) -> Result<Option<(LeaseInfo, bool)>> {
    match read(store, key).await? {
        Some(found) if !found.info.released => {
            let lapsed = found.lapsed(store).await?;
            Ok(Some((found.info, lapsed)))
        }
        _ => Ok(None),
    }
}

/// Releases the lease at `key` if `run_id` holds it (and nobody else took it meanwhile): the
/// end of a run that spans processes. A lease held by another run, or already released, is
/// left as it is.
///
/// # Errors
/// Store errors, or an unreadable lease.
pub async fn release_held_by(store: &Store, key: &str, run_id: &str) -> Result<()> {
    let Some(found) = read(store, key).await? else {
        return Ok(());
    };
    if found.info.run_id != run_id || found.info.released {
        return Ok(());
    }
    let released = LeaseInfo {
        released: true,
        expires_at: expiry(Duration::ZERO),
        ttl_ms: Some(0),
        ..found.info
    };
    let condition = match found.e_tag {
        Some(e_tag) => Condition::IfMatch(e_tag),
        None => return break_lease(store, key).await,
    };
    // A retried release whose first answer was lost meets a changed ETag: a conflict.
    match in_rounds(|| store.write(key, body(&released), conditional(condition.clone()))).await {
        Ok(_) | Err(Error::Conflict { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletes the lease at `key` whoever holds it (`--break-lease`).
///
/// # Errors
/// Store errors.
pub async fn break_lease(store: &Store, key: &str) -> Result<()> {
    in_rounds(|| store.delete(key)).await
}

impl Lease {
    /// Takes the lease at `key` for `run_id`, or fails naming its live holder.
    ///
    /// # Errors
    /// [`Error::LeaseHeld`] when another run holds it; store errors.
    pub async fn acquire(store: &Store, key: &str, run_id: &str, started_at: &str, ttl: Duration) -> Result<Self> {
        let mine = |expires_at| LeaseInfo {
            run_id: run_id.to_string(),
            host: host_name(),
            started_at: started_at.to_string(),
            expires_at,
            ttl_ms: Some(ttl.as_millis() as u64),
            released: false,
        };
        let mut took_over = None;
        let (e_tag, confirmed) = loop {
            let sent = Instant::now();
            // A create whose answer was lost is found below as ours.
            match in_rounds(|| store.write(key, body(&mine(expiry(ttl))), conditional(Condition::Create))).await {
                Ok(r) => break (r.e_tag, sent),
                Err(e) if e.is_already_exists() => {}
                Err(e) => return Err(e),
            }
            let Some(found) = read(store, key).await? else {
                continue;
            };
            // Our own create, whose answer was lost: the lease is ours.
            if found.info.run_id == run_id && !found.info.released {
                break (found.e_tag, sent);
            }
            if !found.lapsed(store).await? {
                return Err(Error::LeaseHeld {
                    key: key.to_string(),
                    run_id: found.info.run_id,
                    host: found.info.host,
                    expires: found.info.expires_at,
                });
            }
            // Lapsed or released: take it over conditionally, so of two runs that found it
            // free only one wins.
            let sent = Instant::now();
            let taken = match found.e_tag {
                None => {
                    break_lease(store, key).await?;
                    None
                }
                Some(e_tag) => {
                    let update = conditional(Condition::IfMatch(e_tag));
                    match in_rounds(|| store.write(key, body(&mine(expiry(ttl))), update.clone())).await {
                        Ok(r) => Some(r.e_tag),
                        Err(Error::Conflict { .. }) => None,
                        Err(e) => return Err(e),
                    }
                }
            };
            if !found.info.released {
                took_over = Some(found.info);
            }
            if let Some(e_tag) = taken {
                break (e_tag, sent);
            }
        };
        let lost = CancellationToken::new();
        let stop = CancellationToken::new();
        let renewer = tokio::spawn(
            Renewal {
                store: store.clone(),
                key: key.to_string(),
                info: mine(String::new()),
                e_tag,
                confirmed,
                ttl,
                lost: lost.clone(),
            }
            .run(stop.clone()),
        );
        Ok(Self {
            store: store.clone(),
            key: key.to_string(),
            run_id: run_id.to_string(),
            took_over,
            lost,
            stop,
            renewer,
        })
    }

    /// Stops renewing and leaves the lease in place until its TTL runs out, for a run that
    /// goes on in other processes (a detached run), which release it by
    /// [`release_held_by`].
    pub async fn detach(self) {
        self.stop.cancel();
        let _ = self.renewer.await;
    }

    /// Cancelled when the lease is no longer certainly this run's: taken by another run, or not
    /// renewed within three quarters of its TTL. Nothing may be written after that.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// The lease object's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Stops renewing and releases the lease if it is still this run's: marked released with
    /// `If-Match` on the ETag of this run's last write of it, so a lease another run took over
    /// is never touched. The released lease object stays, free for the next run to take.
    ///
    /// # Errors
    /// Store errors of the release.
    pub async fn release(self) -> Result<()> {
        self.stop.cancel();
        let e_tag = self.renewer.await.ok().flatten();
        if self.lost.is_cancelled() {
            return Ok(());
        }
        let Some(e_tag) = e_tag else {
            // A store without ETags: nothing to condition on; delete what is still ours.
            return match read(&self.store, &self.key).await? {
                Some(found) if found.info.run_id == self.run_id => break_lease(&self.store, &self.key).await,
                _ => Ok(()),
            };
        };
        let released = LeaseInfo {
            run_id: self.run_id.clone(),
            host: host_name(),
            started_at: String::new(),
            expires_at: expiry(Duration::ZERO),
            ttl_ms: Some(0),
            released: true,
        };
        let release = conditional(Condition::IfMatch(e_tag));
        match in_rounds(|| self.store.write(&self.key, body(&released), release.clone())).await {
            Ok(_) => Ok(()),
            // Taken over after ours lapsed, or our own release whose answer was lost.
            Err(Error::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The background renewal of a held lease.
struct Renewal {
    store: Store,
    key: String,
    info: LeaseInfo,
    e_tag: Option<String>,
    /// When the last write of the lease that landed was sent: the lease is certainly ours
    /// until this plus the TTL, whatever the clocks say.
    confirmed: Instant,
    ttl: Duration,
    lost: CancellationToken,
}

impl Renewal {
    /// Renews every third of the TTL (every tenth after a failure) until `stop`; gives the lease
    /// up when another run took it or when it could not be renewed within three quarters of the
    /// TTL. Returns the ETag of the last write of the lease while it is ours.
    async fn run(mut self, stop: CancellationToken) -> Option<String> {
        let mut wait = self.ttl / 3;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return self.e_tag,
                _ = tokio::time::sleep(wait) => {}
            }
            match self.renew().await {
                Ok(()) => wait = self.ttl / 3,
                Err(reason) => {
                    if reason.is_some() || self.confirmed.elapsed() >= self.ttl * 3 / 4 {
                        let reason = reason.unwrap_or_else(|| "it could not be renewed within its TTL".into());
                        tracing::error!("{}: lease given up: {reason}; stopping", self.key);
                        self.lost.cancel();
                        return None;
                    }
                    wait = self.ttl / 10;
                }
            }
        }
    }

    /// One renewal. `Err(Some(reason))` when the lease is another run's now, `Err(None)` when
    /// the renewal failed and may be tried again.
    async fn renew(&mut self) -> std::result::Result<(), Option<String>> {
        let sent = Instant::now();
        self.info.expires_at = expiry(self.ttl);
        let condition = match &self.e_tag {
            Some(e) => Condition::IfMatch(e.clone()),
            None => Condition::None,
        };
        match self
            .store
            .write(&self.key, body(&self.info), conditional(condition))
            .await
        {
            Ok(r) => {
                self.e_tag = r.e_tag;
                self.confirmed = sent;
                Ok(())
            }
            Err(Error::Conflict { .. }) => match read(&self.store, &self.key).await {
                // Our own renewal, whose answer was lost.
                Ok(Some(found)) if found.info == self.info => {
                    self.e_tag = found.e_tag;
                    self.confirmed = sent;
                    Ok(())
                }
                Ok(_) => Err(Some("another run took it".into())),
                Err(e) => {
                    tracing::warn!("{}: reading the lease failed: {}", self.key, e.report());
                    Err(None)
                }
            },
            Err(e) => {
                tracing::warn!("{}: renewing the lease failed: {}", self.key, e.report());
                Err(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_run_is_refused_until_the_lease_lapses() {
        let store = Store::memory();
        let key = lease_key("s", None);
        let first = Lease::acquire(&store, &key, "run-1", "t", Duration::from_secs(5))
            .await
            .unwrap();
        let err = Lease::acquire(&store, &key, "run-2", "t", Duration::from_secs(60))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::LeaseHeld { run_id, .. } if run_id == "run-1"),
            "{err}"
        );
        first.release().await.unwrap();
        let second = Lease::acquire(&store, &key, "run-2", "t", Duration::from_millis(200))
            .await
            .unwrap();
        assert!(second.took_over.is_none());
        // A run that dies keeps its lease until it lapses (its TTL after its last write, plus a
        // second of slack for HTTP dates); then the next run takes it over.
        second.stop.cancel();
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let third = Lease::acquire(&store, &key, "run-3", "t", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(third.took_over.as_ref().map(|l| l.run_id.as_str()), Some("run-2"));
        let (info, expired) = current_lease(&store, &key).await.unwrap().unwrap();
        assert_eq!((info.run_id.as_str(), expired), ("run-3", false));
        third.release().await.unwrap();
        assert!(current_lease(&store, &key).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn release_leaves_a_lease_another_run_took_over() {
        let store = Store::memory();
        let key = lease_key("s", None);
        let first = Lease::acquire(&store, &key, "run-1", "t", Duration::from_secs(60))
            .await
            .unwrap();
        let successor = LeaseInfo {
            run_id: "run-2".into(),
            host: "h".into(),
            started_at: "t".into(),
            expires_at: expiry(Duration::from_secs(60)),
            ttl_ms: Some(60_000),
            released: false,
        };
        store
            .put(&key, body(&successor), &[], Default::default())
            .await
            .unwrap();
        first.release().await.unwrap();
        let (holder, expired) = current_lease(&store, &key).await.unwrap().unwrap();
        assert_eq!(
            (holder.run_id.as_str(), expired),
            ("run-2", false),
            "the successor keeps it"
        );
    }

    #[tokio::test]
    async fn expiry_is_judged_by_the_stores_clock_not_the_holders() {
        let store = Store::memory();
        let key = lease_key("s", None);
        // Written just now by a holder whose clock runs an hour behind: its own expiry is long
        // past, but the store wrote the lease a moment ago and its TTL has not run out.
        let behind = LeaseInfo {
            run_id: "run-1".into(),
            host: "h".into(),
            started_at: "t".into(),
            expires_at: (Utc::now() - chrono::Duration::hours(1)).to_rfc3339(),
            ttl_ms: Some(60_000),
            released: false,
        };
        store.put(&key, body(&behind), &[], Default::default()).await.unwrap();
        let err = Lease::acquire(&store, &key, "run-2", "t", Duration::from_secs(60))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::LeaseHeld { run_id, .. } if run_id == "run-1"),
            "{err}"
        );
        assert_eq!(
            current_lease(&store, &key).await.unwrap().map(|(_, lapsed)| lapsed),
            Some(false)
        );
        // A lease of an older version (no TTL recorded) lapses at its own expiry.
        let old = LeaseInfo { ttl_ms: None, ..behind };
        store.put(&key, body(&old), &[], Default::default()).await.unwrap();
        let taken = Lease::acquire(&store, &key, "run-2", "t", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(taken.took_over.map(|l| l.run_id), Some("run-1".into()));
    }

    /// Fails every write of leases once `failing` is set: renewals that cannot get through.
    #[derive(Debug, Default)]
    struct CutOff {
        failing: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl crate::store::Hook for CutOff {
        async fn before(
            &self,
            request: crate::store::Request,
            key: &str,
            _conditional: bool,
            _inner: &crate::store::SharedIo,
        ) -> Result<()> {
            if request == crate::store::Request::Put
                && key.contains("leases/")
                && self.failing.load(std::sync::atomic::Ordering::Relaxed)
            {
                return Err(Error::Timeout {
                    key: key.into(),
                    seconds: 0.0,
                });
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_lease_that_cannot_be_renewed_is_given_up_before_it_lapses() {
        let cut = std::sync::Arc::new(CutOff::default());
        let store = Store::memory().with_hook(cut.clone());
        let key = lease_key("s", None);
        let ttl = Duration::from_secs(2);
        let lease = Lease::acquire(&store, &key, "run-1", "t", ttl).await.unwrap();
        let cut_at = Instant::now();
        cut.failing.store(true, std::sync::atomic::Ordering::Relaxed);
        tokio::time::timeout(ttl, lease.lost().cancelled())
            .await
            .expect("given up within the TTL");
        assert!(cut_at.elapsed() < ttl, "before anyone else may take it");
        // Not ours any more: release leaves it alone, and it lapses for the next run.
        lease.release().await.unwrap();
        cut.failing.store(false, std::sync::atomic::Ordering::Relaxed);
        // It lapses a TTL after its last write, and a second of slack for HTTP dates.
        tokio::time::sleep((ttl + Duration::from_millis(1200)).saturating_sub(cut_at.elapsed())).await;
        let next = Lease::acquire(&store, &key, "run-2", "t", ttl).await.unwrap();
        assert_eq!(next.took_over.as_ref().map(|l| l.run_id.as_str()), Some("run-1"));
        next.release().await.unwrap();
        assert!(current_lease(&store, &key).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn renewal_keeps_a_live_lease() {
        let store = Store::memory();
        let key = lease_key("s", Some("0/2"));
        let lease = Lease::acquire(&store, &key, "run-1", "t", Duration::from_millis(150))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let err = Lease::acquire(&store, &key, "run-2", "t", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::LeaseHeld { .. }), "{err}");
        assert!(!lease.lost().is_cancelled());
        lease.release().await.unwrap();
    }
}
