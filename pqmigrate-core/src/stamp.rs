//! Recording a version on objects without rewriting them (baselining a data set whose files
//! are known to be at some version already).

use futures::StreamExt;

use crate::error::{Error, Result};
use crate::scan::{Candidates, ScanSpec, candidates, read_footer};
use crate::store::{Store, check_tag_limits};

/// What stamping a data set did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StampSummary {
    /// Objects whose version tag was set.
    pub stamped: u64,
    /// Objects that could not be stamped: key and why.
    pub failed: Vec<(String, String)>,
}

/// Stamps every object of a data set at `version` (see [`stamp`]), going on past objects that
/// cannot be stamped.
///
/// # Errors
/// [`Error::Config`] on a store without tags; a failure of the listing itself.
pub async fn stamp_dataset(
    store: &Store,
    spec: &ScanSpec,
    source: &Candidates,
    version_key: &str,
    version: u32,
) -> Result<StampSummary> {
    if !store.capabilities().tags {
        return Err(no_tags(store));
    }
    let store = &store.clone().checked().await?;
    let mut keys = candidates(store, spec, source);
    let mut summary = StampSummary::default();
    while let Some(candidate) = keys.next().await {
        let candidate = candidate?;
        let size = match candidate.size {
            Some(size) => Ok(size),
            None => store.head(&candidate.key).await.map(|h| h.size),
        };
        let stamped = match size {
            Ok(size) => stamp(store, &candidate.key, size, version_key, version).await,
            Err(e) => Err(e),
        };
        match stamped {
            Ok(()) => summary.stamped += 1,
            Err(e) => summary.failed.push((candidate.key, e.report())),
        }
    }
    Ok(summary)
}

fn no_tags(store: &Store) -> Error {
    Error::Config(format!(
        "stamp sets object tags, which {} does not have; versions there live in the Parquet footer, written by `run`",
        store.url()
    ))
}

/// Sets `version_key = version` in the tags of `key`, keeping its other tags. The Parquet footer
/// is not rewritten, so a footer that records a different version is refused rather than
/// contradicted.
///
/// # Errors
/// [`Error::Config`] on a store without tags, [`Error::VersionMismatch`] when the footer says
/// otherwise, [`Error::Limit`] for tags S3 would refuse, and store errors.
pub async fn stamp(store: &Store, key: &str, size: u64, version_key: &str, version: u32) -> Result<()> {
    if !store.capabilities().tags {
        return Err(no_tags(store));
    }
    let footer = read_footer(store, key, size).await?;
    if let Some(footer_version) = footer.version(key, version_key)?
        && footer_version != version
    {
        return Err(Error::VersionMismatch {
            key: key.to_string(),
            tag: version,
            footer: footer_version,
        });
    }
    let mut tags: Vec<(String, String)> = store
        .tags(key)
        .await?
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k != version_key)
        .collect();
    tags.push((version_key.to_string(), version.to_string()));
    check_tag_limits(key, &tags)?;
    store.put_tags(key, &tags).await
}
