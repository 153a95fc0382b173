//! Where an object's schema version lives (object tag, footer metadata) and how the two are
//! reconciled.

use crate::error::{Error, Result};

/// The largest version accepted. Versions are small counters; anything bigger is a typo or
/// garbage and is reported rather than trusted.
pub const MAX_VERSION: u32 = 1_000_000;

/// The version key for a schema id: `schema:<id>:version`, as the tools in the field write it.
///
/// ```
/// assert_eq!(pqmigrate_core::version_key("sensorData"), "schema:sensorData:version");
/// ```
pub fn version_key(schema: &str) -> String {
    format!("schema:{schema}:version")
}

/// The schema id inside a version key made by [`version_key`], if it has that shape.
///
/// ```
/// assert_eq!(pqmigrate_core::schema_of_version_key("schema:sensorData:version"), Some("sensorData"));
/// assert_eq!(pqmigrate_core::schema_of_version_key("sensorData"), None);
/// ```
pub fn schema_of_version_key(key: &str) -> Option<&str> {
    key.strip_prefix("schema:")?
        .strip_suffix(":version")
        .filter(|s| !s.is_empty())
}

/// The user-metadata name holding the version on stores without object tags (GCS, Azure Blob),
/// beside the footer key, which stays the source of truth: `pqm-v-` and the version key in
/// lower case with every character but letters and digits as `-` (metadata names travel as
/// HTTP headers, which come back in lower case, and Azure's must be identifiers).
///
/// ```
/// assert_eq!(
///     pqmigrate_core::version::version_metadata_name("schema:sensorData:version"),
///     "pqm-v-schema-sensordata-version"
/// );
/// ```
pub fn version_metadata_name(version_key: &str) -> String {
    let name: String = version_key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("pqm-v-{name}")
}

/// Parses a recorded version value: a positive integer up to [`MAX_VERSION`].
///
/// # Errors
/// [`Error::BadVersion`] naming the object, the key and the value.
pub fn parse_version(key: &str, version_key: &str, place: &'static str, value: &str) -> Result<u32> {
    match value.trim().parse::<u32>() {
        Ok(v) if (1..=MAX_VERSION).contains(&v) => Ok(v),
        _ => Err(Error::BadVersion {
            key: key.to_string(),
            version_key: version_key.to_string(),
            place,
            value: value.to_string(),
        }),
    }
}

/// Where versions are read from and written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum VersionSource {
    /// Object tags and footer together where the store has tags, the footer alone elsewhere.
    #[default]
    Auto,
    /// Only the object tag (as tools in the field record it); the footer is still written.
    Tags,
    /// Only the Parquet footer key-value metadata.
    Footer,
}

/// Reconciles the version found in an object's tag and in its footer.
///
/// `tag` is `None` when the store has no tags or tags are not consulted; `Some(None)` when the
/// store has tags but the object carries no version tag (version 1).
///
/// # Errors
/// [`Error::VersionMismatch`] when both are known and differ.
pub fn reconcile(key: &str, tag: Option<Option<u32>>, footer: Option<u32>) -> Result<u32> {
    match (tag, footer) {
        (None, footer) => Ok(footer.unwrap_or(1)),
        (Some(tag), None) => Ok(tag.unwrap_or(1)),
        (Some(tag), Some(footer)) => {
            let tag = tag.unwrap_or(1);
            if tag == footer {
                Ok(tag)
            } else {
                Err(Error::VersionMismatch {
                    key: key.to_string(),
                    place: "tag",
                    tag,
                    footer,
                })
            }
        }
    }
}

/// The key-value entries of a Parquet footer, as [`resolve_version`] reads them.
pub type FooterEntries<'a> = [(&'a str, Option<&'a str>)];

/// The version an object is at, from its tags (`None` where the store has no tags or they were
/// not read) and its footer entries (`None` when the footer was not read), under `version_key`
/// and `source`. Pure.
///
/// ```
/// use pqmigrate_core::version::{VersionSource, resolve_version};
/// let tags = vec![("schema:s:version".to_string(), "2".to_string())];
/// let footer = [("schema:s:version", Some("2"))];
/// assert_eq!(resolve_version("k", "schema:s:version", VersionSource::Auto, Some(&tags), Some(&footer)).unwrap(), 2);
/// assert_eq!(resolve_version("k", "schema:s:version", VersionSource::Auto, None, None).unwrap(), 1);
/// ```
///
/// # Errors
/// [`Error::OtherSchema`] for an object that records only another schema's version,
/// [`Error::BadVersion`] or [`Error::VersionMismatch`].
pub fn resolve_version(
    key: &str,
    version_key: &str,
    source: VersionSource,
    tags: Option<&[(String, String)]>,
    footer: Option<&FooterEntries<'_>>,
) -> Result<u32> {
    if let Some(schema) = other_schema(version_key, tags, footer) {
        return Err(Error::OtherSchema {
            key: key.to_string(),
            schema,
        });
    }
    let tag = match (tags, source) {
        (Some(tags), VersionSource::Auto | VersionSource::Tags) => Some(
            tags.iter()
                .find(|(k, _)| k == version_key)
                .map(|(_, v)| parse_version(key, version_key, "tag", v))
                .transpose()?,
        ),
        _ => None,
    };
    let footer_value = || {
        footer
            .into_iter()
            .flatten()
            .find(|(k, _)| *k == version_key)
            .and_then(|(_, v)| *v)
            .map(|v| parse_version(key, version_key, "footer", v))
            .transpose()
    };
    let footer = match (footer.is_some(), source, &tag) {
        (true, VersionSource::Auto | VersionSource::Footer, _) | (true, VersionSource::Tags, None) => footer_value()?,
        _ => None,
    };
    reconcile(key, tag, footer)
}

