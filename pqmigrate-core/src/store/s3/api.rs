//! S3 calls that `object_store` does not expose (object tagging, bucket versioning, object
//! versions, bucket creation), signed with its public SigV4 signer and sent with its HTTP client.

use bytes::Bytes;
use http::Method;
use object_store::aws::{AwsAuthorizer, AwsCredentialProvider};
use object_store::client::{HttpClient, HttpRequest, HttpRequestBody};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::xml::{parse_tag_set, s3_error_message, tag_set_xml, xml_escape};
use crate::error::{Error, Result};
use crate::store::io::CopySource;

pub(crate) use crate::store::tagging::KEY_ENCODE_SET;
pub(super) const QUERY_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A signed-request client for one bucket.
#[derive(Debug, Clone)]
pub struct S3Api {
    pub(super) client: HttpClient,
    pub(super) credentials: AwsCredentialProvider,
    /// `https://host/bucket` (path style) or `https://bucket.host` (virtual hosted), no trailing `/`.
    pub(super) bucket_url: String,
    pub(super) bucket: String,
    pub(super) region: String,
}

impl S3Api {
    pub(crate) fn new(
        client: HttpClient,
        credentials: AwsCredentialProvider,
        bucket_url: String,
        bucket: String,
        region: String,
    ) -> Self {
        Self {
            client,
            credentials,
            bucket_url: bucket_url.trim_end_matches('/').to_string(),
            bucket,
            region,
        }
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub(super) fn object_url(&self, key: &str, query: &str) -> String {
        let mut url = format!("{}/{}", self.bucket_url, utf8_percent_encode(key, KEY_ENCODE_SET));
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        url
    }

    pub(super) async fn send(
        &self,
        op: &'static str,
        what: &str,
        method: Method,
        url: String,
        body: Bytes,
        headers: &[(&str, String)],
    ) -> Result<Bytes> {
        self.send_with_headers(op, what, method, url, body, headers)
            .await
            .map(|(_, body)| body)
    }

    pub(super) async fn send_with_headers(
        &self,
        op: &'static str,
        what: &str,
        method: Method,
        url: String,
        body: Bytes,
        headers: &[(&str, String)],
    ) -> Result<(http::HeaderMap, Bytes)> {
        let fail = |status: u16, message: String| Error::S3Api {
            key: what.to_string(),
            op,
            status,
            message,
        };
        let credential = self
            .credentials
            .get_credential()
            .await
            .map_err(|e| fail(0, format!("no credentials: {e}")))?;
        let mut builder = http::Request::builder().method(method).uri(&url);
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        let mut request: HttpRequest = builder
            .body(HttpRequestBody::from(body))
            .map_err(|e| fail(0, e.to_string()))?;
        AwsAuthorizer::new(&credential, "s3", &self.region)
            .try_authorize(&mut request, None)
            .map_err(|e| fail(0, e.to_string()))?;
        let response = self.client.execute(request).await.map_err(|e| fail(0, e.to_string()))?;
        let status = response.status();
        let (parts, body) = response.into_parts();
        let bytes = body.bytes().await.map_err(|e| fail(0, e.to_string()))?;
        if status.is_success() {
            Ok((parts.headers, bytes))
        } else {
            Err(fail(status.as_u16(), s3_error_message(&bytes)))
        }
    }

    /// A GET on the bucket itself with `query` (versioning, listings).
    pub(super) async fn get_bucket(&self, op: &'static str, what: &str, query: &str) -> Result<Bytes> {
        let url = format!("{}?{query}", self.bucket_url);
        self.send(op, what, Method::GET, url, Bytes::new(), &[]).await
    }

    /// HeadObject (of a version, when given): ETag, version id, size, last modified, and as
    /// attributes the content headers, the user metadata and the storage class (which
    /// `object_store`'s own head does not read), so a rewrite can keep them all.
    ///
    /// # Errors
    /// [`Error::S3Api`] with the HTTP status (404 for a missing object).
    pub async fn head_object(&self, key: &str, version_id: Option<&str>) -> Result<crate::store::io::Head> {
        use object_store::Attribute;
        let query = version_id
            .map(|v| format!("versionId={}", utf8_percent_encode(v, QUERY_ENCODE_SET)))
            .unwrap_or_default();
        let (headers, _) = self
            .send_with_headers(
                "HeadObject",
                key,
                Method::HEAD,
                self.object_url(key, &query),
                Bytes::new(),
                &[],
            )
            .await?;
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let size = text("content-length")
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| Error::S3Api {
                key: key.to_string(),
                op: "HeadObject",
                status: 200,
                message: "no Content-Length in the answer".into(),
            })?;
        let mut attributes = object_store::Attributes::new();
        for (name, attribute) in [
            ("content-type", Attribute::ContentType),
            ("content-encoding", Attribute::ContentEncoding),
            ("content-disposition", Attribute::ContentDisposition),
            ("content-language", Attribute::ContentLanguage),
            ("cache-control", Attribute::CacheControl),
        ] {
            if let Some(value) = text(name) {
                attributes.insert(attribute, value.into());
            }
        }
        // STANDARD is what a write without the header gets anyway.
        if let Some(class) = text("x-amz-storage-class").filter(|c| c != "STANDARD") {
            attributes.insert(Attribute::StorageClass, class.into());
        }
        for (name, value) in &headers {
            if let (Some(suffix), Ok(value)) = (name.as_str().strip_prefix("x-amz-meta-"), value.to_str()) {
                attributes.insert(Attribute::Metadata(suffix.to_string().into()), value.to_string().into());
            }
        }
        Ok(crate::store::io::Head {
            e_tag: text("etag"),
            version_id: text("x-amz-version-id"),
            size,
            last_modified: text("last-modified")
                .and_then(|d| chrono::DateTime::parse_from_rfc2822(&d).ok())
                .map(|d| d.with_timezone(&chrono::Utc)),
            attributes,
            encryption: text("x-amz-server-side-encryption").map(|algorithm| crate::store::io::Encryption {
                algorithm,
                kms_key_id: text("x-amz-server-side-encryption-aws-kms-key-id"),
            }),
        })
    }

