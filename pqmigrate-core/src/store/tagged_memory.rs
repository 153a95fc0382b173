//! A memory store with object tags, for unit tests of what differs where a store has tags:
//! the memory backend, with each object's tags kept beside it (written with the data, replaced
//! by a tag edit, dropped with the object).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use object_store::PutPayload;

use super::Store;
use super::io::{Capabilities, Head, ListPage, ReadOptions, StoreIo, WriteOptions, Written};
use super::memory::MemoryIo;
use crate::error::Result;

/// The memory backend with tags.
#[derive(Debug, Default)]
pub(crate) struct TaggedMemoryIo {
    inner: MemoryIo,
    tags: Mutex<HashMap<String, Vec<(String, String)>>>,
}

impl Store {
    /// A memory store whose objects carry tags.
    pub(crate) fn tagged_memory() -> Self {
        Self::from_io(Arc::new(TaggedMemoryIo::default()), "memory-tagged://".into())
    }
}

#[async_trait]
impl StoreIo for TaggedMemoryIo {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            tags: true,
            ..self.inner.capabilities()
        }
    }

    async fn list(&self, prefix: &str, page: Option<String>, max_keys: Option<usize>) -> Result<ListPage> {
        self.inner.list(prefix, page, max_keys).await
    }

    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list_dirs(prefix).await
    }

    async fn head(&self, key: &str, version_id: Option<&str>) -> Result<Head> {
        self.inner.head(key, version_id).await
    }

    async fn get(&self, key: &str, options: ReadOptions) -> Result<(Head, Bytes)> {
        self.inner.get(key, options).await
    }

    async fn put(&self, key: &str, data: PutPayload, options: WriteOptions) -> Result<Written> {
        let tags = options.tags.clone();
        let written = self.inner.put(key, data, options).await?;
        self.tags.lock().unwrap().insert(key.to_string(), tags);
        Ok(written)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.tags.lock().unwrap().remove(key);
        self.inner.delete(key).await
    }

    async fn get_tags(&self, key: &str, _version_id: Option<&str>) -> Result<Vec<(String, String)>> {
        Ok(self.tags.lock().unwrap().get(key).cloned().unwrap_or_default())
    }

    async fn put_tags(&self, key: &str, _version_id: Option<&str>, tags: &[(String, String)]) -> Result<()> {
        self.inner.head(key, None).await?;
        self.tags.lock().unwrap().insert(key.to_string(), tags.to_vec());
        Ok(())
    }
}
