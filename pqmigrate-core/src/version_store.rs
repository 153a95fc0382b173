//! The version store: where one store keeps an object's schema version, chosen once from what
//! the store can do, and the one place that reads and records it.
//!
//! | store | recorded in | read from |
//! | --- | --- | --- |
//! | tags (S3, Azure blob index tags) | the tag `schema:<id>:version` and the footer | the tag (scan), tag and footer reconciled (migrate, validate) |
//! | user metadata, no tags (GCS, local disk, memory) | the footer and a `pqm-v-…` metadata entry | the footer; the metadata entry is checked against it (validate) |
//! | neither (a local file system without extended attributes) | the footer | the footer |

use object_store::{Attribute, Attributes};

use crate::error::{Error, Result};
use crate::rewrite::Footer;
use crate::store::{ObjectInfo, Store, check_tag_limits, metadata};
use crate::transfer::ObjectReader;
use crate::version::{VersionSource, parse_version, reconcile, resolve_version, version_metadata_name};

/// Where a store keeps versions besides the Parquet footer, which records them everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VersionPlace {
    /// An object tag (S3): read without opening the file.
    Tag,
    /// A user-metadata entry beside the footer (stores with metadata and no tags).
    Metadata,
    /// The footer alone.
    Footer,
}

/// Reads and records the schema version of a data set's objects on one store: the use cases
/// ask it instead of the store's capabilities.
///
/// ```
/// use pqmigrate_core::version::VersionSource;
/// use pqmigrate_core::version_store::{VersionPlace, VersionStore};
/// let versions = VersionStore::new(&pqmigrate_core::Store::memory(), "schema:s:version", VersionSource::Auto);
/// assert_eq!(versions.place(), VersionPlace::Metadata);
/// ```
#[derive(Debug, Clone)]
pub struct VersionStore {
    store: Store,
    version_key: String,
    source: VersionSource,
    place: VersionPlace,
}

impl VersionStore {
    /// The version store of `store` for `version_key`, read as `source` says.
    pub fn new(store: &Store, version_key: impl Into<String>, source: VersionSource) -> Self {
        let capabilities = store.capabilities();
        let place = if capabilities.tags {
            VersionPlace::Tag
        } else if capabilities.user_metadata {
            VersionPlace::Metadata
        } else {
            VersionPlace::Footer
        };
        Self {
            store: store.clone(),
            version_key: version_key.into(),
            source,
            place,
        }
    }

    /// Where versions are kept besides the footer.
    pub fn place(&self) -> VersionPlace {
        self.place
    }

    /// The tag, footer and metadata key holding the version.
    pub fn version_key(&self) -> &str {
        &self.version_key
    }

    /// The version of `key` with the fewest bytes read: its tag where the store has tags and
    /// they are consulted (one small request), else its footer (one ranged read pinned to
    /// `e_tag`).
    ///
    /// # Errors
    /// [`Error::BadVersion`], [`Error::OtherSchema`], [`Error::NotParquet`], store errors.
    pub async fn quick(&self, key: &str, size: u64, e_tag: Option<String>) -> Result<u32> {
        if self.place == VersionPlace::Tag && self.source != VersionSource::Footer {
            let tags = self.store.tags(key).await?;
            return resolve_version(key, &self.version_key, self.source, tags.as_deref(), None);
        }
        let footer = ObjectReader::new(&self.store, key, size, e_tag)?.footer(false).await?;
        self.of(key, None, &footer)
    }

    /// The version of an object from its tags as read (`None` where the store has none) and
    /// its footer, reconciled as the source says.
    ///
    /// # Errors
    /// [`Error::VersionMismatch`] when tag and footer disagree, [`Error::BadVersion`],
    /// [`Error::OtherSchema`].
    pub fn of(&self, key: &str, tags: Option<&[(String, String)]>, footer: &Footer) -> Result<u32> {
        resolve_version(key, &self.version_key, self.source, tags, Some(&footer.entries()))
    }

    /// Every record of `key`'s version, read: the tag (tag stores), the metadata entry
    /// (metadata stores) and the footer; [`Records::agreed`] compares them.
    ///
    /// # Errors
    /// [`Error::BadVersion`], [`Error::NotParquet`], store errors.
    pub async fn records(&self, key: &str) -> Result<Records> {
        let info = self.store.object_info(key).await?;
        let value = |place, value: Option<&str>| {
            value
                .map(|v| parse_version(key, &self.version_key, place, v))
                .transpose()
        };
        let beside = match self.place {
            VersionPlace::Tag => match &info.tags {
                Some(tags) => Some(value(
                    "tag",
                    tags.iter()
                        .find(|(k, _)| *k == self.version_key)
                        .map(|(_, v)| v.as_str()),
                )?),
                None => None,
            },
            // An object written by another tool carries no entry: only one present is held
            // against the footer.
            VersionPlace::Metadata => value(
                "metadata",
                metadata(&info.attributes, &version_metadata_name(&self.version_key)),
            )?
            .map(Some),
            VersionPlace::Footer => None,
        };
        let footer = ObjectReader::new(&self.store, key, info.size, info.e_tag.clone())?
            .footer(false)
            .await?;
        Ok(Records {
            place: self.place,
            beside,
            footer: footer.version(key, &self.version_key)?,
        })
    }

