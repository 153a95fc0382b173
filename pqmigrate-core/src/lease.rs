//! The data set's lease: one lock object per data set (schema id), whatever writes it, so two
//! writers never interleave. A writer claims it either **exclusively** (an unsharded run, a
//! stamp, a rollback, a Lambda execution) or as **one shard of a split** (`--shard i/n`): the
//! shards of one split (same schema, target and count, different indexes) hold it together and
//! exclude everything else, shards of another count included.
//!
//! The lease object lists its holders. It is created with `If-None-Match: *` and every change
//! (join, renewal, release, take-over) is a read-modify-write with `If-Match`, so of two writers
//! that both found it free only one wins, and a change lost to another holder's is read again
//! and repeated.
//!
//! A lease is a fence, not just a lock: each holder's expiry is judged by the store's clock (the
//! store's time when the holder last wrote its entry, plus its TTL, against the store's time
//! now), so machines whose clocks disagree still agree on it; and a holder that cannot renew
//! within three quarters of its TTL gives it up ([`Lease::lost`]) before anyone else may take it,
//! so its run stops starting writes and aborts uploads not yet completed.

use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::identity::host_name;
use crate::store::{Condition, INTERNAL_PREFIX, Store, WriteOptions, in_rounds};
use renewal::Renewal;

/// Why a run or a rollback stopped when its lease was lost.
pub const LEASE_LOST: &str = "the lease was lost (taken by another run, or not renewed in time)";

/// Default time a lease lives without renewal.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(60);

/// Changes of the lease object lost to another holder's, repeated before giving up.
const CONTENDED_WRITES: usize = 20;

/// How a writer holds the data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The data set alone: an unsharded run, a stamp, a rollback.
    Exclusive,
    /// Shard `index` of `count` of a split toward `target`: shared with the other shards of the
    /// same split, and nothing else.
    Shard {
        /// The split's target version.
        target: u32,
        /// This shard.
        index: u32,
        /// Shards in the split.
        count: u32,
    },
}

impl Claim {
    /// The claim of a run toward `target`, of shard `i/n` when given; a rollback's is exclusive.
    ///
    /// ```
    /// use pqmigrate_core::lease::Claim;
    /// assert_eq!(Claim::of_run(3, Some("1/4"), false), Claim::Shard { target: 3, index: 1, count: 4 });
    /// assert_eq!(Claim::of_run(3, Some("1/4"), true), Claim::Exclusive);
    /// assert_eq!(Claim::of_run(3, None, false), Claim::Exclusive);
    /// ```
    pub fn of_run(target: u32, shard: Option<&str>, rolls_back: bool) -> Self {
        match shard.and_then(parse_shard) {
            Some((index, count)) if !rolls_back => Claim::Shard { target, index, count },
            _ => Claim::Exclusive,
        }
    }

    /// Whether this claim may hold the lease beside `holder`.
    fn admits(&self, holder: &LeaseInfo) -> bool {
        match (self, holder.claim()) {
            (
                Claim::Shard { target, index, count },
                Claim::Shard {
                    target: their_target,
                    index: their_index,
                    count: their_count,
                },
            ) => *target == their_target && *count == their_count && *index != their_index,
            _ => false,
        }
    }

    fn describe(&self) -> String {
        match self {
            Claim::Exclusive => "exclusively".into(),
            Claim::Shard { target, index, count } => {
                format!("as shard {index}/{count} of a split to version {target}")
            }
        }
    }
}

fn parse_shard(shard: &str) -> Option<(u32, u32)> {
    let (index, count) = shard.split_once('/')?;
    Some((index.trim().parse().ok()?, count.trim().parse().ok()?))
}

/// One holder of a lease, as the lease object lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseInfo {
    /// Run holding it.
    pub run_id: String,
    /// Host of that run.
    pub host: String,
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// When the claim lapses unless renewed (RFC 3339, by the store's clock when renewed at a
    /// known time, else by the holder's: for people; the decision uses `renewed_at` and
    /// `ttl_ms`).
    pub expires_at: String,
    /// How long the claim lives after its last write, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// Released by its holder: free to take (leases of earlier versions).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub released: bool,
    /// For a shard of a split: the shard, `i/n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// For a shard of a split: the split's target version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<u32>,
    /// The store's time when the holder last wrote its claim (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewed_at: Option<String>,
}

impl LeaseInfo {
    /// How this holder holds the data set.
    pub fn claim(&self) -> Claim {
        match (self.shard.as_deref().and_then(parse_shard), self.target) {
            (Some((index, count)), Some(target)) => Claim::Shard { target, index, count },
            _ => Claim::Exclusive,
        }
    }

    /// Whether the claim has lapsed at `now` (the store's clock); `written` is when the store
    /// last wrote the lease object, for claims that do not say when they were renewed. One
    /// second of slack covers the resolution of HTTP dates.
    fn lapsed_at(&self, now: DateTime<Utc>, written: Option<DateTime<Utc>>) -> bool {
        if self.released {
            return true;
        }
        let renewed = self
            .renewed_at
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .or(written);
        match (self.ttl_ms, renewed) {
            (Some(ttl), Some(renewed)) => now > renewed + chrono::Duration::milliseconds(ttl as i64 + 1000),
            // A lease from an older version: its own expiry, by the store's clock.
            _ => DateTime::parse_from_rfc3339(&self.expires_at).map_or(true, |t| t < now),
        }
    }
}