/// The schema id of another schema's version key on the object (tag or footer), when it has
/// one and none of ours. Only keys of the `schema:<id>:version` shape say which data set a file
/// belongs to.
fn other_schema(
    version_key: &str,
    tags: Option<&[(String, String)]>,
    footer: Option<&FooterEntries<'_>>,
) -> Option<String> {
    schema_of_version_key(version_key)?;
    let tag_keys = tags.into_iter().flatten().map(|(k, _)| k.as_str());
    let footer_keys = footer.into_iter().flatten().map(|(k, _)| *k);
    let mut others = None;
    for k in tag_keys.chain(footer_keys) {
        if k == version_key {
            return None;
        }
        if let Some(schema) = schema_of_version_key(k) {
            others.get_or_insert_with(|| schema.to_string());
        }
    }
    others
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_version_table() {
        let cases = [
            ("1", Some(1)),
            ("3", Some(3)),
            (" 2 ", Some(2)),
            ("1000000", Some(1_000_000)),
            ("abc", None),
            ("0", None),
            ("-1", None),
            ("99999999999", None),
            ("1000001", None),
            ("", None),
            ("2.0", None),
        ];
        for (value, expected) in cases {
            let got = parse_version("k", "schema:s:version", "tag", value).ok();
            assert_eq!(got, expected, "value {value:?}");
        }
        let err = parse_version("dir/a.parquet", "schema:s:version", "tag", "abc").unwrap_err();
        assert_eq!(
            err.to_string(),
            "dir/a.parquet: bad version value \"abc\" in tag `schema:s:version`: expected a positive integer"
        );
    }

    #[test]
    fn resolve_version_table() {
        let key = "schema:s:version";
        let tags = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let ours = tags(&[(key, "2")]);
        let theirs = tags(&[("schema:other:version", "4")]);
        let none = tags(&[]);
        let footer2 = [(key, Some("2"))];
        let footer3 = [(key, Some("3"))];
        type Case<'a> = (
            VersionSource,
            Option<&'a [(String, String)]>,
            Option<&'a FooterEntries<'a>>,
            Result<u32, &'a str>,
        );
        let cases: Vec<Case> = vec![
            (VersionSource::Auto, Some(&ours), Some(&footer2), Ok(2)),
            (VersionSource::Auto, Some(&none), None, Ok(1)),
            (VersionSource::Auto, None, Some(&footer3), Ok(3)),
            (VersionSource::Auto, Some(&ours), Some(&footer3), Err("VersionMismatch")),
            (VersionSource::Tags, Some(&ours), Some(&footer3), Ok(2)),
            (VersionSource::Footer, Some(&ours), Some(&footer3), Ok(3)),
            (VersionSource::Auto, Some(&theirs), None, Err("OtherSchema")),
        ];
        for (source, tags, footer, expected) in cases {
            let got = resolve_version("k", key, source, tags, footer).map_err(|e| e.kind().name());
            assert_eq!(got, expected, "{source:?} {tags:?} {footer:?}");
        }
    }

    #[test]
    fn reconcile_table() {
        let cases = [
            (None, None, Ok(1)),
            (None, Some(3), Ok(3)),
            (Some(None), None, Ok(1)),
            (Some(Some(2)), None, Ok(2)),
            (Some(Some(2)), Some(2), Ok(2)),
            (Some(None), Some(1), Ok(1)),
            (Some(Some(2)), Some(3), Err((2, 3))),
            (Some(None), Some(3), Err((1, 3))),
        ];
        for (tag, footer, expected) in cases {
            let got = reconcile("k", tag, footer).map_err(|e| match e {
                Error::VersionMismatch { tag, footer, .. } => (tag, footer),
                other => panic!("unexpected {other}"),
            });
            assert_eq!(got, expected, "tag {tag:?} footer {footer:?}");
        }
    }
}
