//! Google Cloud Storage and Azure Blob Storage, through `object_store`'s own clients: every write
//! one conditional request (GCS `x-goog-if-generation-match`, Azure `If-Match` on the ETag, or
//! "create only" for both), the version beside the data (Azure: a blob index tag, GCS: the
//! object's custom metadata), and the footer key as the source of truth. Neither keeps object
//! versions that this adapter can list, so `rollback` is refused on them with a clear message.

use std::sync::Arc;

use object_store::ClientOptions;
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::client::{HttpConnector, ReqwestConnector};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};

use super::azure_tags::AzureTags;
use super::generic::{Flavor, ObjectStoreIo};
use super::{Store, StoreOptions};
use crate::error::{Error, Result};

/// The service-account key object_store takes for an emulator: no OAuth token is asked for.
const EMULATOR_KEY: &str = r#"{"private_key": "", "private_key_id": "", "client_email": "", "disable_oauth": true}"#;

fn client(endpoint: Option<&str>) -> ClientOptions {
    ClientOptions::new().with_allow_http(endpoint.is_some_and(|e| e.starts_with("http://")))
}

/// A GCS bucket. Credentials come from the standard variables (`GOOGLE_SERVICE_ACCOUNT`,
/// `GOOGLE_APPLICATION_CREDENTIALS`, application default credentials). An endpoint (an
/// emulator such as fake-gcs-server) is addressed without credentials.
pub(super) fn gcs(bucket: &str, options: &StoreOptions) -> Result<Store> {
    let mut builder = GoogleCloudStorageBuilder::from_env().with_bucket_name(bucket);
    let endpoint = options.gcs_endpoint.as_deref();
    if let Some(endpoint) = endpoint {
        // An emulator takes requests without a token: a key that turns OAuth off.
        builder = builder
            .with_config(GoogleConfigKey::BaseUrl, endpoint.trim_end_matches('/'))
            .with_service_account_key(EMULATOR_KEY);
    }
    let gcs = builder
        .with_client_options(client(endpoint))
        .with_retry(options.retry_config())
        .build()
        .map_err(|e| Error::Config(format!("GCS bucket {bucket}: {e}")))?;
    let io = ObjectStoreIo::new(Arc::new(gcs), Flavor::Gcs);
    Ok(Store::from_io(Arc::new(io), format!("gs://{bucket}")))
}

/// An Azure Blob container. The account and its credentials come from the standard
/// `AZURE_STORAGE_*` variables; an endpoint (Azurite: `http://127.0.0.1:10000/<account>`) replaces
/// the account's own.
pub(super) fn azure(container: &str, account: Option<&str>, options: &StoreOptions) -> Result<Store> {
    let mut builder = MicrosoftAzureBuilder::from_env().with_container_name(container);
    if let Some(account) = account {
        builder = builder.with_account(account);
    }
    let endpoint = options.azure_endpoint.as_deref();
    if let Some(endpoint) = endpoint {
        builder = builder.with_config(AzureConfigKey::Endpoint, endpoint.trim_end_matches('/'));
    }
    let builder = builder
        .with_client_options(client(endpoint))
        .with_retry(options.retry_config());
    let account = builder
        .get_config_value(&AzureConfigKey::AccountName)
        .unwrap_or_default();
    let container_url = match endpoint {
        Some(endpoint) => format!("{}/{container}", endpoint.trim_end_matches('/')),
        None => format!("https://{account}.blob.core.windows.net/{container}"),
    };
    let azure = builder
        .build()
        .map_err(|e| Error::Config(format!("Azure container {container}: {e}")))?;
    let http = ReqwestConnector::default()
        .connect(&client(endpoint))
        .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
    let tags = AzureTags::new(http, azure.credentials().clone(), container_url, account);
    let io = ObjectStoreIo::new(Arc::new(azure), Flavor::Azure).with_azure_tags(tags);
    Ok(Store::from_io(Arc::new(io), format!("az://{container}")))
}

/// The container and account of an `abfs[s]://container@account.dfs.core.windows.net/...` URL,
/// or the container of `az://container/...` (the account from the environment).
pub(super) fn azure_container(url: &url::Url) -> Result<(String, Option<String>)> {
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
