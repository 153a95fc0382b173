//! The in-memory backend (tests, examples, embedders' own checks): `object_store`'s `InMemory`,
//! with conditional writes and user metadata, one request a write, no tags and no versions.

use async_trait::async_trait;
use bytes::Bytes;
use object_store::memory::InMemory;
use object_store::{PutOptions, PutPayload};

use super::io::{Capabilities, Head, ListPage, ReadOptions, StoreIo, WriteOptions, Written, no_versions};
use super::object_path;
use super::plumbing::{self, conflict_or, put_mode};
use crate::error::Result;

/// A store in this process's memory.
#[derive(Debug, Default)]
pub(crate) struct MemoryIo {
    inner: InMemory,
}

#[async_trait]
impl StoreIo for MemoryIo {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            tags: false,
            user_metadata: true,
            multipart: false,
            versions: false,
            copy_parts: false,
            largest_copied_part: super::MAX_PART,
            reads_in_flight: 2,
            parts_in_any_order: false,
        }
    }

    async fn list(&self, prefix: &str, page: Option<String>, max_keys: Option<usize>) -> Result<ListPage> {
        plumbing::list_page(&self.inner, prefix, page, max_keys, |meta| meta.e_tag).await
    }

    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        plumbing::list_dirs(&self.inner, prefix).await
    }

    async fn head(&self, key: &str, version_id: Option<&str>) -> Result<Head> {
        if version_id.is_some() {
            return Err(no_versions(key));
        }
        plumbing::head(&self.inner, key, None).await
    }

    async fn get(&self, key: &str, options: ReadOptions) -> Result<(Head, Bytes)> {
        if options.version_id.is_some() {
            return Err(no_versions(key));
        }
        plumbing::get(&self.inner, key, options).await
    }

    async fn put(&self, key: &str, data: PutPayload, options: WriteOptions) -> Result<Written> {
        let put = PutOptions {
            mode: put_mode(key, &options.condition)?,
            attributes: options.attributes,
            ..PutOptions::default()
        };
        let result = object_store::ObjectStore::put_opts(&self.inner, &object_path(key)?, data, put)
            .await
            .map_err(|e| conflict_or(key, &options.condition, "put", e))?;
        Ok(Written {
            e_tag: result.e_tag,
            version_id: result.version,
        })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        plumbing::delete(&self.inner, key).await
    }
}
