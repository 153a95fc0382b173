//! Azure blob index tags, which `object_store` writes with a blob (`x-ms-tags`) but cannot read
//! back: Get Blob Tags and Set Blob Tags (`?comp=tags`), and the service's clock.

use http::Method;

use super::rest::{AzureRest, Call, failed};
use crate::error::Result;
use crate::store::tagging::{parse_tag_set, tag_set_xml};

/// Reads and writes the index tags of the blobs of one container.
#[derive(Debug, Clone)]
pub(crate) struct AzureTags {
    rest: AzureRest,
}

impl AzureTags {
    pub(crate) fn new(rest: AzureRest) -> Self {
        Self { rest }
    }

    /// The blob's index tags (Get Blob Tags).
    ///
    /// # Errors
    /// [`Error::Store`](crate::error::Error::Store) naming `key`: not found (404), or the service's answer.
    pub(crate) async fn get(&self, key: &str) -> Result<Vec<(String, String)>> {
        let call = Call::empty("get blob tags", Method::GET);
        let (_, body) = self.rest.send(key, &self.rest.blob_url(key, "comp=tags"), call).await?;
        parse_tag_set(&body).map_err(|e| failed(key, "get blob tags", format!("unreadable answer: {e}")))
    }

    /// Replaces the blob's index tags (Set Blob Tags).
    ///
    /// # Errors
    /// As [`AzureTags::get`].
    pub(crate) async fn put(&self, key: &str, tags: &[(String, String)]) -> Result<()> {
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?><Tags>{}</Tags>"#,
            tag_set_xml(tags)
        );
        let call = Call::xml("set blob tags", Method::PUT, body);
        self.rest.send(key, &self.rest.blob_url(key, "comp=tags"), call).await?;
        Ok(())
    }

    /// The service's clock: the `Date` of a Get Container Properties answer.
    ///
    /// # Errors
    /// [`Error::Store`](crate::error::Error::Store) when the request fails or the answer has no readable date.
    pub(crate) async fn server_time(&self) -> Result<chrono::DateTime<chrono::Utc>> {
        let url = self.rest.container_url("restype=container");
        let call = Call::empty("get container properties", Method::GET);
        let (headers, _) = self.rest.send("", &url, call).await?;
        let date = headers.get(http::header::DATE).and_then(|d| d.to_str().ok());
        date.and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok())
            .map(|d| d.with_timezone(&chrono::Utc))
            .ok_or_else(|| {
                failed(
                    "",
                    "get container properties",
                    format!("no readable Date header: {date:?}"),
                )
            })
    }
}
