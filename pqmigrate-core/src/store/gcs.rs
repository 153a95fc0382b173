//! Google Cloud Storage through `object_store`'s client: every write one request conditioned on
//! the generation (`x-goog-if-generation-match`, 0 to create), the generation playing the part of
//! the ETag (reads are pinned to the generation seen), the version in custom metadata beside the
//! footer. No object versions this tool can list, so `rollback` is refused there.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::gcp::{GoogleCloudStorage, GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::{PutMode, PutOptions, PutPayload, UpdateVersion};

use super::io::{Capabilities, Head, ListPage, ReadOptions, StoreIo, WriteOptions, Written, no_versions};
use super::plumbing::{self, client_options, conflict_or, put_mode};
use super::{Store, StoreOptions, object_path};
use crate::error::{Error, Result};

/// The service-account key object_store takes for an emulator: no OAuth token is asked for.
const EMULATOR_KEY: &str = r#"{"private_key": "", "private_key_id": "", "client_email": "", "disable_oauth": true}"#;

/// A GCS bucket.
#[derive(Debug)]
pub(crate) struct GcsIo {
    inner: GoogleCloudStorage,
}

/// A GCS bucket. Credentials come from the standard variables (`GOOGLE_SERVICE_ACCOUNT`,
/// `GOOGLE_APPLICATION_CREDENTIALS`, application default credentials). An endpoint (an
/// emulator such as fake-gcs-server) is addressed without credentials.
pub(crate) fn open(bucket: &str, options: &StoreOptions) -> Result<Store> {
    let mut builder = GoogleCloudStorageBuilder::from_env().with_bucket_name(bucket);
    let endpoint = options.gcs_endpoint.as_deref();
    if let Some(endpoint) = endpoint {
        // An emulator takes requests without a token: a key that turns OAuth off.
        builder = builder
            .with_config(GoogleConfigKey::BaseUrl, endpoint.trim_end_matches('/'))
            .with_service_account_key(EMULATOR_KEY);
    }
    let inner = builder
        .with_client_options(client_options(endpoint))
        .with_retry(options.retry_config())
        .build()
        .map_err(|e| Error::Config(format!("GCS bucket {bucket}: {e}")))?;
    Ok(Store::from_io(Arc::new(GcsIo { inner }), format!("gs://{bucket}")))
}

/// The generation, as the "ETag" that conditions and pinned reads use (GCS preconditions are on
/// the generation, and it names one content exactly).
fn generation_as_e_tag(mut head: Head) -> Head {
    head.e_tag = head.version_id.take().or(head.e_tag);
    head
}

#[async_trait]
impl StoreIo for GcsIo {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            tags: false,
            user_metadata: true,
            multipart: false,
            versions: false,
            copy_parts: false,
            largest_copied_part: super::MAX_PART,
            reads_in_flight: 4,
            parts_in_any_order: false,
        }
    }

    async fn list(&self, prefix: &str, page: Option<String>, max_keys: Option<usize>) -> Result<ListPage> {
        plumbing::list_page(&self.inner, prefix, page, max_keys, |meta| meta.version.or(meta.e_tag)).await
    }

    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        plumbing::list_dirs(&self.inner, prefix).await
    }

    async fn head(&self, key: &str, version_id: Option<&str>) -> Result<Head> {
        if version_id.is_some() {
            return Err(no_versions(key));
        }
        plumbing::head(&self.inner, key, None).await.map(generation_as_e_tag)
    }

    async fn get(&self, key: &str, mut options: ReadOptions) -> Result<(Head, Bytes)> {
        if options.version_id.is_some() {
            return Err(no_versions(key));
        }
        // A read pinned to what was seen is pinned to its generation.
        options.version_id = options.if_match.take();
        let (head, bytes) = plumbing::get(&self.inner, key, options).await?;
        Ok((generation_as_e_tag(head), bytes))
    }

    async fn put(&self, key: &str, data: PutPayload, options: WriteOptions) -> Result<Written> {
        let mode = match put_mode(key, &options.condition)? {
            // What is not a generation can never be this object's generation.
            PutMode::Update(UpdateVersion { e_tag: Some(e_tag), .. }) if !e_tag.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(Error::Conflict {
                    key: key.to_string(),
                    expected: e_tag,
                });
            }
            PutMode::Update(UpdateVersion { e_tag, .. }) => PutMode::Update(UpdateVersion {
                e_tag: None,
                version: e_tag,
            }),
            mode => mode,
        };
        let put = PutOptions {
            mode,
            attributes: options.attributes,
            ..PutOptions::default()
        };
        let result = object_store::ObjectStore::put_opts(&self.inner, &object_path(key)?, data, put)
            .await
            .map_err(|e| conflict_or(key, &options.condition, "put", e))?;
        Ok(Written {
            e_tag: result.version.or(result.e_tag),
            version_id: None,
        })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        plumbing::delete(&self.inner, key).await
    }
}
