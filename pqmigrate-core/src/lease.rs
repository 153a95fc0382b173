//! The run lease: one lock object per data set, so two runs on the same data set cannot
//! interleave. Created with `If-None-Match: *`, renewed while the run lives, taken over only
//! once expired (conditionally, so two takers cannot both win), and released at the end.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::identity::host_name;
use crate::store::{Condition, INTERNAL_PREFIX, Store, WriteOptions};

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
    /// When the lease lapses unless renewed (RFC 3339).
    pub expires_at: String,
}

impl LeaseInfo {
    fn expired(&self) -> bool {
        chrono::DateTime::parse_from_rfc3339(&self.expires_at).map_or(true, |t| t < chrono::Utc::now())
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
    renewer: tokio::task::JoinHandle<()>,
}

fn expiry(ttl: Duration) -> String {
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(60));
    (chrono::Utc::now() + ttl).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
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

async fn read(store: &Store, key: &str) -> Result<Option<(LeaseInfo, Option<String>)>> {
    let Some((head, bytes)) = store.get_if_exists(key).await? else {
        return Ok(None);
    };
    let info = serde_json::from_slice(&bytes).map_err(|e| Error::journal(key, format!("unreadable lease: {e}")))?;
    Ok(Some((info, head.e_tag)))
}

/// Reads the lease at `key`, if any (for `status` and operators).
///
/// # Errors
/// Store errors, or an unreadable lease.
pub async fn current_lease(store: &Store, key: &str) -> Result<Option<(LeaseInfo, bool)>> {
    Ok(read(store, key).await?.map(|(info, _)| {
        let expired = info.expired();
        (info, expired)
    }))
}

/// Deletes the lease at `key` whoever holds it (`--break-lease`).
///
/// # Errors
/// Store errors.
pub async fn break_lease(store: &Store, key: &str) -> Result<()> {
    store.delete(key).await
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
        };
        let mut took_over = None;
        let e_tag = loop {
            match store
                .write(key, body(&mine(expiry(ttl))), conditional(Condition::Create))
                .await
            {
                Ok(r) => break r.e_tag,
                Err(Error::Store {
                    source: object_store::Error::AlreadyExists { .. },
                    ..
                }) => {}
                Err(e) => return Err(e),
            }
            let Some((holder, their_e_tag)) = read(store, key).await? else {
                continue;
            };
            // Our own create, whose answer was lost: the lease is ours.
            if holder.run_id == run_id {
                break their_e_tag;
            }
            if !holder.expired() {
                return Err(Error::LeaseHeld {
                    key: key.to_string(),
                    run_id: holder.run_id,
                    host: holder.host,
                    expires: holder.expires_at,
                });
            }
            // Expired: take it over conditionally, so of two runs that found it expired only
            // one wins.
            let taken = match their_e_tag {
                None => {
                    break_lease(store, key).await?;
                    None
                }
                Some(e_tag) => {
                    let update = conditional(Condition::IfMatch(e_tag));
                    match store.write(key, body(&mine(expiry(ttl))), update).await {
                        Ok(r) => Some(r.e_tag),
                        Err(Error::Conflict { .. }) => None,
                        Err(e) => return Err(e),
                    }
                }
            };
            took_over = Some(holder);
            if let Some(e_tag) = taken {
                break e_tag;
            }
        };
        let lost = CancellationToken::new();
        let stop = CancellationToken::new();
        let renewer = tokio::spawn(renew(
            store.clone(),
            key.to_string(),
            mine(String::new()),
            e_tag,
            ttl,
            lost.clone(),
            stop.clone(),
        ));
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

    /// Cancelled when the lease was lost (taken by another run after it lapsed).
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// The lease object's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Stops renewing and deletes the lease if it is still this run's: a lease another run
    /// took over after this one's lapsed is left to its holder. (Between the read and the
    /// delete, a takeover can still slip in; it can only happen to a lease that lapsed.)
    ///
    /// # Errors
    /// Store errors reading or deleting it.
    pub async fn release(self) -> Result<()> {
        self.stop.cancel();
        let _ = self.renewer.await;
        if self.lost.is_cancelled() {
            return Ok(());
        }
        match read(&self.store, &self.key).await? {
            Some((holder, _)) if holder.run_id == self.run_id => break_lease(&self.store, &self.key).await,
            _ => Ok(()),
        }
    }
}

async fn renew(
    store: Store,
    key: String,
    mut info: LeaseInfo,
    mut e_tag: Option<String>,
    ttl: Duration,
    lost: CancellationToken,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(ttl / 3) => {}
        }
        info.expires_at = expiry(ttl);
        let condition = match &e_tag {
            Some(e) => Condition::IfMatch(e.clone()),
            None => Condition::None,
        };
        match store.write(&key, body(&info), conditional(condition)).await {
            Ok(r) => e_tag = r.e_tag,
            Err(Error::Conflict { .. }) => match read(&store, &key).await {
                // Our own renewal, whose answer was lost.
                Ok(Some((holder, their_e_tag))) if holder == info => e_tag = their_e_tag,
                _ => {
                    tracing::error!("{key}: lease lost to another run; stopping");
                    lost.cancel();
                    return;
                }
            },
            // A failed renewal is tried again next round; the lease still has time left.
            Err(e) => tracing::warn!("{key}: renewing the lease failed: {}", e.report()),
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
        // A run that dies keeps its lease until it lapses; then the next run takes it over.
        second.stop.cancel();
        tokio::time::sleep(Duration::from_millis(300)).await;
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
