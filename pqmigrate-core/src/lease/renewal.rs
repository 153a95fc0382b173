//! The background renewal of a held claim: its entry rewritten with the store's time every
//! third of the TTL, read again and repeated when another holder changed the lease object
//! meanwhile, and given up (the run fenced) when it is gone or cannot be renewed in time.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{CONTENDED_WRITES, Claim, Claimant, LeaseInfo, body, conditional, read};
use crate::error::Error;
use crate::store::{Condition, Store};

/// The background renewal of a held claim.
pub(super) struct Renewal {
    pub(super) store: Store,
    pub(super) key: String,
    pub(super) run_id: String,
    pub(super) claim: Claim,
    pub(super) started_at: String,
    /// The holders as last written by this run.
    pub(super) holders: Vec<LeaseInfo>,
    pub(super) e_tag: Option<String>,
    /// When the last write of the claim that landed was begun (before the store's time was
    /// read): the claim is certainly ours until this plus the TTL, whatever the clocks say.
    pub(super) confirmed: Instant,
    pub(super) ttl: Duration,
    pub(super) lost: CancellationToken,
}

impl Renewal {
    /// Renews every third of the TTL (every tenth after a failure) until `stop`; gives the claim
    /// up when another writer removed it or when it could not be renewed within three quarters
    /// of the TTL.
    pub(super) async fn run(mut self, stop: CancellationToken) {
        let mut wait = self.ttl / 3;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            match self.renew().await {
                Ok(()) => wait = self.ttl / 3,
                Err(reason) => {
                    if reason.is_some() || self.confirmed.elapsed() >= self.ttl * 3 / 4 {
                        let reason = reason.unwrap_or_else(|| "it could not be renewed within its TTL".into());
                        tracing::error!("{}: lease given up: {reason}; stopping", self.key);
                        self.lost.cancel();
                        return;
                    }
                    wait = self.ttl / 10;
                }
            }
        }
    }

    /// One renewal: this run's entry rewritten with the store's time, over the holders last
    /// seen, read again when another holder changed the object meanwhile. `Err(Some(reason))`
    /// when the claim is gone, `Err(None)` when the renewal failed and may be tried again.
    async fn renew(&mut self) -> std::result::Result<(), Option<String>> {
        let sent = Instant::now();
        let now = match self.store.server_time().await {
            Ok(now) => now,
            Err(e) => {
                tracing::warn!("{}: reading the store's clock failed: {}", self.key, e.report());
                return Err(None);
            }
        };
        let mine = Claimant {
            run_id: &self.run_id,
            started_at: &self.started_at,
            claim: self.claim,
            ttl: self.ttl,
        }
        .at(now);
        for _ in 0..CONTENDED_WRITES {
            let holders: Vec<LeaseInfo> = self
                .holders
                .iter()
                .map(|h| {
                    if h.run_id == self.run_id {
                        mine.clone()
                    } else {
                        h.clone()
                    }
                })
                .collect();
            let condition = match &self.e_tag {
                Some(e) => Condition::IfMatch(e.clone()),
                None => Condition::None,
            };
            match self
                .store
                .write(&self.key, body(&holders), conditional(condition))
                .await
            {
                Ok(r) => {
                    self.e_tag = r.e_tag;
                    self.holders = holders;
                    self.confirmed = sent;
                    return Ok(());
                }
                Err(Error::Conflict { .. }) => {}
                Err(e) => {
                    tracing::warn!("{}: renewing the lease failed: {}", self.key, e.report());
                    return Err(None);
                }
            }
            // Another holder changed the object, or our own renewal's answer was lost.
            let found = match read(&self.store, &self.key).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!("{}: reading the lease failed: {}", self.key, e.report());
                    return Err(None);
                }
            };
            let Some(found) = found else {
                return Err(Some("the lease was deleted (broken)".into()));
            };
            match found.has(&self.run_id) {
                None => return Err(Some("another writer took it".into())),
                Some(entry) if *entry == mine => {
                    self.e_tag = found.e_tag;
                    self.holders = found.holders;
                    self.confirmed = sent;
                    return Ok(());
                }
                Some(_) => {
                    self.e_tag = found.e_tag;
                    self.holders = found.holders;
                }
            }
        }
        Err(None)
    }
}