    /// The server's clock: the `Date` of an answer to a HEAD of the bucket (one-second
    /// resolution). Lease expiry is judged by it, never by the local clock.
    ///
    /// # Errors
    /// [`Error::S3Api`], also when the answer has no readable `Date`.
    pub async fn server_time(&self) -> Result<chrono::DateTime<chrono::Utc>> {
        let (headers, _) = self
            .send_with_headers(
                "HeadBucket",
                &self.bucket,
                Method::HEAD,
                self.bucket_url.clone(),
                Bytes::new(),
                &[],
            )
            .await?;
        let date = headers.get(http::header::DATE).and_then(|d| d.to_str().ok());
        date.and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok())
            .map(|d| d.with_timezone(&chrono::Utc))
            .ok_or_else(|| Error::S3Api {
                key: self.bucket.clone(),
                op: "HeadBucket",
                status: 200,
                message: format!("no readable Date header: {date:?}"),
            })
    }

    /// GetObjectTagging: the object's tags, in the order the server gives them.
    ///
    /// # Errors
    /// [`Error::S3Api`] with the HTTP status (404 for a missing object).
    #[cfg(feature = "test-support")]
    pub async fn get_tags(&self, key: &str) -> Result<Vec<(String, String)>> {
        self.get_tags_at(key, None).await
    }

    /// GetObjectTagging of one version of the object (the current one when `version_id` is
    /// `None`).
    ///
    /// # Errors
    /// [`Error::S3Api`].
    pub async fn get_tags_at(&self, key: &str, version_id: Option<&str>) -> Result<Vec<(String, String)>> {
        let query = match version_id {
            Some(v) => format!("tagging=&versionId={}", utf8_percent_encode(v, QUERY_ENCODE_SET)),
            None => "tagging=".to_string(),
        };
        let body = self
            .send(
                "GetObjectTagging",
                key,
                Method::GET,
                self.object_url(key, &query),
                Bytes::new(),
                &[],
            )
            .await?;
        parse_tag_set(&body).map_err(|e| Error::S3Api {
            key: key.to_string(),
            op: "GetObjectTagging",
            status: 200,
            message: format!("unreadable answer: {e}"),
        })
    }

    /// PutObjectTagging: replaces the object's tags (for baselining and tests; migrations carry
    /// tags in the data PUT).
    ///
    /// # Errors
    /// [`Error::S3Api`].
    #[cfg(feature = "test-support")]
    pub async fn put_tags(&self, key: &str, tags: &[(String, String)]) -> Result<()> {
        self.put_tags_at(key, None, tags).await
    }

    /// PutObjectTagging of one version of the object (the current one when `version_id` is
    /// `None`).
    ///
    /// # Errors
    /// [`Error::S3Api`].
    pub async fn put_tags_at(&self, key: &str, version_id: Option<&str>, tags: &[(String, String)]) -> Result<()> {
        let xml = format!("<Tagging>{}</Tagging>", tag_set_xml(tags));
        let query = match version_id {
            Some(v) => format!("tagging=&versionId={}", utf8_percent_encode(v, QUERY_ENCODE_SET)),
            None => "tagging=".to_string(),
        };
        self.send_xml("PutObjectTagging", key, self.object_url(key, &query), xml)
            .await
    }

    /// CompleteMultipartUpload, only if the object still has ETag `if_match` when one is given:
    /// the conditional end of a streamed upload. Returns the new ETag and version id.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the object changed (HTTP 412), [`Error::S3Api`] otherwise
    /// (including an error S3 reports in a 200 answer).
    pub async fn complete_multipart_if_match(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[String],
        if_match: Option<&str>,
    ) -> Result<(Option<String>, Option<String>)> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (i, e_tag) in parts.iter().enumerate() {
            xml.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                i + 1,
                xml_escape(e_tag)
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let query = format!("uploadId={}", utf8_percent_encode(upload_id, QUERY_ENCODE_SET));
        let mut headers = vec![("content-type", "application/xml".to_string())];
        if let Some(e_tag) = if_match {
            headers.push(("if-match", e_tag.to_string()));
        }
        let answer = self
            .send_with_headers(
                "CompleteMultipartUpload",
                key,
                Method::POST,
                self.object_url(key, &query),
                Bytes::from(xml),
                &headers,
            )
            .await;
        let (headers, body) = match answer {
            Err(Error::S3Api { status: 412, .. }) => {
                return Err(Error::Conflict {
                    key: key.to_string(),
                    expected: if_match.unwrap_or_default().to_string(),
                });
            }
            other => other?,
        };
        let text = String::from_utf8_lossy(&body);
        if text.contains("<Error>") {
            let message = s3_error_message(&body);
            if message.starts_with("PreconditionFailed") {
                return Err(Error::Conflict {
                    key: key.to_string(),
                    expected: if_match.unwrap_or_default().to_string(),
                });
            }
            return Err(Error::S3Api {
                key: key.to_string(),
                op: "CompleteMultipartUpload",
                status: 200,
                message,
            });
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let e_tag = text
            .split_once("<ETag>")
            .and_then(|(_, rest)| rest.split_once("</ETag>"))
            .map(|(tag, _)| tag.replace("&quot;", "\"").replace("&#34;", "\""))
            .or_else(|| header("etag"));
        Ok((e_tag, header("x-amz-version-id")))
    }

    /// UploadPartCopy: part `part_number` (1-based) of upload `upload_id` of `key` copied by
    /// the server from `source`'s range, only while the source keeps its ETag (and from its
    /// version, where given). Returns the part's ETag.
    ///
    /// # Errors
    /// [`Error::Conflict`] naming the source when it changed (HTTP 412), [`Error::S3Api`]
    /// otherwise (including an error reported in a 200 answer, and a server without the call).
    pub async fn upload_part_copy(
        &self,
        key: &str,
        upload_id: &str,
        part_number: usize,
        source: &CopySource,
    ) -> Result<String> {
        let query = format!(
            "partNumber={part_number}&uploadId={}",
            utf8_percent_encode(upload_id, QUERY_ENCODE_SET)
        );
        let mut copy_source = format!("{}/{}", self.bucket, utf8_percent_encode(&source.key, KEY_ENCODE_SET));
        if let Some(version) = &source.version_id {
            copy_source.push_str(&format!(
                "?versionId={}",
                utf8_percent_encode(version, QUERY_ENCODE_SET)
            ));
        }
        let headers = [
            ("x-amz-copy-source", copy_source),
            (
                "x-amz-copy-source-range",
                format!("bytes={}-{}", source.range.start, source.range.end.saturating_sub(1)),
            ),
            ("x-amz-copy-source-if-match", source.e_tag.clone()),
        ];
        let conflict = || Error::Conflict {
            key: source.key.clone(),
            expected: source.e_tag.clone(),
        };
        let body = match self
            .send(
                "UploadPartCopy",
                key,
                Method::PUT,
                self.object_url(key, &query),
                Bytes::new(),
                &headers,
            )
            .await
        {
            Err(Error::S3Api { status: 412, .. }) => return Err(conflict()),
            other => other?,
        };
        let text = String::from_utf8_lossy(&body);
        if text.contains("<Error>") {
            let message = s3_error_message(&body);
            if message.starts_with("PreconditionFailed") {
                return Err(conflict());
            }
            return Err(Error::S3Api {
                key: key.to_string(),
                op: "UploadPartCopy",
                status: 200,
                message,
            });
        }
        text.split_once("<ETag>")
            .and_then(|(_, rest)| rest.split_once("</ETag>"))
            .map(|(tag, _)| tag.replace("&quot;", "\"").replace("&#34;", "\""))
            .ok_or_else(|| Error::S3Api {
                key: key.to_string(),
                op: "UploadPartCopy",
                status: 200,
                message: format!("no ETag in the answer: {text}"),
            })
    }

    /// PutObject of `body` at `key`, exactly as given: no condition, tags or metadata (test
    /// set-up of keys other clients cannot name, such as `a//b` or a control character).
    ///
    /// # Errors
    /// [`Error::S3Api`].
    #[cfg(feature = "test-support")]
    pub async fn put_object(&self, key: &str, body: Bytes) -> Result<()> {
        self.send("PutObject", key, Method::PUT, self.object_url(key, ""), body, &[])
            .await
            .map(|_| ())
    }

    pub(super) async fn send_xml(&self, op: &'static str, what: &str, url: String, xml: String) -> Result<()> {
        use base64::Engine;
        use md5::Digest;
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(xml.as_bytes()));
        self.send(
            op,
            what,
            Method::PUT,
            url,
            Bytes::from(xml),
            &[("content-md5", md5), ("content-type", "application/xml".into())],
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests;
