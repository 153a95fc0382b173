//! Wrapping the seam: a [`Decorated`] store runs a [`Hook`] around every request it forwards,
//! which is how the rate limiter and the fault injector see every request of a run.

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::PutPayload;

use super::io::{
    Capabilities, Condition, CopySource, Head, ListPage, ObjectVersion, ReadOptions, Request, SharedIo, StoreIo,
    WriteOptions, Written,
};
use crate::error::Result;

/// What a decorator does around each request.
#[async_trait]
pub trait Hook: fmt::Debug + Send + Sync + 'static {
    /// Runs before `request` about `key` reaches `inner`; an error stops it there.
    /// `conditional` says whether it is a write conditioned on an ETag.
    async fn before(&self, request: Request, key: &str, conditional: bool, inner: &SharedIo) -> Result<()>;

    /// Runs after `inner` answered, with a success turned into an error when the hook says so
    /// (a response lost on the way back). The default passes the answer on.
    fn after(&self, request: Request, key: &str) -> Result<()> {
        let _ = (request, key);
        Ok(())
    }
}

#[async_trait]
impl<H: Hook> Hook for std::sync::Arc<H> {
    async fn before(&self, request: Request, key: &str, conditional: bool, inner: &SharedIo) -> Result<()> {
        self.as_ref().before(request, key, conditional, inner).await
    }

    fn after(&self, request: Request, key: &str) -> Result<()> {
        self.as_ref().after(request, key)
    }
}

/// A store whose every request passes through a [`Hook`].
#[derive(Debug)]
pub struct Decorated<H> {
    inner: SharedIo,
    hook: H,
}

impl<H: Hook> Decorated<H> {
    /// Wraps `inner`.
    pub fn new(inner: SharedIo, hook: H) -> Self {
        Self { inner, hook }
    }

    /// The hook.
    pub fn hook(&self) -> &H {
        &self.hook
    }
}

fn if_match(condition: &Condition) -> bool {
    matches!(condition, Condition::IfMatch(_))
}

#[async_trait]
#[warn(clippy::missing_trait_methods)]
impl<H: Hook> StoreIo for Decorated<H> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn list(&self, prefix: &str, page: Option<String>, max_keys: Option<usize>) -> Result<ListPage> {
        self.hook.before(Request::List, prefix, false, &self.inner).await?;
        let answer = self.inner.list(prefix, page, max_keys).await?;
        self.hook.after(Request::List, prefix).map(|()| answer)
    }

    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        self.hook.before(Request::ListDirs, prefix, false, &self.inner).await?;
        let answer = self.inner.list_dirs(prefix).await?;
        self.hook.after(Request::ListDirs, prefix).map(|()| answer)
    }

    async fn head(&self, key: &str, version_id: Option<&str>) -> Result<Head> {
        self.hook.before(Request::Head, key, false, &self.inner).await?;
        let answer = self.inner.head(key, version_id).await?;
        self.hook.after(Request::Head, key).map(|()| answer)
    }

    async fn get(&self, key: &str, options: ReadOptions) -> Result<(Head, Bytes)> {
        self.hook.before(Request::Get, key, false, &self.inner).await?;
        let answer = self.inner.get(key, options).await?;
        self.hook.after(Request::Get, key).map(|()| answer)
    }

    async fn put(&self, key: &str, data: PutPayload, options: WriteOptions) -> Result<Written> {
        let conditional = if_match(&options.condition);
        self.hook.before(Request::Put, key, conditional, &self.inner).await?;
        let answer = self.inner.put(key, data, options).await?;
        self.hook.after(Request::Put, key).map(|()| answer)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.hook.before(Request::Delete, key, false, &self.inner).await?;
        self.inner.delete(key).await?;
        self.hook.after(Request::Delete, key)
    }

    async fn get_tags(&self, key: &str, version_id: Option<&str>) -> Result<Vec<(String, String)>> {
        self.hook.before(Request::GetTags, key, false, &self.inner).await?;
        let answer = self.inner.get_tags(key, version_id).await?;
        self.hook.after(Request::GetTags, key).map(|()| answer)
    }

    async fn put_tags(&self, key: &str, version_id: Option<&str>, tags: &[(String, String)]) -> Result<()> {
        self.hook.before(Request::PutTags, key, false, &self.inner).await?;
        self.inner.put_tags(key, version_id, tags).await?;
        self.hook.after(Request::PutTags, key)
    }

    async fn create_multipart(&self, key: &str, options: &WriteOptions) -> Result<String> {
        self.hook
            .before(Request::CreateMultipart, key, false, &self.inner)
            .await?;
        let answer = self.inner.create_multipart(key, options).await?;
        self.hook.after(Request::CreateMultipart, key).map(|()| answer)
    }

    async fn upload_part(&self, key: &str, upload_id: &str, index: usize, data: PutPayload) -> Result<String> {
        self.hook.before(Request::UploadPart, key, false, &self.inner).await?;
        let answer = self.inner.upload_part(key, upload_id, index, data).await?;
        self.hook.after(Request::UploadPart, key).map(|()| answer)
    }

    async fn upload_part_copy(&self, key: &str, upload_id: &str, index: usize, source: &CopySource) -> Result<String> {
        self.hook
            .before(Request::UploadPartCopy, key, false, &self.inner)
            .await?;
        let answer = self.inner.upload_part_copy(key, upload_id, index, source).await?;
        self.hook.after(Request::UploadPartCopy, key).map(|()| answer)
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[String],
        condition: &Condition,
    ) -> Result<Written> {
        let conditional = if_match(condition);
        self.hook
            .before(Request::CompleteMultipart, key, conditional, &self.inner)
            .await?;
        let answer = self.inner.complete_multipart(key, upload_id, parts, condition).await?;
        self.hook.after(Request::CompleteMultipart, key).map(|()| answer)
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()> {
        self.hook
            .before(Request::AbortMultipart, key, false, &self.inner)
            .await?;
        self.inner.abort_multipart(key, upload_id).await?;
        self.hook.after(Request::AbortMultipart, key)
    }

    async fn list_versions(&self, prefix: &str) -> Result<Vec<ObjectVersion>> {
        self.hook
            .before(Request::ListVersions, prefix, false, &self.inner)
            .await?;
        let answer = self.inner.list_versions(prefix).await?;
        self.hook.after(Request::ListVersions, prefix).map(|()| answer)
    }

    async fn versioning_enabled(&self) -> Result<bool> {
        self.hook.before(Request::GetVersioning, "", false, &self.inner).await?;
        let answer = self.inner.versioning_enabled().await?;
        self.hook.after(Request::GetVersioning, "").map(|()| answer)
    }

    async fn server_time(&self) -> Result<chrono::DateTime<chrono::Utc>> {
        self.hook.before(Request::Clock, "", false, &self.inner).await?;
        let answer = self.inner.server_time().await?;
        self.hook.after(Request::Clock, "").map(|()| answer)
    }
}
