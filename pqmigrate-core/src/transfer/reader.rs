//! Reading a Parquet object in pieces, every request pinned to the ETag first seen: the footer
//! (with its page index) and then one row group at a time.

use std::ops::Range;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use parquet::arrow::async_reader::MetadataFetch;
use parquet::errors::ParquetError;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};

use crate::error::{Error, Result};
use crate::rewrite::limits::check_metadata_fetch;
use crate::rewrite::{FileRanges, Footer, footer_start};
use crate::store::{ReadOptions, Store};

/// Bytes fetched with the footer in one request; most footers fit.
const FOOTER_HINT: usize = 64 * 1024;

/// Ranged reads of one object at one ETag.
#[derive(Debug, Clone)]
pub struct ObjectReader {
    store: Store,
    key: String,
    size: u64,
    e_tag: Option<String>,
    /// Bytes fetched so far, by this reader and its clones.
    received: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl ObjectReader {
    /// Reads `key` of `size` bytes; with `e_tag`, a read of a changed object fails with
    /// [`Error::Conflict`] instead of mixing two versions.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for a key no store path can name.
    pub fn new(store: &Store, key: &str, size: u64, e_tag: Option<String>) -> Result<Self> {
        crate::store::object_path(key)?;
        Ok(Self {
            store: store.clone(),
            key: key.to_string(),
            size,
            e_tag,
            received: Default::default(),
        })
    }

    /// The store read.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Bytes fetched so far by this reader and its clones.
    pub fn received(&self) -> u64 {
        self.received.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The object key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The object's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Fetches one byte range.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the object changed, [`Error::Store`] otherwise.
    pub async fn range(&self, range: Range<u64>) -> Result<Bytes> {
        let options = ReadOptions {
            range: Some(range),
            if_match: self.e_tag.clone(),
            version_id: None,
        };
        match self.store.get(&self.key, options).await {
            // A store that answered a pinned read with another version's bytes.
            Ok((head, _)) if self.e_tag.is_some() && head.e_tag.is_some() && head.e_tag != self.e_tag => {
                Err(Error::Conflict {
                    key: self.key.clone(),
                    expected: self.e_tag.clone().unwrap_or_default(),
                })
            }
            Ok((_, bytes)) => {
                self.received
                    .fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
                Ok(bytes)
            }
            Err(Error::Conflict { key, .. }) => Err(Error::Conflict {
                key,
                expected: self.e_tag.clone().unwrap_or_default(),
            }),
            Err(e) => Err(e),
        }
    }

    /// Reads and parses the footer: one ranged read of the tail for most files, and the page
    /// index when `page_index` asks for it.
    ///
    /// # Errors
    /// [`Error::NotParquet`] for an object that is not Parquet, store errors otherwise.
    pub async fn footer(&self, page_index: bool) -> Result<Footer> {
        if self.size < 12 {
            return Err(self.not_parquet(format!("{} bytes is too small for a Parquet file", self.size)));
        }
        let policy = if page_index {
            PageIndexPolicy::Optional
        } else {
            PageIndexPolicy::Skip
        };
        let mut fetch = Fetch {
            reader: self,
            error: None,
            footer_start: None,
        };
        let loaded = ParquetMetaDataReader::new()
            .with_prefetch_hint(Some(FOOTER_HINT))
            .with_page_index_policy(policy)
            .load_and_finish(&mut fetch, self.size)
            .await;
        match (loaded, fetch.error) {
            (Ok(metadata), _) => {
                let footer = Footer::checked(&self.key, metadata, self.size)?;
                Ok(match fetch.footer_start {
                    Some(start) => footer.with_footer_start(start),
                    None => footer,
                })
            }
            (Err(_), Some(error)) => Err(error),
            (Err(e), None) => Err(Error::NotParquet {
                key: self.key.clone(),
                source: e,
            }),
        }
    }

    /// Fetches what the rewrite of row group `index` reads.
    ///
    /// # Errors
    /// As [`ObjectReader::range`].
    pub async fn row_group(&self, footer: &Footer, index: usize) -> Result<FileRanges> {
        let mut pieces = Vec::new();
        for range in footer.row_group_ranges(index) {
            let start = range.start;
            pieces.push((start, self.range(range).await?));
        }
        Ok(FileRanges::new(self.size, pieces))
    }

    /// Fetches `ranges` of row group `index` only (the columns a rewrite decodes).
    ///
    /// # Errors
    /// As [`ObjectReader::range`].
    pub async fn ranges(&self, ranges: &[Range<u64>]) -> Result<FileRanges> {
        let mut pieces = Vec::with_capacity(ranges.len());
        for range in merge_ranges(ranges) {
            let start = range.start;
            pieces.push((start, self.range(range).await?));
        }
        Ok(FileRanges::new(self.size, pieces))
    }

    fn not_parquet(&self, message: String) -> Error {
        Error::NotParquet {
            key: self.key.clone(),
            source: ParquetError::General(message),
        }
    }
}

/// Ranges sorted, with touching or overlapping ones joined: one request each.
fn merge_ranges(ranges: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut sorted = ranges.to_vec();
    sorted.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(sorted.len());
    for range in sorted {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    merged
}

/// Adapts the reader to parquet's metadata loader, keeping our error for the caller.
struct Fetch<'a> {
    reader: &'a ObjectReader,
    error: Option<Error>,
    /// Where the footer starts, from the first fetch that reached the end of the file.
    footer_start: Option<u64>,
}

impl MetadataFetch for &mut Fetch<'_> {
    fn fetch(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            let len = range.end.saturating_sub(range.start);
            let checked = check_metadata_fetch(&self.reader.key, "footer or page index", len);
            match async {
                checked?;
                self.reader.range(range.clone()).await
            }
            .await
            {
                Ok(bytes) => {
                    if range.end == self.reader.size && self.footer_start.is_none() {
                        self.footer_start = footer_start(self.reader.size, &bytes);
                    }
                    Ok(bytes)
                }
                Err(e) => {
                    let message = e.to_string();
                    self.error = Some(e);
                    Err(ParquetError::General(message))
                }
            }
        }
        .boxed()
    }
}
