use super::*;

const TTL: Duration = Duration::from_secs(60);

async fn take(store: &Store, claim: Claim, run_id: &str, ttl: Duration) -> Result<Lease> {
    Lease::acquire(store, &lease_key("s"), claim, run_id, "t", ttl).await
}

fn shard(index: u32, count: u32) -> Claim {
    Claim::Shard {
        target: 3,
        index,
        count,
    }
}

#[tokio::test]
async fn a_second_run_is_refused_until_the_lease_lapses() {
    let store = Store::memory();
    let key = lease_key("s");
    let first = take(&store, Claim::Exclusive, "run-1", Duration::from_secs(5))
        .await
        .unwrap();
    let err = take(&store, Claim::Exclusive, "run-2", TTL).await.unwrap_err();
    assert!(
        matches!(&err, Error::LeaseHeld { run_id, holding, .. } if run_id == "run-1" && holding == "exclusively"),
        "{err}"
    );
    first.release().await.unwrap();
    let second = take(&store, Claim::Exclusive, "run-2", Duration::from_millis(200))
        .await
        .unwrap();
    assert!(second.took_over.is_none());
    // A run that dies keeps its lease until it lapses (its TTL after its last write, plus a
    // second of slack for HTTP dates); then the next run takes it over.
    second.stop.cancel();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let third = take(&store, Claim::Exclusive, "run-3", TTL).await.unwrap();
    assert_eq!(third.took_over.as_ref().map(|l| l.run_id.as_str()), Some("run-2"));
    let (info, expired) = current_lease(&store, &key).await.unwrap().unwrap();
    assert_eq!((info.run_id.as_str(), expired), ("run-3", false));
    third.release().await.unwrap();
    assert!(current_lease(&store, &key).await.unwrap().is_none());
}

/// Every pair of claims on one data set: the shards of one split share it, everything else is
/// refused while the first holds it, whichever comes first.
#[tokio::test]
async fn claims_exclude_each_other_unless_they_are_shards_of_one_split() {
    let claims = [
        ("exclusive", Claim::Exclusive),
        ("shard 0/2", shard(0, 2)),
        ("shard 1/2", shard(1, 2)),
        ("shard 0/4", shard(0, 4)),
        (
            "shard 1/2 to 4",
            Claim::Shard {
                target: 4,
                index: 1,
                count: 2,
            },
        ),
    ];
    for (first_name, first) in claims {
        for (second_name, second) in claims {
            let store = Store::memory();
            let held = take(&store, first, "run-1", TTL).await.unwrap();
            let joined = take(&store, second, "run-2", TTL).await;
            let together = matches!(
                (first_name, second_name),
                ("shard 0/2", "shard 1/2") | ("shard 1/2", "shard 0/2")
            );
            assert_eq!(joined.is_ok(), together, "{first_name} then {second_name}");
            match joined {
                Ok(lease) => {
                    let holders = lease_holders(&store, &lease_key("s")).await.unwrap();
                    assert_eq!(holders.len(), 2, "{holders:?}");
                    // The first shard's release leaves the second's claim, which still excludes
                    // an exclusive writer.
                    held.release().await.unwrap();
                    let err = take(&store, Claim::Exclusive, "run-3", TTL).await.unwrap_err();
                    assert!(
                        matches!(&err, Error::LeaseHeld { run_id, .. } if run_id == "run-2"),
                        "{err}"
                    );
                    lease.release().await.unwrap();
                    take(&store, Claim::Exclusive, "run-3", TTL).await.unwrap();
                }
                Err(err) => {
                    assert!(
                        matches!(&err, Error::LeaseHeld { run_id, .. } if run_id == "run-1"),
                        "{err}"
                    );
                    held.release().await.unwrap();
                }
            }
        }
    }
}

