//! Recording a version on objects without rewriting them (baselining a data set whose files
//! are known to be at some version already).

use futures::StreamExt;

use crate::error::{Error, Result};
use crate::identity::{host_name, new_run_id, now_rfc3339};
use crate::journal::RunInfo;
use crate::lease::DEFAULT_LEASE_TTL;
use crate::outcome::RunSummary;
use crate::scan::{Candidates, ScanSpec, candidates};
use crate::session::{Session, SessionTerms};
use crate::store::Store;
use crate::version::VersionSource;
use crate::version_store::VersionStore;

/// What to stamp.
///
/// ```
/// let options = pqmigrate_core::stamp::StampOptions::new("sensorData", 2).force(true);
/// assert_eq!((options.version_key.as_str(), options.version, options.force), ("schema:sensorData:version", 2, true));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StampOptions {
    /// Schema id, for the data set's lease.
    pub schema: String,
    /// Tag key holding the version.
    pub version_key: String,
    /// The version to record.
    pub version: u32,
    /// Change an existing, different version tag too.
    pub force: bool,
    /// Delete whatever lease holds the data set first (an operator's override).
    pub break_lease: bool,
    /// Stamp even where the data set lies in a Delta Lake, Iceberg or Hudi table.
    pub allow_table_files: bool,
}

impl StampOptions {
    /// Stamps `schema`'s objects at `version`, under the default version key.
    pub fn new(schema: &str, version: u32) -> Self {
        Self {
            schema: schema.to_string(),
            version_key: crate::version::version_key(schema),
            version,
            force: false,
            break_lease: false,
            allow_table_files: false,
        }
    }
}

crate::setters::setters!(StampOptions {
    set version_key: String,
    val force: bool,
    val break_lease: bool,
    val allow_table_files: bool,
});

/// What stamping a data set did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StampSummary {
    /// Objects whose version tag was set.
    pub stamped: u64,
    /// Objects that could not be stamped: key and why.
    pub failed: Vec<(String, String)>,
}

/// Stamps every object of a data set (see [`stamp`]) under the data set's lease, so a stamp
/// never interleaves with a run, going on past objects that cannot be stamped.
///
/// # Errors
/// [`Error::Config`] on a store without tags or lacking a guarantee, [`Error::LeaseHeld`] while
/// a run holds the data set; a failure of the listing itself.
pub async fn stamp_dataset(
    store: &Store,
    spec: &ScanSpec,
    source: &Candidates,
    options: &StampOptions,
) -> Result<StampSummary> {
    versions(store, options).can_stamp()?;
    let info = RunInfo {
        run_id: format!("stamp-{}", new_run_id()),
        started_at: now_rfc3339(),
        host: host_name(),
        store: store.url().to_string(),
        schema: options.schema.clone(),
        target: options.version,
        prefixes: spec.prefixes.clone(),
        suffix: spec.suffix.clone(),
        filter: spec.filter.clone(),
        // A stamp holds the data set alone, whatever part of it it stamps.
        shard: None,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        rolls_back: None,
    };
    let terms = SessionTerms {
        ttl: DEFAULT_LEASE_TTL,
        break_first: options.break_lease,
        allow_table_files: options.allow_table_files,
    };
    let session = Session::open(store, None, info, terms).await?;
    let summary = stamp_all(&session, spec, source, options).await;
    let (_, _, failure) = session.close(RunSummary::default(), None).await;
    match (summary, failure) {
        (Err(e), _) | (Ok(_), Some(e)) => Err(e),
        (Ok(summary), None) => Ok(summary),
    }
}

async fn stamp_all(
    session: &Session,
    spec: &ScanSpec,
    source: &Candidates,
    options: &StampOptions,
) -> Result<StampSummary> {
    let store = session.store();
    let fence = session.fence();
    let versions = versions(store, options);
    let mut keys = candidates(store, spec, source);
    let mut summary = StampSummary::default();
    while let Some(candidate) = keys.next().await {
        let candidate = candidate?;
        if fence.is_cancelled() {
            return Err(Error::Cancelled {
                reason: crate::lease::LEASE_LOST.into(),
            });
        }
        match versions.stamp(&candidate.key, options.version, options.force).await {
            Ok(()) => summary.stamped += 1,
            Err(e) => summary.failed.push((candidate.key, e.report())),
        }
    }
    Ok(summary)
}

/// Sets `options.version_key = options.version` in the tags of exactly the version of `key`
/// read, keeping its other tags ([`VersionStore::stamp`]). The Parquet footer is not rewritten,
/// so a footer that records a different version is refused rather than contradicted, and so is
/// a different version tag unless `options.force`.
///
/// # Errors
/// [`Error::Config`] on a store without tags, [`Error::VersionMismatch`] when the footer says
/// otherwise, [`Error::Stamped`] for a different version tag, [`Error::Limit`] for tags S3
/// would refuse, and store errors.
pub async fn stamp(store: &Store, key: &str, options: &StampOptions) -> Result<()> {
    versions(store, options)
        .stamp(key, options.version, options.force)
        .await
}

fn versions(store: &Store, options: &StampOptions) -> VersionStore {
    VersionStore::new(store, &options.version_key, VersionSource::Auto)
}
