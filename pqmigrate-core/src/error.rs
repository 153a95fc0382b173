//! The one error type of the core, with the object and the cause in every variant.

use crate::migration::StepId;

/// Result alias used throughout the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong migrating, scanning or recording objects.
///
/// Every per-object variant names the object key; [`Error::is_retryable`] tells the executor which
/// failures are worth another attempt.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A call to the object store failed.
    #[error("{key}: {op} failed: {source}")]
    Store {
        /// Object key (or prefix) the call was about.
        key: String,
        /// What was attempted (`get`, `put`, `list`, ...).
        op: &'static str,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// A key no object store path can name (an empty, `.` or `..` segment).
    #[error("{key:?}: not a valid object key: {message}")]
    InvalidKey {
        /// The key.
        key: String,
        /// Why.
        message: String,
    },
    /// The object changed between read and write; nothing was overwritten.
    #[error("{key}: changed by another writer since it was read (expected ETag {expected}); not overwritten")]
    Conflict {
        /// Object key.
        key: String,
        /// The ETag the write was conditioned on.
        expected: String,
    },
    /// A raw S3 API call (tagging, versioning, bucket) answered with an error.
    #[error("{key}: S3 {op} answered HTTP {status}: {message}")]
    S3Api {
        /// Object key or bucket.
        key: String,
        /// The API call.
        op: &'static str,
        /// HTTP status code (0 when no answer came).
        status: u16,
        /// The server's message, or the transport error.
        message: String,
    },
    /// The object is not a readable Parquet file.
    #[error("{key}: not a readable Parquet file: {source}")]
    NotParquet {
        /// Object key.
        key: String,
        /// The reader's error.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// The object's recorded version is not a positive integer.
    #[error("{key}: bad version value {value:?} in {place} `{version_key}`: expected a positive integer")]
    BadVersion {
        /// Object key.
        key: String,
        /// The tag or footer key holding the version.
        version_key: String,
        /// `tag` or `footer`.
        place: &'static str,
        /// The value found.
        value: String,
    },
    /// The object's tag and footer record different versions.
    #[error("{key}: version tag says {tag} but the Parquet footer says {footer}; refusing to guess")]
    VersionMismatch {
        /// Object key.
        key: String,
        /// Version in the object tag (1 when the tag is absent).
        tag: u32,
        /// Version in the footer metadata.
        footer: u32,
    },
    /// The object records the version of another schema id and none of ours: it belongs to
    /// another data set and is never touched.
    #[error("{key}: tagged as schema {schema:?}, not the one being migrated; left alone")]
    OtherSchema {
        /// Object key.
        key: String,
        /// The schema id it is tagged with.
        schema: String,
    },
    /// A step returned an error.
    #[error("{key}: step {step} failed: {message}")]
    Step {
        /// Object key.
        key: String,
        /// The step.
        step: StepId,
        /// The step's error, with its chain of causes.
        message: String,
    },
    /// A step panicked; the panic was contained to this object.
    #[error("{key}: step {step} panicked: {message}")]
    StepPanicked {
        /// Object key.
        key: String,
        /// The step.
        step: StepId,
        /// The panic payload, when it was a string.
        message: String,
    },
    /// A step's output did not match what it declared (schema or row count).
    #[error("{key}: step {step} broke its contract: {message}")]
    StepContract {
        /// Object key.
        key: String,
        /// The step.
        step: StepId,
        /// What was expected and what came.
        message: String,
    },
    /// Writing the output Parquet failed.
    #[error("{key}: writing the migrated Parquet failed: {source}")]
    Write {
        /// Object key.
        key: String,
        /// The writer's error.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A limit of the store would be broken by the write (for example S3's 10 tags per object).
    #[error("{key}: {message}")]
    Limit {
        /// Object key.
        key: String,
        /// Which limit and by how much.
        message: String,
    },
    /// The registered steps are inconsistent.
    #[error("invalid step registry: {0}")]
    Registry(String),
    /// Bad configuration (store URL, arguments).
    #[error("configuration: {0}")]
    Config(String),
    /// The run journal could not be read or written.
    #[error("journal {key}: {message}")]
    Journal {
        /// Journal object key.
        key: String,
        /// What failed.
        message: String,
    },
    /// The attempt did not finish in time.
    #[error("{key}: attempt timed out after {seconds:.1} s")]
    Timeout {
        /// Object key.
        key: String,
        /// The per-attempt limit.
        seconds: f64,
    },
    /// Another run holds the data set's lease.
    #[error("lease {key} is held by run {run_id} on {host} until {expires}")]
    LeaseHeld {
        /// Lease object key.
        key: String,
        /// The holder's run id.
        run_id: String,
        /// The holder's host.
        host: String,
        /// When the lease expires (RFC 3339).
        expires: String,
    },
}

impl Error {
    /// Whether another attempt may succeed: throttling, timeouts, dropped connections and
    /// conflicts with another writer. Bad data, missing steps and step failures are permanent.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Conflict { .. } | Error::Timeout { .. } => true,
            Error::Store { source, .. } => is_transient_store_error(source),
            Error::S3Api { status, .. } => *status == 0 || *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// A stable, short name for the kind of error, used in journals, Lambda error types and CLI
    /// summaries.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Store { .. } => "StoreError",
            Error::InvalidKey { .. } => "InvalidKey",
            Error::Conflict { .. } => "Conflict",
            Error::S3Api { .. } => "S3ApiError",
            Error::NotParquet { .. } => "NotParquet",
            Error::BadVersion { .. } => "BadVersion",
            Error::VersionMismatch { .. } => "VersionMismatch",
            Error::OtherSchema { .. } => "OtherSchema",
            Error::Step { .. } => "StepFailed",
            Error::StepPanicked { .. } => "StepPanicked",
            Error::StepContract { .. } => "StepContract",
            Error::Write { .. } => "WriteFailed",
            Error::Limit { .. } => "LimitExceeded",
            Error::Registry(_) => "RegistryInvalid",
            Error::Config(_) => "ConfigInvalid",
            Error::Journal { .. } => "JournalError",
            Error::Timeout { .. } => "Timeout",
            Error::LeaseHeld { .. } => "LeaseHeld",
        }
    }

    pub(crate) fn store(key: impl Into<String>, op: &'static str, source: object_store::Error) -> Self {
        let key = key.into();
        match source {
            object_store::Error::Precondition { .. } => Error::Conflict {
                key,
                expected: String::new(),
            },
            source => Error::Store { key, op, source },
        }
    }
}

/// Whether a store error may pass on another attempt.
pub(crate) fn is_transient_store_error(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    match e {
        E::Precondition { .. } => true,
        E::Generic { .. } => true,
        E::NotFound { .. }
        | E::InvalidPath { .. }
        | E::NotSupported { .. }
        | E::AlreadyExists { .. }
        | E::NotImplemented { .. }
        | E::PermissionDenied { .. }
        | E::Unauthenticated { .. }
        | E::UnknownConfigurationKey { .. }
        | E::JoinError { .. }
        | E::NotModified { .. } => false,
        _ => true,
    }
}
