//! How a store is opened from a URL: endpoints, region, retries and upload sizes.

#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
use std::time::Duration;

#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
use object_store::RetryConfig;

/// Options for opening a store from a URL.
///
/// ```
/// let options = pqmigrate_core::StoreOptions::default().endpoint("http://127.0.0.1:8333").max_retries(2);
/// assert_eq!(options.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct StoreOptions {
    /// S3 endpoint (`http://127.0.0.1:8333`); AWS when `None` (or `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// GCS endpoint for an emulator (fake-gcs-server), addressed without credentials; Google's
    /// when `None`.
    pub gcs_endpoint: Option<String>,
    /// Azure Blob endpoint including the account (Azurite:
    /// `http://127.0.0.1:10000/devstoreaccount1`); the account's own when `None`.
    pub azure_endpoint: Option<String>,
    /// Region; `AWS_REGION`/`AWS_DEFAULT_REGION` or `us-east-1` when `None`.
    pub region: Option<String>,
    /// Retries done inside each store call before an error reaches the executor.
    pub max_retries: Option<usize>,
    /// Outputs larger than this are uploaded in parts (default 16 MiB).
    pub multipart_threshold: Option<usize>,
    /// Part size of multipart uploads (default 8 MiB, at least 5 MiB).
    pub part_size: Option<usize>,
}

crate::setters::setters!(StoreOptions {
    some endpoint: String,
    some gcs_endpoint: String,
    some azure_endpoint: String,
    some region: String,
    some_val max_retries: usize,
    some_val multipart_threshold: usize,
    some_val part_size: usize,
});

impl StoreOptions {
    /// The retries object_store's own client does inside each request.
    #[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
    pub(super) fn retry_config(&self) -> RetryConfig {
        RetryConfig {
            max_retries: self.max_retries.unwrap_or(3),
            retry_timeout: Duration::from_secs(60),
            ..RetryConfig::default()
        }
    }
}