/// The lease object: its holders, all of one claim's kind.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Holders {
    holders: Vec<LeaseInfo>,
}

/// The lease object as stored: a list of holders, or the single holder earlier versions wrote.
#[derive(Deserialize)]
#[serde(untagged)]
enum Stored {
    Holders(Holders),
    Single(LeaseInfo),
}

/// A lease as read: its holders, its ETag and when the store last wrote it.
struct Found {
    holders: Vec<LeaseInfo>,
    e_tag: Option<String>,
    last_modified: Option<DateTime<Utc>>,
}

impl Found {
    /// The holders still holding at the store's time `now`, and those whose claims lapsed.
    fn split_lapsed(&self, now: DateTime<Utc>) -> (Vec<LeaseInfo>, Vec<LeaseInfo>) {
        self.holders
            .iter()
            .filter(|h| !h.released)
            .cloned()
            .partition(|h| !h.lapsed_at(now, self.last_modified))
    }

    fn has(&self, run_id: &str) -> Option<&LeaseInfo> {
        self.holders.iter().find(|h| h.run_id == run_id && !h.released)
    }
}

/// The key of a data set's lease: one per schema id, whatever the command or the split.
///
/// ```
/// assert_eq!(pqmigrate_core::lease::lease_key("sensorData"), "_pqmigrate/leases/sensorData.json");
/// ```
pub fn lease_key(schema: &str) -> String {
    format!("{INTERNAL_PREFIX}leases/{schema}.json")
}

