//! Table formats found around a data set. A Delta Lake, Iceberg or Hudi table records each data
//! file's size and statistics in its own metadata, and readers find a file's footer from the
//! recorded size: a file rewritten in place under such a table breaks it for every reader ("not
//! a Parquet file", wrong pruning). So a prefix at or under a table's root is found before any
//! write, from the markers each format keeps beside its data: `_delta_log/` (Delta Lake),
//! `.hoodie/` (Hudi), `metadata/*.metadata.json` (Iceberg).

use futures::StreamExt;

use crate::error::{Error, Result};
use crate::store::Store;

/// A table whose files a data set's prefix holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Table {
    /// `Delta Lake`, `Iceberg` or `Hudi`.
    pub format: &'static str,
    /// The table's root (a key prefix, `""` for the store's root).
    pub root: String,
    /// The marker found there (`_delta_log/`, `.hoodie/`, `metadata/...metadata.json`).
    pub marker: String,
}

impl Table {
    /// Why a run refuses to rewrite the table's files in place.
    pub fn refusal(&self, prefix: &str) -> String {
        let root = if self.root.is_empty() {
            "the store's root"
        } else {
            &self.root
        };
        format!(
            "prefix {prefix:?} is at or under a {} table at {root} ({} found there): the table's metadata records each data file's size and statistics, and readers find a file's footer from that size, so rewriting its files in place breaks the table for every reader; migrate it through the table format itself, or pass --allow-table-files if the files are no longer read through the table",
            self.format, self.marker
        )
    }
}

/// The folders a prefix lies in, innermost first, each with its trailing `/` (`""` for the
/// root): a prefix `a/b/c` (a key's start) lies in `a/b/`, `a/` and the root.
///
/// ```
/// use pqmigrate_core::table_format::enclosing_folders;
/// assert_eq!(enclosing_folders("t/data/"), ["t/data/", "t/", ""]);
/// assert_eq!(enclosing_folders("t/data/part-"), ["t/data/", "t/", ""]);
/// assert_eq!(enclosing_folders(""), [""]);
/// ```
pub fn enclosing_folders(prefix: &str) -> Vec<String> {
    let mut folder = match prefix.rfind('/') {
        Some(i) => &prefix[..=i],
        None => "",
    };
    let mut folders = vec![folder.to_string()];
    while !folder.is_empty() {
        let inner = &folder[..folder.len() - 1];
        folder = match inner.rfind('/') {
            Some(i) => &inner[..=i],
            None => "",
        };
        folders.push(folder.to_string());
    }
    folders
}

/// The table a prefix lies at or under, if any: in each enclosing folder, each format's marker
/// is looked for with a listing of one page (a raw prefix listing, which a hostile key elsewhere
/// in the folder cannot break).
///
/// # Errors
/// Store errors of the listings.
pub async fn table_around(store: &Store, prefix: &str) -> Result<Option<Table>> {
    for root in enclosing_folders(prefix) {
        for (format, marker) in [("Delta Lake", "_delta_log/"), ("Hudi", ".hoodie/")] {
            if first_keys(store, &format!("{root}{marker}"), 1).await?.next().is_some() {
                return Ok(Some(Table {
                    format,
                    root: root.clone(),
                    marker: marker.to_string(),
                }));
            }
        }
        // Table metadata files sort first in the folder (`00000-<uuid>.metadata.json`).
        let mut metadata = first_keys(store, &format!("{root}metadata/"), 1000).await?;
        if let Some(key) = metadata.find(|k| k.ends_with(".metadata.json")) {
            return Ok(Some(Table {
                format: "Iceberg",
                marker: key[root.len()..].to_string(),
                root,
            }));
        }
    }
    Ok(None)
}

/// The keys of the first listing page under `prefix`, at most `count`.
async fn first_keys(store: &Store, prefix: &str, count: usize) -> Result<std::vec::IntoIter<String>> {
    let page: Vec<_> = store.list_prefix(prefix, Some(count)).take(count).collect().await;
    let keys = page
        .into_iter()
        .map(|listed| listed.map(|l| l.key))
        .collect::<Result<Vec<_>>>()?;
    Ok(keys.into_iter())
}

/// Refuses a data set whose prefixes lie at or under a table (see [`table_around`]).
///
/// # Errors
/// [`Error::Config`] naming the table and why; store errors of the listings.
pub async fn refuse_tables(store: &Store, prefixes: &[String]) -> Result<()> {
    let whole = [String::new()];
    let prefixes = if prefixes.is_empty() { &whole[..] } else { prefixes };
    for prefix in prefixes {
        if let Some(table) = table_around(store, prefix).await? {
            return Err(Error::Config(table.refusal(prefix)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    async fn put(store: &Store, key: &str) {
        store
            .put(key, Bytes::from_static(b"x"), &[], Default::default())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn tables_are_found_at_and_above_the_prefix_and_plain_data_is_not() {
        let store = Store::memory();
        put(&store, "lake/delta/_delta_log/00000000000000000000.json").await;
        put(&store, "lake/delta/part-0.parquet").await;
        put(&store, "lake/ice/metadata/00001-abc.metadata.json").await;
        put(&store, "lake/ice/data/x/part-0.parquet").await;
        put(&store, "lake/hudi/.hoodie/hoodie.properties").await;
        put(&store, "lake/hudi/p=1/f.parquet").await;
        put(&store, "lake/plain/metadata/notes.txt").await;
        put(&store, "lake/plain/d/f.parquet").await;
        for (prefix, format) in [
            ("lake/delta/", Some("Delta Lake")),
            ("lake/delta/part-", Some("Delta Lake")),
            ("lake/ice/", Some("Iceberg")),
            ("lake/ice/data/x/", Some("Iceberg")),
            ("lake/hudi/p=1/", Some("Hudi")),
            ("lake/plain/", None),
            ("lake/plain/d/", None),
            ("lake/", None),
        ] {
            let found = table_around(&store, prefix).await.unwrap();
            assert_eq!(found.as_ref().map(|t| t.format), format, "{prefix}: {found:?}");
        }
        let e = refuse_tables(&store, &["lake/ice/data/".into()]).await.unwrap_err();
        let message = e.to_string();
        assert!(
            message.contains("Iceberg table at lake/ice/") && message.contains("metadata/00001-abc.metadata.json"),
            "{message}"
        );
        refuse_tables(&store, &["lake/plain/".into()]).await.unwrap();
    }
}
