//! Bucket-level S3 calls: listings (objects, open uploads, versions), bucket creation and
//! versioning.

use bytes::Bytes;
use http::Method;

use super::api::{QUERY_ENCODE_SET, S3Api};
use super::xml::{ListVersionsResult, parse_list_objects};
use crate::error::{Error, Result};
use crate::store::io::{Listed, ObjectVersion};
use percent_encoding::utf8_percent_encode;

impl S3Api {
    /// One page of ListObjectsV2 under `prefix`, with keys URL-encoded on the wire
    /// (`encoding-type=url`) and decoded here, so a key with a control character lists like any
    /// other. Returns the objects and the continuation token of the next page.
    ///
    /// # Errors
    /// [`Error::S3Api`].
    pub async fn list_objects(
        &self,
        prefix: &str,
        continuation: Option<&str>,
        max_keys: Option<usize>,
    ) -> Result<(Vec<Listed>, Option<String>)> {
        // Query parameters in the order SigV4 sorts them.
        let mut query = String::new();
        if let Some(token) = continuation {
            query.push_str(&format!(
                "continuation-token={}&",
                utf8_percent_encode(token, QUERY_ENCODE_SET)
            ));
        }
        query.push_str("encoding-type=url&list-type=2");
        if let Some(max) = max_keys {
            query.push_str(&format!("&max-keys={max}"));
        }
        query.push_str(&format!("&prefix={}", utf8_percent_encode(prefix, QUERY_ENCODE_SET)));
        let body = self.get_bucket("ListObjectsV2", prefix, &query).await?;
        parse_list_objects(prefix, &body)
    }

    /// ListMultipartUploads under `prefix` (first page): the keys of uploads still open. A
    /// migration leaves none behind.
    ///
    /// # Errors
    /// [`Error::S3Api`].
    #[cfg(feature = "test-support")]
    pub async fn open_multipart_uploads(&self, prefix: &str) -> Result<Vec<String>> {
        let query = format!("prefix={}&uploads=", utf8_percent_encode(prefix, QUERY_ENCODE_SET));
        let body = self.get_bucket("ListMultipartUploads", prefix, &query).await?;
        let text = String::from_utf8_lossy(&body);
        Ok(text
            .split("<Upload>")
            .skip(1)
            .filter_map(|upload| {
                upload
                    .split_once("<Key>")
                    .and_then(|(_, rest)| rest.split_once("</Key>"))
            })
            .map(|(key, _)| key.to_string())
            .collect())
    }

    /// CreateBucket (succeeds when the bucket already exists and is ours).
    ///
    /// # Errors
    /// [`Error::S3Api`].
    pub async fn create_bucket(&self) -> Result<()> {
        match self
            .send(
                "CreateBucket",
                &self.bucket,
                Method::PUT,
                self.bucket_url.clone(),
                Bytes::new(),
                &[],
            )
            .await
        {
            Err(Error::S3Api { status: 409, .. }) | Ok(_) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// PutBucketVersioning.
    ///
    /// # Errors
    /// [`Error::S3Api`].
    pub async fn set_versioning(&self, enabled: bool) -> Result<()> {
        let status = if enabled { "Enabled" } else { "Suspended" };
        let xml = format!(
            "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>{status}</Status></VersioningConfiguration>"
        );
        self.send_xml(
            "PutBucketVersioning",
            &self.bucket,
            format!("{}?versioning=", self.bucket_url),
            xml,
        )
        .await
    }

    /// GetBucketVersioning: whether versioning is enabled.
    ///
    /// # Errors
    /// [`Error::S3Api`].
    pub async fn versioning_enabled(&self) -> Result<bool> {
        let body = self
            .get_bucket("GetBucketVersioning", &self.bucket, "versioning=")
            .await?;
        Ok(String::from_utf8_lossy(&body).contains("<Status>Enabled</Status>"))
    }

    /// ListObjectVersions under `prefix`, every page followed.
    ///
    /// # Errors
    /// [`Error::S3Api`].
    pub async fn list_versions(&self, prefix: &str) -> Result<Vec<ObjectVersion>> {
        let mut out = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut query = format!("prefix={}&versions=", utf8_percent_encode(prefix, QUERY_ENCODE_SET));
            if let Some((key, version)) = &markers {
                query = format!(
                    "key-marker={}&prefix={}&version-id-marker={}&versions=",
                    utf8_percent_encode(key, QUERY_ENCODE_SET),
                    utf8_percent_encode(prefix, QUERY_ENCODE_SET),
                    utf8_percent_encode(version, QUERY_ENCODE_SET)
                );
            }
            let body = self.get_bucket("ListObjectVersions", prefix, &query).await?;
            let page: ListVersionsResult = quick_xml::de::from_reader(body.as_ref()).map_err(|e| Error::S3Api {
                key: prefix.to_string(),
                op: "ListObjectVersions",
                status: 200,
                message: format!("unreadable answer: {e}"),
            })?;
            for v in page.versions {
                out.push(ObjectVersion {
                    key: v.key,
                    version_id: v.version_id,
                    is_latest: v.is_latest,
                    e_tag: v.e_tag.unwrap_or_default(),
                    delete_marker: false,
                });
            }
            for v in page.delete_markers {
                out.push(ObjectVersion {
                    key: v.key,
                    version_id: v.version_id,
                    is_latest: v.is_latest,
                    e_tag: String::new(),
                    delete_marker: true,
                });
            }
            match (page.is_truncated, page.next_key_marker, page.next_version_id_marker) {
                (true, Some(k), Some(v)) => markers = Some((k, v)),
                _ => return Ok(out),
            }
        }
    }
}
