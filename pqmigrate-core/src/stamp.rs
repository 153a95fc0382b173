//! Recording a version on objects without rewriting them (baselining a data set whose files
//! are known to be at some version already).

use crate::error::{Error, Result};
use crate::scan::read_footer;
use crate::store::{Store, check_tag_limits};

/// Sets `version_key = version` in the tags of `key`, keeping its other tags. The Parquet footer
/// is not rewritten, so a footer that records a different version is refused rather than
/// contradicted.
///
/// # Errors
/// [`Error::Config`] on a store without tags, [`Error::VersionMismatch`] when the footer says
/// otherwise, [`Error::Limit`] for tags S3 would refuse, and store errors.
pub async fn stamp(store: &Store, key: &str, size: u64, version_key: &str, version: u32) -> Result<()> {
    let api = store.s3_api().ok_or_else(|| {
        Error::Config(format!(
            "stamp sets object tags, which {} does not have; versions there live in the Parquet footer, written by `run`",
            store.url()
        ))
    })?;
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
    let mut tags: Vec<(String, String)> = api
        .get_tags(key)
        .await?
        .into_iter()
        .filter(|(k, _)| k != version_key)
        .collect();
    tags.push((version_key.to_string(), version.to_string()));
    check_tag_limits(key, &tags)?;
    api.put_tags(key, &tags).await
}
