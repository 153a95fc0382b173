//! Checking that every object's recorded versions agree: its version tag (where the store has
//! tags) against its footer, read with one ranged read of the file's tail. `plan` and `run` read
//! only the tag where the store has one (one small request an object) and take an object whose
//! tag says it is at the target as done without opening it; `validate` is how a data set edited
//! by other tools is checked before it is trusted that way.

use std::sync::Arc;

use futures::stream::{BoxStream, StreamExt};
use serde::Serialize;

use crate::error::Result;
use crate::scan::Candidate;
use crate::store::Store;
use crate::version::VersionSource;
use crate::version_store::{VersionPlace, VersionStore};

/// What one object's records say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct VersionCheck {
    /// Object key.
    pub key: String,
    /// The version tag's value (or, on stores without tags, the version entry in the object's
    /// metadata); `None` where the object has none (version 1) or the store keeps neither.
    pub tag: Option<u32>,
    /// What [`Self::tag`] holds: `tag`, `metadata entry` (stores without tags) or `none`
    /// (stores that keep the version in the footer alone).
    pub beside: &'static str,
    /// The footer's version; `None` where it records none (version 1).
    pub footer: Option<u32>,
    /// The version both agree on.
    pub version: Option<u32>,
    /// Why they do not agree, or why the object could not be read.
    pub error: Option<String>,
    /// The error's kind (`VersionMismatch`, `NotParquet`, `BadVersion`...).
    pub error_kind: Option<String>,
}

impl VersionCheck {
    /// Whether tag and footer disagree.
    pub fn disagrees(&self) -> bool {
        self.error_kind.as_deref() == Some("VersionMismatch")
    }
}

/// Reads every candidate's tag and footer, `concurrency` objects at once, in the candidates'
/// order. A listing that fails ends the stream with its error.
pub fn validate_versions(
    store: &Store,
    candidates: BoxStream<'static, Result<Candidate>>,
    version_key: &str,
    concurrency: usize,
) -> BoxStream<'static, Result<VersionCheck>> {
    let versions = Arc::new(VersionStore::new(store, version_key, VersionSource::Auto));
    candidates
        .map(move |candidate| {
            let versions = versions.clone();
            async move { Ok(check(&versions, candidate?).await) }
        })
        .buffered(concurrency.max(1))
        .boxed()
}

async fn check(versions: &VersionStore, candidate: Candidate) -> VersionCheck {
    let key = candidate.key;
    let mut found = VersionCheck {
        key: key.clone(),
        tag: None,
        beside: match versions.place() {
            VersionPlace::Tag => "tag",
            VersionPlace::Metadata => "metadata entry",
            _ => "none",
        },
        footer: None,
        version: None,
        error: None,
        error_kind: None,
    };
    let agreed = versions.records(&key).await.and_then(|records| {
        found.tag = records.beside.flatten();
        found.footer = records.footer;
        records.agreed(&key)
    });
    match agreed {
        Ok(version) => found.version = Some(version),
        Err(e) => {
            found.error_kind = Some(e.kind().name().to_string());
            found.error = Some(e.report());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures::TryStreamExt;

    fn file(version: Option<&str>) -> Bytes {
        use std::sync::Arc;
        let column = Arc::new(arrow_array::Int64Array::from(vec![1, 2])) as arrow_array::ArrayRef;
        let batch = arrow_array::RecordBatch::try_from_iter([("a", column)]).unwrap();
        let mut out = Vec::new();
        let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        if let Some(v) = version {
            writer.append_key_value_metadata(parquet::file::metadata::KeyValue::new(
                "schema:s:version".into(),
                v.to_string(),
            ));
        }
        writer.close().unwrap();
        Bytes::from(out)
    }

    #[tokio::test]
    async fn every_object_is_read_and_the_disagreeing_and_unreadable_are_named() {
        let store = Store::memory();
        for (key, data) in [
            ("d/agree.parquet", file(Some("2"))),
            ("d/plain.parquet", file(None)),
            ("d/garbage.parquet", Bytes::from_static(b"not parquet at all")),
        ] {
            store.put(key, data, &[], Default::default()).await.unwrap();
        }
        let candidates = futures::stream::iter(["d/agree.parquet", "d/garbage.parquet", "d/plain.parquet"].map(|k| {
            Ok(Candidate {
                key: k.into(),
                size: None,
                e_tag: None,
            })
        }))
        .boxed();
        let checks: Vec<VersionCheck> = validate_versions(&store, candidates, "schema:s:version", 2)
            .try_collect()
            .await
            .unwrap();
        let summary: Vec<_> = checks
            .iter()
            .map(|c| (c.key.as_str(), c.footer, c.version, c.error_kind.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [
                ("d/agree.parquet", Some(2), Some(2), None),
                ("d/garbage.parquet", None, None, Some("NotParquet")),
                ("d/plain.parquet", None, Some(1), None),
            ]
        );
    }
}
