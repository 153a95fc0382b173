//! Signed Blob service requests beside `object_store`'s client, for what it does not expose
//! (index tags read back, blocks staged and committed under a condition): signed with
//! `object_store`'s own Azure credentials and authorizer, answers mapped to the errors its
//! client would give.

use bytes::Bytes;
use http::Method;
use object_store::azure::{AzureAuthorizer, AzureCredentialProvider};
use object_store::client::{HttpClient, HttpRequest, HttpRequestBody};
use percent_encoding::utf8_percent_encode;

use crate::error::{Error, Result};
use crate::store::tagging::KEY_ENCODE_SET;

/// The service version sent: blob index tags need 2019-12-12 or later, blocks of up to
/// 4000 MiB (staged or copied from a URL) 2019-12-12 too.
const VERSION: &str = "2021-08-06";

/// One container's Blob service, for signed requests.
#[derive(Debug, Clone)]
pub(crate) struct AzureRest {
    client: HttpClient,
    credentials: AzureCredentialProvider,
    /// `https://account.blob.core.windows.net/container` or, on an emulator,
    /// `http://host:port/account/container`; no trailing `/`.
    container_url: String,
    account: String,
}

/// A request to send: its method, its extra headers and its body.
pub(crate) struct Call {
    pub(crate) op: &'static str,
    pub(crate) method: Method,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: HttpRequestBody,
}

impl Call {
    /// A call without a body.
    pub(crate) fn empty(op: &'static str, method: Method) -> Self {
        Self {
            op,
            method,
            headers: Vec::new(),
            body: HttpRequestBody::empty(),
        }
    }

    /// A call with an XML body.
    pub(crate) fn xml(op: &'static str, method: Method, body: String) -> Self {
        let mut call = Self {
            body: HttpRequestBody::from(body),
            ..Self::empty(op, method)
        };
        call.headers
            .push(("Content-Type".into(), "application/xml; charset=UTF-8".into()));
        call
    }

    /// Adds a header.
    pub(crate) fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

impl AzureRest {
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

    /// The container's URL, with `query` (`restype=container`).
    pub(crate) fn container_url(&self, query: &str) -> String {
        format!("{}?{query}", self.container_url)
    }

    /// A blob's URL, with `query` (`comp=tags`).
    pub(crate) fn blob_url(&self, key: &str, query: &str) -> String {
        format!(
            "{}/{}?{query}",
            self.container_url,
            utf8_percent_encode(key, KEY_ENCODE_SET)
        )
    }

    /// Sends `call` to `url`, signed; the answer's headers and body on success.
    ///
    /// # Errors
    /// [`Error::Store`] naming `key` and the call, with the error `object_store`'s client
    /// would give: not found (404), a failed precondition (412, or 304), an existing blob
    /// (409), permission denied (401, 403), not supported for another lasting refusal (4xx),
    /// a transient failure otherwise.
    pub(crate) async fn send(&self, key: &str, url: &str, call: Call) -> Result<(http::HeaderMap, Bytes)> {
        let op = call.op;
        let credential = self
            .credentials
            .get_credential()
            .await
            .map_err(|e| Error::store(key, op, e))?;
        // A PUT states its length, zero too (Put Block From URL must say it has no body).
        let body_len = call.body.content_length();
        let sized = body_len > 0 || call.method == Method::PUT;
        let mut builder = http::Request::builder()
            .method(call.method)
            .uri(url)
            .header("x-ms-version", VERSION);
        if sized {
            builder = builder.header("Content-Length", body_len.to_string());
        }
        for (name, value) in &call.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let mut request: HttpRequest = builder.body(call.body).map_err(|e| failed(key, op, e.to_string()))?;
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
        Err(Error::store(key, op, answer_error(key, status.as_u16(), message)))
    }
}

/// The `object_store` error of a refused answer.
fn answer_error(key: &str, status: u16, message: String) -> object_store::Error {
    use object_store::Error as E;
    let path = key.to_string();
    let source = message.into();
    match status {
        404 => E::NotFound { path, source },
        304 | 412 => E::Precondition { path, source },
        409 => E::AlreadyExists { path, source },
        401 | 403 => E::PermissionDenied { path, source },
        408 | 429 => E::Generic {
            store: "MicrosoftAzure",
            source,
        },
        400..=499 => E::NotSupported { source },
        _ => E::Generic {
            store: "MicrosoftAzure",
            source,
        },
    }
}

/// A failed call, as the store error `object_store` would give (transient unless the answer is
/// a lasting one).
pub(crate) fn failed(key: &str, op: &'static str, message: String) -> Error {
    Error::store(
        key,
        op,
        object_store::Error::Generic {
            store: "MicrosoftAzure",
            source: message.into(),
        },
    )
}
