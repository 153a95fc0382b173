//! Azure Blob Storage through `object_store`'s client: a small write is one request conditioned
//! on the ETag (`If-Match`, or `If-None-Match: *` to create), a large one is staged in blocks and
//! committed under the same condition, the region kept in place copied by the service
//! ([`blocks`]); the blob index tags in the part of S3's object tags (written with each blob as
//! `x-ms-tags`, read and set beside `object_store` in [`tags`]), the service's clock from its
//! `Date` header. Metadata names must be C# identifiers
//! there, so the engine's own names are written with `_` and read back with `-`. No object
//! versions this tool can list, so `rollback` is refused there.

mod blocks;
mod rest;
mod tags;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::azure::{AzureConfigKey, MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::client::{HttpConnector, ReqwestConnector};
use object_store::signer::Signer;
use object_store::{Attribute, Attributes, PutOptions, PutPayload};

use super::io::{
    Capabilities, Condition, CopySource, Head, ListPage, ReadOptions, StoreIo, WriteOptions, Written, no_versions,
};
use super::plumbing::{self, client_options, conflict_or, put_mode};
use super::{Store, StoreOptions, object_path};
use crate::error::{Error, Result};
use blocks::Uploads;
use rest::AzureRest;
use tags::AzureTags;

/// How long the signed URL a copied block is read from stays valid.
const COPY_SOURCE_VALIDITY: Duration = Duration::from_secs(60 * 60);

/// An Azure Blob container, with its blob index tags and the block uploads under way.
#[derive(Debug)]
pub(crate) struct AzureIo {
    inner: MicrosoftAzure,
    rest: AzureRest,
    tags: AzureTags,
    uploads: Uploads,
}

/// An Azure Blob container. The account and its credentials come from the standard
/// `AZURE_STORAGE_*` variables; an endpoint (Azurite: `http://127.0.0.1:10000/<account>`) replaces
/// the account's own.
pub(crate) fn open(container: &str, account: Option<&str>, options: &StoreOptions) -> Result<Store> {
    let mut builder = MicrosoftAzureBuilder::from_env().with_container_name(container);
    if let Some(account) = account {
        builder = builder.with_account(account);
    }
    let endpoint = options.azure_endpoint.as_deref();
    if let Some(endpoint) = endpoint {
        builder = builder.with_config(AzureConfigKey::Endpoint, endpoint.trim_end_matches('/'));
    }
    let builder = builder
        .with_client_options(client_options(endpoint))
        .with_retry(options.retry_config());
    let account = builder
        .get_config_value(&AzureConfigKey::AccountName)
        .unwrap_or_default();
    let container_url = match endpoint {
        Some(endpoint) => format!("{}/{container}", endpoint.trim_end_matches('/')),
        None => format!("https://{account}.blob.core.windows.net/{container}"),
    };
    let inner = builder
        .build()
        .map_err(|e| Error::Config(format!("Azure container {container}: {e}")))?;
    let http = ReqwestConnector::default()
        .connect(&client_options(endpoint))
        .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
    let rest = AzureRest::new(http, inner.credentials().clone(), container_url, account);
    let io = AzureIo {
        inner,
        tags: AzureTags::new(rest.clone()),
        rest,
        uploads: Uploads::default(),
    };
    Ok(Store::from_io(Arc::new(io), format!("az://{container}")))
}

/// The container and account of an `abfs[s]://container@account.dfs.core.windows.net/...` URL,
/// or the container of `az://container/...` (the account from the environment).
pub(crate) fn container_of(url: &url::Url) -> Result<(String, Option<String>)> {
    let host = url.host_str().unwrap_or_default();
    let container = match url.username() {
        "" => host.to_string(),
        container => container.to_string(),
    };
    if container.is_empty() {
        return Err(Error::Config(format!("{url}: no container")));
    }
    let account = (!url.username().is_empty())
        .then(|| host.split('.').next().map(str::to_string))
        .flatten();
    Ok((container, account))
}

/// The engine's metadata names (`pqm-run`) as Azure takes them: metadata names there must be C#
/// identifiers, so `-` becomes `_` in the engine's own names.
fn azure_name(name: &str) -> String {
    match name.strip_prefix("pqm-") {
        Some(rest) => format!("pqm_{}", rest.replace('-', "_")),
        None => name.to_string(),
    }
}

/// The inverse of [`azure_name`] for the engine's own names.
fn engine_name(name: &str) -> String {
    match name.strip_prefix("pqm_") {
        Some(rest) => format!("pqm-{}", rest.replace('_', "-")),
        None => name.to_string(),
    }
}

/// `attributes` with every metadata name passed through `rename`.
fn renamed(attributes: &Attributes, rename: fn(&str) -> String) -> Attributes {
    attributes
        .iter()
        .map(|(attribute, value)| match attribute {
            Attribute::Metadata(name) => (Attribute::Metadata(rename(name).into()), value.clone()),
            other => (other.clone(), value.clone()),
        })
        .collect()
}

fn named_back(mut head: Head) -> Head {
    head.attributes = renamed(&head.attributes, engine_name);
    head
}

#[async_trait]
impl StoreIo for AzureIo {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            tags: true,
            user_metadata: true,
            multipart: true,
            versions: false,
            copy_parts: true,
            largest_copied_part: blocks::LARGEST_BLOCK,
            reads_in_flight: 4,
            parts_in_any_order: true,
        }
    }

    async fn server_time(&self) -> Result<chrono::DateTime<chrono::Utc>> {
        self.tags.server_time().await
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
        plumbing::head(&self.inner, key, None).await.map(named_back)
    }

    async fn get(&self, key: &str, options: ReadOptions) -> Result<(Head, Bytes)> {
        if options.version_id.is_some() {
            return Err(no_versions(key));
        }
        let (head, bytes) = plumbing::get(&self.inner, key, options).await?;
        Ok((named_back(head), bytes))
    }

    async fn put(&self, key: &str, data: PutPayload, options: WriteOptions) -> Result<Written> {
        let mut put = PutOptions {
            mode: put_mode(key, &options.condition)?,
            attributes: renamed(&options.attributes, azure_name),
            ..PutOptions::default()
        };
        for (name, value) in &options.tags {
            put.tags.push(name, value);
        }
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

    async fn create_multipart(&self, _key: &str, options: &WriteOptions) -> Result<String> {
        let mut options = options.clone();
        options.attributes = renamed(&options.attributes, azure_name);
        Ok(self.uploads.start(&options))
    }

    async fn upload_part(&self, key: &str, upload_id: &str, index: usize, data: PutPayload) -> Result<String> {
        let id = blocks::block_id(upload_id, index);
        blocks::put_block(&self.rest, key, &id, data).await?;
        Ok(id)
    }

    async fn upload_part_copy(&self, key: &str, upload_id: &str, index: usize, source: &CopySource) -> Result<String> {
        if source.version_id.is_some() {
            return Err(no_versions(&source.key));
        }
        let refused = |message: String| Error::Unsupported {
            key: key.to_string(),
            what: "copy a block from a URL",
            message,
        };
        // The service reads the source as any client would: through a URL signed for reading.
        let url = Signer::signed_url(
            &self.inner,
            http::Method::GET,
            &object_path(&source.key)?,
            COPY_SOURCE_VALIDITY,
        )
        .await
        .map_err(|e| refused(format!("no signed URL to read {} from: {e}", source.key)))?;
        let id = blocks::block_id(upload_id, index);
        let staged = blocks::put_block_from_url(&self.rest, key, &id, url.as_str(), &source.range, &source.e_tag).await;
        match staged {
            Ok(()) => Ok(id),
            Err(Error::Conflict { .. }) => Err(Error::Conflict {
                key: source.key.clone(),
                expected: source.e_tag.clone(),
            }),
            // The service would not read the source (no right to, or no such call here): the
            // file is streamed instead.
            Err(Error::Store {
                source: e @ (object_store::Error::PermissionDenied { .. } | object_store::Error::NotSupported { .. }),
                ..
            }) => Err(refused(e.to_string())),
            Err(e) => Err(e),
        }
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[String],
        condition: &Condition,
    ) -> Result<Written> {
        let mut options = self.uploads.options(key, upload_id)?;
        options.condition = condition.clone();
        let written = blocks::put_block_list(&self.rest, key, parts, &options)
            .await
            .map_err(|e| match (e, condition) {
                (Error::Conflict { .. }, Condition::IfMatch(expected)) => Error::Conflict {
                    key: key.to_string(),
                    expected: expected.clone(),
                },
                (Error::Conflict { .. }, Condition::Create) => Error::store(
                    key,
                    "put block list",
                    object_store::Error::AlreadyExists {
                        path: key.to_string(),
                        source: "the blob exists".into(),
                    },
                ),
                (e, _) => e,
            })?;
        self.uploads.end(upload_id);
        Ok(written)
    }

    async fn abort_multipart(&self, _key: &str, upload_id: &str) -> Result<()> {
        // Staged blocks cannot be deleted; the service drops them at the blob's next commit or
        // after a week, and nothing of them is visible.
        self.uploads.end(upload_id);
        Ok(())
    }

    async fn get_tags(&self, key: &str, _version_id: Option<&str>) -> Result<Vec<(String, String)>> {
        self.tags.get(key).await
    }

    async fn put_tags(&self, key: &str, _version_id: Option<&str>, tags: &[(String, String)]) -> Result<()> {
        self.tags.put(key, tags).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engines_metadata_names_round_trip_through_azures_rules() {
        for name in ["pqm-run", "pqm-attempt", "pqm-v-schema-sensordata-version"] {
            let azure = azure_name(name);
            assert!(azure.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{azure}");
            assert_eq!(engine_name(&azure), name);
        }
        assert_eq!(azure_name("owner"), "owner", "a user's own names are theirs");
    }
}
