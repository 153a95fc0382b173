//! Migrating one object: read, plan its chain, rewrite, and write back conditionally with the
//! new version in the same request.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::migration::StepId;
use crate::registry::{ChainOutcome, Registry};
use crate::rewrite::{Footer, rewrite};
use crate::store::{ObjectInfo, Store};
use crate::version::{VersionSource, parse_version, reconcile, schema_of_version_key, version_key};

/// What to migrate objects to.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// Schema id whose steps apply.
    pub schema: String,
    /// Target version.
    pub target: u32,
    /// Tag and footer key holding the version; `schema:<id>:version` by default.
    pub version_key: String,
    /// Where versions are read.
    pub version_source: VersionSource,
    /// Apply at most this many steps in one write (the Lambda adapter's
    /// `maxStepsPerInvocation`); all of them when `None`.
    pub max_steps: Option<usize>,
}

impl MigrateOptions {
    /// Options for `schema` to `target`, with the default version key and source.
    ///
    /// ```
    /// let o = pqmigrate_core::MigrateOptions::new("sensorData", 3);
    /// assert_eq!(o.version_key, "schema:sensorData:version");
    /// ```
    pub fn new(schema: &str, target: u32) -> Self {
        Self {
            schema: schema.to_string(),
            target,
            version_key: version_key(schema),
            version_source: VersionSource::Auto,
            max_steps: None,
        }
    }
}

/// A finished migration of one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migrated {
    /// Object key.
    pub key: String,
    /// Version before.
    pub from: u32,
    /// Version after.
    pub to: u32,
    /// Steps applied, in order.
    pub steps: Vec<StepId>,
    /// ETag before.
    pub old_e_tag: Option<String>,
    /// ETag after.
    pub new_e_tag: Option<String>,
    /// Version id before (versioned buckets).
    pub old_version_id: Option<String>,
    /// Version id after (versioned buckets).
    pub new_version_id: Option<String>,
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Rows rewritten.
    pub rows: u64,
    /// Wall time in milliseconds.
    pub millis: u64,
}

/// How one object ended (errors are returned as [`Error`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome")]
pub enum Outcome {
    /// Rewritten and its version recorded.
    Done(Migrated),
    /// Already at the target version; untouched.
    AlreadyAtTarget {
        /// The version found.
        version: u32,
    },
    /// Above the target version; never downgraded.
    AheadOfTarget {
        /// The version found.
        version: u32,
    },
    /// No step leads on from the object's version; untouched.
    MissingMigrationStep {
        /// The object's version.
        version: u32,
        /// The missing step's `from`.
        from: u32,
        /// The missing step's `to`.
        to: u32,
    },
}

/// The version an object is at, from its tags (already read into `info`) and its footer.
///
/// # Errors
/// [`Error::BadVersion`] or [`Error::VersionMismatch`].
pub fn object_version(info: &ObjectInfo, footer: Option<&Footer>, options: &MigrateOptions) -> Result<u32> {
    let key = info.key.as_str();
    if let Some(schema) = other_schema(info, footer, options) {
        return Err(Error::OtherSchema {
            key: key.to_string(),
            schema,
        });
    }
    let tag = match (&info.tags, options.version_source) {
        (Some(tags), VersionSource::Auto | VersionSource::Tags) => Some(
            tags.iter()
                .find(|(k, _)| *k == options.version_key)
                .map(|(_, v)| parse_version(key, &options.version_key, "tag", v))
                .transpose()?,
        ),
        _ => None,
    };
    let footer = match (footer, options.version_source, &tag) {
        (Some(f), VersionSource::Auto | VersionSource::Footer, _) => f.version(key, &options.version_key)?,
        (Some(f), VersionSource::Tags, None) => f.version(key, &options.version_key)?,
        _ => None,
    };
    reconcile(key, tag, footer)
}