/// A held lease. Renewed in the background until [`Lease::release`]; if renewal finds the
/// claim gone, `lost` is cancelled so the run stops taking objects.
#[derive(Debug)]
pub struct Lease {
    store: Store,
    key: String,
    run_id: String,
    /// Claims found lapsed and removed at acquisition (the first of them).
    pub took_over: Option<LeaseInfo>,
    lost: CancellationToken,
    stop: CancellationToken,
    renewer: tokio::task::JoinHandle<()>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn body(holders: &[LeaseInfo]) -> Bytes {
    let holders = Holders {
        holders: holders.to_vec(),
    };
    Bytes::from(serde_json::to_vec_pretty(&holders).expect("serializable"))
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
    let stored: Stored =
        serde_json::from_slice(&bytes).map_err(|e| Error::journal(key, format!("unreadable lease: {e}")))?;
    let holders = match stored {
        Stored::Holders(h) => h.holders,
        Stored::Single(single) => vec![single],
    };
    Ok(Some(Found {
        holders,
        e_tag: head.e_tag,
        last_modified: head.last_modified,
    }))
}

/// Writes `holders` over `found` (created when there was none) with its condition: `Ok(None)`
/// when another change came first.
async fn replace(
    store: &Store,
    key: &str,
    found: Option<&Found>,
    holders: &[LeaseInfo],
) -> Result<Option<Option<String>>> {
    let condition = match found {
        None => Condition::Create,
        Some(Found { e_tag: Some(e_tag), .. }) => Condition::IfMatch(e_tag.clone()),
        // A store without ETags cannot condition a change: the object is replaced as it was
        // by earlier versions, deleted then created.
        Some(Found { e_tag: None, .. }) => {
            break_lease(store, key).await?;
            Condition::Create
        }
    };
    match in_rounds(|| store.write(key, body(holders), conditional(condition.clone()))).await {
        Ok(written) => Ok(Some(written.e_tag)),
        Err(Error::Conflict { .. }) => Ok(None),
        Err(e) if e.is_already_exists() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The holders of the lease at `key` (for `status` and operators), each with whether its claim
/// has lapsed by the store's clock. Released claims are left out.
///
/// # Errors
/// Store errors, or an unreadable lease.
pub async fn lease_holders(store: &Store, key: &str) -> Result<Vec<(LeaseInfo, bool)>> {
    let Some(found) = read(store, key).await? else {
        return Ok(Vec::new());
    };
    let now = in_rounds(|| store.server_time()).await?;
    Ok(found
        .holders
        .iter()
        .filter(|h| !h.released)
        .map(|h| (h.clone(), h.lapsed_at(now, found.last_modified)))
        .collect())
}

/// The first holder of the lease at `key`, if any, and whether its claim has lapsed.
///
/// # Errors
/// As [`lease_holders`].
pub async fn current_lease(store: &Store, key: &str) -> Result<Option<(LeaseInfo, bool)>> {
    Ok(lease_holders(store, key).await?.into_iter().next())
}

/// Removes `run_id`'s claim from the lease at `key` (nobody else's): the end of a run that
/// spans processes. A lease `run_id` does not hold is left as it is.
///
/// # Errors
/// Store errors, or an unreadable lease.
pub async fn release_held_by(store: &Store, key: &str, run_id: &str) -> Result<()> {
    for _ in 0..CONTENDED_WRITES {
        let Some(found) = read(store, key).await? else {
            return Ok(());
        };
        if found.has(run_id).is_none() {
            return Ok(());
        }
        let rest: Vec<LeaseInfo> = found.holders.iter().filter(|h| h.run_id != run_id).cloned().collect();
        if replace(store, key, Some(&found), &rest).await?.is_some() {
            return Ok(());
        }
    }
    Err(Error::journal(
        key,
        "the lease kept changing while its claim was released",
    ))
}

/// Deletes the lease at `key` whoever holds it (`--break-lease`).
///
/// # Errors
/// Store errors.
pub async fn break_lease(store: &Store, key: &str) -> Result<()> {
    in_rounds(|| store.delete(key)).await
}

impl Lease {
    /// Takes the lease at `key` for `run_id` with `claim`, or fails naming a live holder that
    /// excludes it. Claims found lapsed are removed.
    ///
    /// # Errors
    /// [`Error::LeaseHeld`] when another writer holds it in a way that excludes `claim`; store
    /// errors.
    pub async fn acquire(
        store: &Store,
        key: &str,
        claim: Claim,
        run_id: &str,
        started_at: &str,
        ttl: Duration,
    ) -> Result<Self> {
        let mut took_over = None;
        let mut confirmed = None;
        for _ in 0..CONTENDED_WRITES {
            let sent = Instant::now();
            let now = in_rounds(|| store.server_time()).await?;
            let mine = Claimant {
                run_id,
                started_at,
                claim,
                ttl,
            }
            .at(now);
            let found = read(store, key).await?;
            let mut holders = Vec::new();
            if let Some(found) = &found {
                // Our own write, whose answer was lost: the lease is ours.
                if found.has(run_id).is_some() {
                    confirmed = Some((found.e_tag.clone(), found.holders.clone(), sent));
                    break;
                }
                let (live, lapsed) = found.split_lapsed(now);
                if let Some(holder) = live.iter().find(|h| !claim.admits(h)) {
                    return Err(Error::LeaseHeld {
                        key: key.to_string(),
                        run_id: holder.run_id.clone(),
                        host: holder.host.clone(),
                        holding: holder.claim().describe(),
                        expires: holder.expires_at.clone(),
                    });
                }
                if took_over.is_none() {
                    took_over = lapsed.into_iter().next();
                }
                holders = live;
            }
            holders.push(mine);
            if let Some(e_tag) = replace(store, key, found.as_ref(), &holders).await? {
                confirmed = Some((e_tag, holders, sent));
                break;
            }
        }
        let Some((e_tag, holders, sent)) = confirmed else {
            return Err(Error::journal(key, "the lease kept changing while it was taken"));
        };
        let lost = CancellationToken::new();
        let stop = CancellationToken::new();
        let renewer = tokio::spawn(
            Renewal {
                store: store.clone(),
                key: key.to_string(),
                run_id: run_id.to_string(),
                claim,
                started_at: started_at.to_string(),
                holders,
                e_tag,
                confirmed: sent,
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

    /// Stops renewing and leaves the claim in place until its TTL runs out, for a run that
    /// goes on in other processes (a detached run), which release it by [`release_held_by`].
    pub async fn detach(self) {
        self.stop.cancel();
        let _ = self.renewer.await;
    }

    /// Cancelled when the lease is no longer certainly this run's: its claim removed by
    /// another writer, or not renewed within three quarters of its TTL. Nothing may be
    /// written after that.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// The lease object's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Stops renewing and removes this run's claim if it is still there; the other holders'
    /// claims stay. A claim another writer removed (after it lapsed) is not touched.
    ///
    /// # Errors
    /// Store errors of the release.
    pub async fn release(self) -> Result<()> {
        self.stop.cancel();
        let _ = self.renewer.await;
        if self.lost.is_cancelled() {
            return Ok(());
        }
        release_held_by(&self.store, &self.key, &self.run_id).await
    }
}

/// What a writer puts in the lease object for itself.
struct Claimant<'a> {
    run_id: &'a str,
    started_at: &'a str,
    claim: Claim,
    ttl: Duration,
}

impl Claimant<'_> {
    /// Its entry, renewed at the store's time `now`.
    fn at(&self, now: DateTime<Utc>) -> LeaseInfo {
        let ttl = chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::seconds(60));
        let (shard, target) = match self.claim {
            Claim::Exclusive => (None, None),
            Claim::Shard { target, index, count } => (Some(format!("{index}/{count}")), Some(target)),
        };
        LeaseInfo {
            run_id: self.run_id.to_string(),
            host: host_name(),
            started_at: self.started_at.to_string(),
            expires_at: rfc3339(now + ttl),
            ttl_ms: Some(self.ttl.as_millis() as u64),
            released: false,
            shard,
            target,
            renewed_at: Some(rfc3339(now)),
        }
    }
}

mod renewal;
#[cfg(test)]
mod tests;
