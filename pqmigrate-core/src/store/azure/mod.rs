//! Azure Blob Storage through `object_store`'s client: every write one request conditioned on
//! the ETag (`If-Match`, or `If-None-Match: *` to create), the blob index tags in the part of S3's
//! object tags (written with each blob as `x-ms-tags`, read and set beside `object_store` in
//! [`tags`]), the service's clock from its `Date` header. Metadata names must be C# identifiers
//! there, so the engine's own names are written with `_` and read back with `-`. No object
//! versions this tool can list, so `rollback` is refused there.

mod tags;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::azure::{AzureConfigKey, MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::client::{HttpConnector, ReqwestConnector};
use object_store::{Attribute, Attributes, PutOptions, PutPayload};

use super::io::{Capabilities, Head, ListPage, ReadOptions, StoreIo, WriteOptions, Written, no_versions};
use super::plumbing::{self, client_options, conflict_or, put_mode};
use super::{Store, StoreOptions, object_path};
use crate::error::{Error, Result};
use tags::AzureTags;

/// An Azure Blob container, with its blob index tags.
#[derive(Debug)]
pub(crate) struct AzureIo {
    inner: MicrosoftAzure,
    tags: AzureTags,
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
    let tags = AzureTags::new(http, inner.credentials().clone(), container_url, account);
    Ok(Store::from_io(
        Arc::new(AzureIo { inner, tags }),
        format!("az://{container}"),
    ))
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
            multipart: false,
            versions: false,
            copy_parts: false,
            parts_in_any_order: false,
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
