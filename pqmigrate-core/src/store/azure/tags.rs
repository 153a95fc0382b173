//! Azure blob index tags, which `object_store` writes with a blob (`x-ms-tags`) but cannot read
//! back: Get Blob Tags and Set Blob Tags (`?comp=tags`), signed with `object_store`'s own
//! Azure credentials and authorizer.

use bytes::Bytes;
use http::Method;
use object_store::azure::{AzureAuthorizer, AzureCredentialProvider};
use object_store::client::{HttpClient, HttpRequest, HttpRequestBody};
use percent_encoding::utf8_percent_encode;

use crate::error::{Error, Result};
use crate::store::tagging::{KEY_ENCODE_SET, parse_tag_set, tag_set_xml};

/// The service version sent: blob index tags need 2019-12-12 or later.
const VERSION: &str = "2021-08-06";

/// Reads and writes the index tags of the blobs of one container.
#[derive(Debug, Clone)]
pub(crate) struct AzureTags {
    client: HttpClient,
    credentials: AzureCredentialProvider,
    /// `https://account.blob.core.windows.net/container` or, on an emulator,
    /// `http://host:port/account/container`; no trailing `/`.
    container_url: String,
    account: String,
}

impl AzureTags {
    pub(crate) fn new(
        client: HttpClient,
        credentials: AzureCredentialProvider,
        container_url: String,
        account: String,
    ) -> Self {
        Self {
            client,
            credentials,
            container_url: container_url.trim_end_matches('/').to_string(),
            account,
        }
    }

    fn url(&self, key: &str) -> String {
        format!(
            "{}/{}?comp=tags",
            self.container_url,
            utf8_percent_encode(key, KEY_ENCODE_SET)
        )
    }

    /// The blob's index tags (Get Blob Tags).
    ///
    /// # Errors
    /// [`Error::Store`] naming `key`: not found (404), or the service's answer.
    pub(crate) async fn get(&self, key: &str) -> Result<Vec<(String, String)>> {
        let (_, body) = self
            .send(key, &self.url(key), "get blob tags", Method::GET, Bytes::new())
            .await?;
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
        self.send(key, &self.url(key), "set blob tags", Method::PUT, Bytes::from(body))
            .await?;
        Ok(())
    }

    /// The service's clock: the `Date` of a Get Container Properties answer.
    ///
    /// # Errors
    /// [`Error::Store`] when the request fails or the answer has no readable date.
    pub(crate) async fn server_time(&self) -> Result<chrono::DateTime<chrono::Utc>> {
        let url = format!("{}?restype=container", self.container_url);
        let (headers, _) = self
            .send("", &url, "get container properties", Method::GET, Bytes::new())
            .await?;
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

    async fn send(
        &self,
        key: &str,
        url: &str,
        op: &'static str,
        method: Method,
        body: Bytes,
    ) -> Result<(http::HeaderMap, Bytes)> {
        let credential = self
            .credentials
            .get_credential()
            .await
            .map_err(|e| Error::store(key, op, e))?;
        let mut builder = http::Request::builder()
            .method(method)
            .uri(url)
            .header("x-ms-version", VERSION);
        if !body.is_empty() {
            builder = builder
                .header("Content-Type", "application/xml; charset=UTF-8")
                .header("Content-Length", body.len().to_string());
        }
        let mut request: HttpRequest = builder
            .body(HttpRequestBody::from(body))
            .map_err(|e| failed(key, op, e.to_string()))?;
        AzureAuthorizer::new(&credential, &self.account)
            .try_authorize(&mut request)
            .map_err(|e| Error::store(key, op, e))?;
        let response = self
            .client
            .execute(request)
            .await
            .map_err(|e| failed(key, op, e.to_string()))?;
        let status = response.status();
        let (parts, body) = response.into_parts();
        let bytes = body.bytes().await.map_err(|e| failed(key, op, e.to_string()))?;
        if status.is_success() {
            return Ok((parts.headers, bytes));
        }
        let message = format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes).trim());
        if status.as_u16() == 404 {
            return Err(Error::store(
                key,
                op,
                object_store::Error::NotFound {
                    path: key.to_string(),
                    source: message.into(),
                },
            ));
        }
        Err(failed(key, op, message))
    }
}

/// A failed call, as the store error `object_store` would give (transient unless the answer is
/// a lasting one).
fn failed(key: &str, op: &'static str, message: String) -> Error {
    Error::store(
        key,
        op,
        object_store::Error::Generic {
            store: "MicrosoftAzure",
            source: message.into(),
        },
    )
}
