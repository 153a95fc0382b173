//! Where an object's schema version lives (object tag, footer metadata) and how the two are
//! reconciled.

use crate::error::{Error, Result};

/// The largest version accepted. Versions are small counters; anything bigger is a typo or
/// garbage and is reported rather than trusted.
pub const MAX_VERSION: u32 = 1_000_000;

/// The version key for a schema id: `schema:<id>:version`, as the seed's tooling wrote it.
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
pub enum VersionSource {
    /// Object tags and footer together where the store has tags, the footer alone elsewhere.
    #[default]
    Auto,
    /// Only the object tag (the seed's way); the footer is still written.
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
                    tag,
                    footer,
                })
            }
        }
    }
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