#[tokio::test]
async fn shards_renew_side_by_side_without_losing_each_other() {
    let store = Store::memory();
    let ttl = Duration::from_millis(300);
    let mut leases = Vec::new();
    for i in 0..4 {
        leases.push(take(&store, shard(i, 4), &format!("run-{i}"), ttl).await.unwrap());
    }
    // Many renewals each, every one contending with the others' writes of the same object.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for lease in &leases {
        assert!(!lease.lost().is_cancelled());
    }
    let holders = lease_holders(&store, &lease_key("s")).await.unwrap();
    assert_eq!(holders.iter().filter(|(_, lapsed)| !lapsed).count(), 4, "{holders:?}");
    let err = take(&store, shard(1, 4), "run-x", ttl).await.unwrap_err();
    assert!(
        matches!(&err, Error::LeaseHeld { run_id, .. } if run_id == "run-1"),
        "{err}"
    );
    for lease in leases {
        lease.release().await.unwrap();
    }
    assert!(lease_holders(&store, &lease_key("s")).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_lapsed_shard_is_replaced_and_the_others_keep_their_claims() {
    let store = Store::memory();
    let live = take(&store, shard(0, 2), "run-0", Duration::from_millis(300))
        .await
        .unwrap();
    let dead = take(&store, shard(1, 2), "run-1", Duration::from_millis(200))
        .await
        .unwrap();
    dead.stop.cancel();
    tokio::time::sleep(Duration::from_millis(1400)).await;
    let again = take(&store, shard(1, 2), "run-1b", TTL).await.unwrap();
    assert_eq!(again.took_over.as_ref().map(|l| l.run_id.as_str()), Some("run-1"));
    assert!(!live.lost().is_cancelled());
    let holders: Vec<_> = lease_holders(&store, &lease_key("s"))
        .await
        .unwrap()
        .into_iter()
        .map(|(h, _)| h.run_id)
        .collect();
    assert_eq!(holders, ["run-0", "run-1b"]);
    live.release().await.unwrap();
    again.release().await.unwrap();
}

#[tokio::test]
async fn release_leaves_a_lease_another_run_took_over() {
    let store = Store::memory();
    let key = lease_key("s");
    let first = take(&store, Claim::Exclusive, "run-1", TTL).await.unwrap();
    let successor = Claimant {
        run_id: "run-2",
        started_at: "t",
        claim: Claim::Exclusive,
        ttl: TTL,
    }
    .at(Utc::now());
    store
        .put(&key, body(&[successor]), &[], Default::default())
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
    let key = lease_key("s");
    // Written just now by a holder of an earlier version whose clock runs an hour behind: its
    // own expiry is long past, but the store wrote the lease a moment ago and its TTL has not
    // run out.
    let behind = LeaseInfo {
        run_id: "run-1".into(),
        host: "h".into(),
        started_at: "t".into(),
        expires_at: (Utc::now() - chrono::Duration::hours(1)).to_rfc3339(),
        ttl_ms: Some(60_000),
        released: false,
        shard: None,
        target: None,
        renewed_at: None,
    };
    let single = |info: &LeaseInfo| Bytes::from(serde_json::to_vec(info).unwrap());
    store.put(&key, single(&behind), &[], Default::default()).await.unwrap();
    let err = take(&store, Claim::Exclusive, "run-2", TTL).await.unwrap_err();
    assert!(
        matches!(&err, Error::LeaseHeld { run_id, .. } if run_id == "run-1"),
        "{err}"
    );
    assert_eq!(
        current_lease(&store, &key).await.unwrap().map(|(_, lapsed)| lapsed),
        Some(false)
    );
    // A lease of an older version without a TTL lapses at its own expiry.
    let old = LeaseInfo { ttl_ms: None, ..behind };
    store.put(&key, single(&old), &[], Default::default()).await.unwrap();
    let taken = take(&store, Claim::Exclusive, "run-2", TTL).await.unwrap();
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
    let key = lease_key("s");
    let ttl = Duration::from_secs(2);
    let lease = take(&store, Claim::Exclusive, "run-1", ttl).await.unwrap();
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
    let next = take(&store, Claim::Exclusive, "run-2", ttl).await.unwrap();
    assert_eq!(next.took_over.as_ref().map(|l| l.run_id.as_str()), Some("run-1"));
    next.release().await.unwrap();
    assert!(current_lease(&store, &key).await.unwrap().is_none());
}

#[tokio::test]
async fn renewal_keeps_a_live_lease() {
    let store = Store::memory();
    let lease = take(&store, shard(0, 2), "run-1", Duration::from_millis(150))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let err = take(&store, Claim::Exclusive, "run-2", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LeaseHeld { .. }), "{err}");
    assert!(!lease.lost().is_cancelled());
    lease.release().await.unwrap();
}