/// The schema id of another schema's version key on the object (tag or footer), when it has
/// one and none of ours.
fn other_schema(info: &ObjectInfo, footer: Option<&Footer>, options: &MigrateOptions) -> Option<String> {
    // Only keys of the `schema:<id>:version` shape say which data set a file belongs to.
    schema_of_version_key(&options.version_key)?;
    let tag_keys = info.tags.iter().flatten().map(|(k, _)| k.as_str());
    let footer_keys = footer.into_iter().flat_map(|f| f.keys());
    let mut others = None;
    for k in tag_keys.chain(footer_keys) {
        if k == options.version_key {
            return None;
        }
        if let Some(schema) = schema_of_version_key(k) {
            others.get_or_insert_with(|| schema.to_string());
        }
    }
    others
}

/// Migrates one object to `options.target` through every registered step on the way, in one
/// read and one conditional write.
///
/// The write carries the new data, the new version (tag and footer), the object's other tags and
/// its user metadata together, conditioned on the ETag read: if another writer changed the
/// object meanwhile, nothing is written and [`Error::Conflict`] (retryable) comes back.
///
/// # Errors
/// Any [`Error`] naming the key; the object is then unchanged.
///
/// # Example
/// ```
/// # use pqmigrate_core::{Store, Registry, MigrateOptions, Outcome, migrate_object};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = Store::memory();
/// let registry = Registry::from_steps([]).unwrap();
/// let err = migrate_object(&store, &registry, "missing.parquet", &MigrateOptions::new("s", 2)).await;
/// assert!(err.unwrap_err().to_string().starts_with("missing.parquet: get failed"));
/// # });
/// ```
pub async fn migrate_object(
    store: &Store,
    registry: &Registry,
    key: &str,
    options: &MigrateOptions,
) -> Result<Outcome> {
    let started = Instant::now();
    let (info, data) = store.read(key).await?;
    let footer = Footer::parse(key, &data)?;
    let version = object_version(&info, Some(&footer), options)?;
    let mut chain = match registry.chain(&options.schema, version, options.target) {
        Ok(chain) => chain,
        Err(ChainOutcome::AtTarget) => return Ok(Outcome::AlreadyAtTarget { version }),
        Err(ChainOutcome::AheadOfTarget) => return Ok(Outcome::AheadOfTarget { version }),
        Err(ChainOutcome::Missing { from, to }) => return Ok(Outcome::MissingMigrationStep { version, from, to }),
    };
    if let Some(max) = options.max_steps {
        chain.truncate(max.max(1));
    }
    let new_version = chain.last().map_or(version, |s| s.to);

    let tags = info.tags.as_ref().map(|tags| {
        let mut tags: Vec<(String, String)> = tags
            .iter()
            .filter(|(k, _)| *k != options.version_key)
            .cloned()
            .collect();
        tags.push((options.version_key.clone(), new_version.to_string()));
        tags
    });
    if let Some(tags) = &tags {
        crate::store::check_tag_limits(key, tags)?;
    }

    let bytes_in = data.len() as u64;
    let task_key = key.to_string();
    let version_key = options.version_key.clone();
    let steps = chain.clone();
    let rewritten =
        tokio::task::spawn_blocking(move || rewrite(&task_key, data, &footer, &steps, &version_key, new_version))
            .await
            .map_err(|e| Error::StepPanicked {
                key: key.to_string(),
                step: chain.first().map(|s| s.id()).unwrap_or_else(|| StepId {
                    schema: options.schema.clone(),
                    from: version,
                    to: new_version,
                }),
                message: e.to_string(),
            })??;

    let bytes_out = rewritten.data.len() as u64;
    let written = store
        .write_if_unchanged(&info, rewritten.data, tags.as_deref().unwrap_or(&[]))
        .await?;
    Ok(Outcome::Done(Migrated {
        key: key.to_string(),
        from: version,
        to: new_version,
        steps: chain.iter().map(|s| s.id()).collect(),
        old_e_tag: info.e_tag,
        new_e_tag: written.e_tag,
        old_version_id: info.version_id,
        new_version_id: written.version_id,
        bytes_in,
        bytes_out,
        rows: rewritten.rows,
        millis: started.elapsed().as_millis() as u64,
    }))
}
