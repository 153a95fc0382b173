//! The S3 backend: object calls through `object_store`'s client, and the calls it does not
//! expose (tags, conditional multipart completion, versions, the server's clock) signed with its
//! public signer ([`api`]). Opened from `s3://bucket` with the endpoint, region and addressing
//! style the options and the standard `AWS_*` variables give.

// Raw S3 calls: the crate's own, and the tests' through `test_support`.
#[cfg_attr(not(feature = "test-support"), allow(unreachable_pub))]
pub(crate) mod api;
#[cfg_attr(not(feature = "test-support"), allow(unreachable_pub))]
mod bucket;
pub(crate) mod xml;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::client::{HttpConnector, ReqwestConnector};
use object_store::multipart::MultipartStore;
use object_store::{ObjectStore, PutMultipartOptions, PutOptions, PutPayload, TagSet};

use super::io::{
    Capabilities, Condition, CopySource, Encryption, Head, ListPage, ObjectVersion, ReadOptions, StoreIo, WriteOptions,
    Written,
};
use super::plumbing::{self, conflict_or, put_mode};
use super::{Store, StoreOptions, object_path};
use crate::error::{Error, Result};
#[cfg_attr(not(feature = "test-support"), allow(unreachable_pub))]
pub use api::S3Api;

/// An S3 bucket. Credentials and defaults come from the standard `AWS_*` environment variables;
/// `options` override endpoint and region. A custom endpoint is addressed path-style.
///
/// # Errors
/// [`Error::Config`] when the client cannot be built.
pub(crate) fn open(bucket: &str, options: &StoreOptions) -> Result<Store> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(endpoint) = &options.endpoint {
        builder = builder.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
    }
    if let Some(region) = &options.region {
        builder = builder.with_region(region);
    }
    let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
    let allow_http = endpoint.as_deref().is_some_and(|e| e.starts_with("http://"));
    builder = builder.with_allow_http(allow_http).with_retry(options.retry_config());
    let region = builder
        .get_config_value(&AmazonS3ConfigKey::Region)
        .unwrap_or_else(|| "us-east-1".to_string());
    let virtual_hosted = builder
        .get_config_value(&AmazonS3ConfigKey::VirtualHostedStyleRequest)
        .is_some_and(|v| v == "true");
    let s3 = builder
        .clone()
        .build()
        .map_err(|e| Error::Config(format!("S3 bucket {bucket}: {e}")))?;
    let bucket_url = match (&endpoint, virtual_hosted) {
        (Some(endpoint), false) => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
        (Some(endpoint), true) => endpoint.trim_end_matches('/').to_string(),
        (None, _) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
    };
    let client = ReqwestConnector::default()
        .connect(&object_store::ClientOptions::new().with_allow_http(allow_http))
        .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
    let api = Arc::new(S3Api::new(
        client,
        s3.credentials().clone(),
        bucket_url,
        bucket.to_string(),
        region,
    ));
    let io = Arc::new(S3Io::new(Arc::new(s3), api.clone(), builder));
    Ok(Store::from_io(io, format!("s3://{bucket}")).with_s3_api(api))
}

/// An S3 bucket (or an S3-compatible server).
#[derive(Debug)]
pub(crate) struct S3Io {
    s3: Arc<AmazonS3>,
    api: Arc<S3Api>,
    /// The client's configuration, for clients that encrypt otherwise.
    builder: AmazonS3Builder,
    /// The encryption the client itself asks for, if any.
    configured: Option<Encryption>,
    /// Clients that ask for another encryption, made when first needed.
    encrypting: Mutex<HashMap<Encryption, Arc<AmazonS3>>>,
}

fn encryption_key(name: &str) -> AmazonS3ConfigKey {
    name.parse().expect("a configuration key object_store knows")
}

impl S3Io {
    pub(crate) fn new(s3: Arc<AmazonS3>, api: Arc<S3Api>, builder: AmazonS3Builder) -> Self {
        let configured = builder
            .get_config_value(&encryption_key("aws_server_side_encryption"))
            .map(|algorithm| Encryption {
                algorithm,
                kms_key_id: builder.get_config_value(&encryption_key("aws_sse_kms_key_id")),
            });
        Self {
            s3,
            api,
            builder,
            configured,
            encrypting: Mutex::default(),
        }
    }

    /// The client that writes with `encryption` (the previous version's), so a rewrite keeps
    /// how an object is encrypted: the store's own client when it asks for the same or none is
    /// asked for.
    fn client_for(&self, key: &str, encryption: Option<&Encryption>) -> Result<Arc<AmazonS3>> {
        let Some(wanted) = encryption.filter(|e| Some(*e) != self.configured.as_ref()) else {
            return Ok(self.s3.clone());
        };
        let mut clients = self.encrypting.lock().expect("encrypting clients");
        if let Some(client) = clients.get(wanted) {
            return Ok(client.clone());
        }
        let mut builder = self
            .builder
            .clone()
            .with_config(encryption_key("aws_server_side_encryption"), &wanted.algorithm);
        if let Some(kms) = &wanted.kms_key_id {
            builder = builder.with_config(encryption_key("aws_sse_kms_key_id"), kms);
        }
        let client = Arc::new(builder.build().map_err(|e| {
            Error::Config(format!(
                "{key}: cannot write with its encryption {} {:?}: {e}",
                wanted.algorithm, wanted.kms_key_id
            ))
        })?);
        clients.insert(wanted.clone(), client.clone());
        Ok(client)
    }
}