    /// The tags and user metadata a rewrite of `info` at `version` carries: its other tags with
    /// the version tag set (tag stores), its metadata with the version entry set (metadata
    /// stores). The upload drops what the store does not keep.
    ///
    /// # Errors
    /// [`Error::Limit`] for tags S3 would refuse.
    pub fn record(&self, info: &ObjectInfo, version: u32) -> Result<(Vec<(String, String)>, Attributes)> {
        let tags = match (&info.tags, self.place) {
            (Some(tags), VersionPlace::Tag) => {
                let tags = with_version(tags, &self.version_key, version);
                check_tag_limits(&info.key, &tags)?;
                tags
            }
            _ => Vec::new(),
        };
        let mut attributes = info.attributes.clone();
        if self.place == VersionPlace::Metadata {
            attributes.insert(
                Attribute::Metadata(version_metadata_name(&self.version_key).into()),
                version.to_string().into(),
            );
        }
        Ok((tags, attributes))
    }

    /// Sets the version tag of exactly the version of `key` read to `version`, keeping its
    /// other tags, without rewriting the file: a footer that records a different version is
    /// refused, and so is a different version tag unless `force`.
    ///
    /// # Errors
    /// [`Error::Config`] where the store has no tags, [`Error::VersionMismatch`],
    /// [`Error::Stamped`], [`Error::Limit`], store errors.
    pub async fn stamp(&self, key: &str, version: u32, force: bool) -> Result<()> {
        self.can_stamp()?;
        let version_key = self.version_key.as_str();
        let head = self.store.head(key).await?;
        let footer = ObjectReader::new(&self.store, key, head.size, head.e_tag.clone())?
            .footer(false)
            .await?;
        if let Some(footer_version) = footer.version(key, version_key)?
            && footer_version != version
        {
            return Err(Error::VersionMismatch {
                key: key.to_string(),
                place: "tag",
                tag: version,
                footer: footer_version,
            });
        }
        let tags = self
            .store
            .tags_at(key, head.version_id.as_deref())
            .await?
            .unwrap_or_default();
        if let Some((_, found)) = tags.iter().find(|(k, _)| k == version_key)
            && !force
        {
            let found = parse_version(key, version_key, "tag", found)?;
            if found != version {
                return Err(Error::Stamped {
                    key: key.to_string(),
                    found,
                    wanted: version,
                });
            }
        }
        let tags = with_version(&tags, version_key, version);
        check_tag_limits(key, &tags)?;
        self.store.put_tags_at(key, head.version_id.as_deref(), &tags).await
    }

    /// Whether versions can be stamped here (they are tags).
    ///
    /// # Errors
    /// [`Error::Config`] naming the store, where it has no tags.
    pub fn can_stamp(&self) -> Result<()> {
        if self.place == VersionPlace::Tag {
            return Ok(());
        }
        Err(Error::Config(format!(
            "stamp sets object tags, which {} does not have; versions there live in the Parquet footer, written by `run`",
            self.store.url()
        )))
    }
}

/// What an object's records of its version say ([`VersionStore::records`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Records {
    /// Where the record beside the footer lives.
    pub place: VersionPlace,
    /// The record beside the footer: `None` where it was not read (or, for a metadata entry,
    /// is absent), `Some(None)` for an object with no version tag (version 1).
    pub beside: Option<Option<u32>>,
    /// The footer's version; `None` where it records none (version 1).
    pub footer: Option<u32>,
}

impl Records {
    /// The version the records agree on.
    ///
    /// # Errors
    /// [`Error::VersionMismatch`] naming `key` when they disagree.
    pub fn agreed(&self, key: &str) -> Result<u32> {
        match reconcile(key, self.beside, self.footer) {
            Err(Error::VersionMismatch { key, tag, footer, .. }) if self.place == VersionPlace::Metadata => {
                Err(Error::VersionMismatch {
                    key,
                    place: "metadata entry",
                    tag,
                    footer,
                })
            }
            other => other,
        }
    }
}

/// `tags` with `version_key` set to `version` (replacing any value it had).
pub(crate) fn with_version(tags: &[(String, String)], version_key: &str, version: u32) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = tags.iter().filter(|(k, _)| k != version_key).cloned().collect();
    tags.push((version_key.to_string(), version.to_string()));
    tags
}

#[cfg(test)]
mod tests;