#[async_trait]
impl StoreIo for S3Io {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            tags: true,
            user_metadata: true,
            multipart: true,
            versions: true,
            copy_parts: true,
            largest_copied_part: super::MAX_PART,
            reads_in_flight: 4,
            parts_in_any_order: true,
        }
    }

    /// ListObjectsV2 through the signed client rather than object_store's listing, which fails
    /// a whole page on one key it cannot represent (`a//b`, `./x`, a control character): here
    /// every key is listed as the store names it, and such a key fails on its own later.
    async fn list(&self, prefix: &str, page: Option<String>, max_keys: Option<usize>) -> Result<ListPage> {
        let (objects, next) = self.api.list_objects(prefix, page.as_deref(), max_keys).await?;
        Ok(ListPage { objects, next })
    }

    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        plumbing::list_dirs(self.s3.as_ref(), prefix).await
    }

    /// A raw HeadObject, so the storage class comes with the other attributes.
    async fn head(&self, key: &str, version_id: Option<&str>) -> Result<Head> {
        object_path(key)?;
        self.api.head_object(key, version_id).await
    }

    async fn get(&self, key: &str, options: ReadOptions) -> Result<(Head, Bytes)> {
        plumbing::get(self.s3.as_ref(), key, options).await
    }

    async fn put(&self, key: &str, data: PutPayload, options: WriteOptions) -> Result<Written> {
        let put = PutOptions {
            mode: put_mode(key, &options.condition)?,
            tags: tag_set(&options.tags),
            attributes: options.attributes,
            ..PutOptions::default()
        };
        let result = self
            .client_for(key, options.encryption.as_ref())?
            .put_opts(&object_path(key)?, data, put)
            .await
            .map_err(|e| conflict_or(key, &options.condition, "put", e))?;
        Ok(Written {
            e_tag: result.e_tag,
            version_id: result.version,
        })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        plumbing::delete(self.s3.as_ref(), key).await
    }

    async fn get_tags(&self, key: &str, version_id: Option<&str>) -> Result<Vec<(String, String)>> {
        self.api.get_tags_at(key, version_id).await
    }

    async fn put_tags(&self, key: &str, version_id: Option<&str>, tags: &[(String, String)]) -> Result<()> {
        self.api.put_tags_at(key, version_id, tags).await
    }

    async fn create_multipart(&self, key: &str, options: &WriteOptions) -> Result<String> {
        let create = PutMultipartOptions {
            tags: tag_set(&options.tags),
            attributes: options.attributes.clone(),
            ..PutMultipartOptions::default()
        };
        self.client_for(key, options.encryption.as_ref())?
            .create_multipart_opts(&object_path(key)?, create)
            .await
            .map_err(|e| Error::store(key, "create multipart upload", e))
    }

    async fn upload_part(&self, key: &str, upload_id: &str, index: usize, data: PutPayload) -> Result<String> {
        let upload_id = upload_id.to_string();
        self.s3
            .put_part(&object_path(key)?, &upload_id, index, data)
            .await
            .map(|part| part.content_id)
            .map_err(|e| Error::store(key, "upload part", e))
    }

    async fn upload_part_copy(&self, key: &str, upload_id: &str, index: usize, source: &CopySource) -> Result<String> {
        // A copy the server turns down as such (an error in a 200 answer, a bad request, access
        // denied, not allowed, not implemented) is its lasting answer: it does not copy parts.
        self.api
            .upload_part_copy(key, upload_id, index + 1, source)
            .await
            .map_err(|e| match e {
                Error::S3Api {
                    key,
                    status: 200 | 400 | 403 | 405 | 501,
                    message,
                    ..
                } => Error::Unsupported {
                    key,
                    what: "copy parts in place",
                    message,
                },
                e => e,
            })
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[String],
        condition: &Condition,
    ) -> Result<Written> {
        let if_match = match condition {
            Condition::None => None,
            Condition::IfMatch(e_tag) => Some(e_tag.as_str()),
            Condition::Create => {
                return Err(Error::Config(format!(
                    "{key}: a multipart upload cannot be made conditional on the key being free"
                )));
            }
        };
        let (e_tag, version_id) = self
            .api
            .complete_multipart_if_match(key, upload_id, parts, if_match)
            .await?;
        Ok(Written { e_tag, version_id })
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()> {
        let upload_id = upload_id.to_string();
        self.s3
            .abort_multipart(&object_path(key)?, &upload_id)
            .await
            .map_err(|e| Error::store(key, "abort multipart upload", e))
    }

    async fn list_versions(&self, prefix: &str) -> Result<Vec<ObjectVersion>> {
        self.api.list_versions(prefix).await
    }

    async fn versioning_enabled(&self) -> Result<bool> {
        self.api.versioning_enabled().await
    }

    /// The server's `Date`, from a HeadBucket.
    async fn server_time(&self) -> Result<chrono::DateTime<chrono::Utc>> {
        self.api.server_time().await
    }
}

/// Tags as `object_store` sends them.
fn tag_set(tags: &[(String, String)]) -> TagSet {
    let mut set = TagSet::default();
    for (k, v) in tags {
        set.push(k, v);
    }
    set
}
