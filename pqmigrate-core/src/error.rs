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
    /// The object's tags changed between read and write (a tag edit does not change the ETag);
    /// nothing was overwritten.
    #[error("{key}: its tags were changed by another writer during the rewrite; not overwritten")]
    TagsChanged {
        /// Object key.
        key: String,
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
    /// The object's tag (or metadata entry) and footer record different versions.
    #[error("{key}: version {place} says {tag} but the Parquet footer says {footer}; refusing to guess")]
    VersionMismatch {
        /// Object key.
        key: String,
        /// `tag`, or `metadata entry` on stores without tags.
        place: &'static str,
        /// Version in the object tag or metadata entry (1 when the tag is absent).
        tag: u32,
        /// Version in the footer metadata.
        footer: u32,
    },
    /// The object records only another schema id's version: another data set's, never touched.
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
    /// `stamp` found a different version tag and was not told to change it.
    #[error("{key}: already tagged version {found}; not changed to {wanted} without --force")]
    Stamped {
        /// Object key.
        key: String,
        /// The version tag found.
        found: u32,
        /// The version asked for.
        wanted: u32,
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
        /// The underlying failure, when there is one.
        #[source]
        source: Option<Box<Error>>,
    },
    /// The task running one object ended abnormally outside any step (a panic in the encoder or
    /// the runtime); the object is unchanged.
    #[error("{key}: the task migrating it failed: {message}")]
    Task {
        /// Object key.
        key: String,
        /// The panic or cancellation message.
        message: String,
    },
    /// The run was cancelled (Ctrl-C, SIGTERM, a lost lease) before every object was taken.
    #[error("run cancelled: {reason}")]
    Cancelled {
        /// Why.
        reason: String,
    },
    /// The attempt did not finish in time.
    #[error("{key}: attempt timed out after {seconds:.1} s")]
    Timeout {
        /// Object key.
        key: String,
        /// The per-attempt limit.
        seconds: f64,
    },
    /// The store does not do what was asked of it (copy parts in place, keep tags, take a write
    /// in parts): a lasting property of the store, not a failure of the request.
    #[error("{key}: this store does not {what}: {message}")]
    Unsupported {
        /// Object key.
        key: String,
        /// What it does not do (`copy parts in place`).
        what: &'static str,
        /// The store's answer, or why.
        message: String,
    },
    /// Another writer holds the data set's lease in a way that excludes this one.
    #[error(
        "lease {key} is held by run {run_id} on {host} ({holding}) until {expires} unless renewed; the data set has one writer at a time"
    )]
    LeaseHeld {
        /// Lease object key.
        key: String,
        /// The holder's run id.
        run_id: String,
        /// The holder's host.
        host: String,
        /// How the holder holds it (`exclusively`, `as shard 0/2 of a split to version 3`).
        holding: String,
        /// When the holder's claim lapses unless renewed (RFC 3339).
        expires: String,
    },
}

impl Error {
    /// Whether another attempt may succeed: throttling, timeouts, dropped connections and
    /// conflicts with another writer. Bad data, missing steps and step failures are permanent.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Conflict { .. } | Error::TagsChanged { .. } | Error::Timeout { .. } => true,
            Error::Store { source, .. } => is_transient_store_error(source),
            // 501 Not Implemented is the server's lasting answer, not a hiccup.
            Error::S3Api { status, .. } => *status == 0 || *status == 429 || (*status >= 500 && *status != 501),
            _ => false,
        }
    }

    /// The kind of error, whose [`ErrorKind::name`] is used in journals, Lambda error types and
    /// CLI summaries.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Store { .. } => ErrorKind::Store,
            Error::InvalidKey { .. } => ErrorKind::InvalidKey,
            Error::Conflict { .. } | Error::TagsChanged { .. } => ErrorKind::Conflict,
            Error::S3Api { .. } => ErrorKind::S3Api,
            Error::NotParquet { .. } => ErrorKind::NotParquet,
            Error::BadVersion { .. } => ErrorKind::BadVersion,
            Error::VersionMismatch { .. } => ErrorKind::VersionMismatch,
            Error::OtherSchema { .. } => ErrorKind::OtherSchema,
            Error::Step { .. } => ErrorKind::StepFailed,
            Error::StepPanicked { .. } => ErrorKind::StepPanicked,
            Error::StepContract { .. } => ErrorKind::StepContract,
            Error::Write { .. } => ErrorKind::WriteFailed,
            Error::Limit { .. } => ErrorKind::LimitExceeded,
            Error::Stamped { .. } => ErrorKind::Stamped,
            Error::Registry(_) => ErrorKind::RegistryInvalid,
            Error::Config(_) => ErrorKind::ConfigInvalid,
            Error::Journal { .. } => ErrorKind::Journal,
            Error::Task { .. } => ErrorKind::Task,
            Error::Cancelled { .. } => ErrorKind::Cancelled,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::LeaseHeld { .. } => ErrorKind::LeaseHeld,
            Error::Unsupported { .. } => ErrorKind::Unsupported,
        }
    }

    /// Whether the store said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Store { source, .. } => matches!(source, object_store::Error::NotFound { .. }),
            Error::S3Api { status, .. } => *status == 404,
            _ => false,
        }
    }

    /// Whether a create-only write found the key taken.
    pub fn is_already_exists(&self) -> bool {
        matches!(
            self,
            Error::Store {
                source: object_store::Error::AlreadyExists { .. },
                ..
            }
        )
    }

    /// Whether repeating the same request may help: throttling, timeouts and dropped
    /// connections, but not a failed precondition (only a fresh read helps there).
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            Error::Conflict { .. } | Error::TagsChanged { .. } | Error::Timeout { .. }
        ) && self.is_retryable()
    }

    /// The error and its causes on one line, each cause said once: a cause whose text the
    /// message already holds (object_store's errors repeat their source) is not repeated.
    ///
    /// ```
    /// let e = pqmigrate_core::Error::Config("bad URL".into());
    /// assert_eq!(e.report(), "configuration: bad URL");
    /// ```
    pub fn report(&self) -> String {
        report(self)
    }

    pub(crate) fn journal(key: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Journal {
            key: key.into(),
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn journal_store(key: impl Into<String>, source: Error) -> Self {
        Error::Journal {
            key: key.into(),
            message: "the store refused it".into(),
            source: Some(Box::new(source)),
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

/// Renders an error and its chain of causes on one line, each distinct cause once, with a hint
/// where the chain shows that no credentials were found.
pub fn report(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = e.source();
    }
    if out.contains("169.254.169.254") || out.contains("no credentials") {
        out.push_str(
            " (no AWS credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
             and AWS_ENDPOINT_URL or --endpoint for a server other than AWS)",
        );
    }
    out
}

/// The kind of an [`Error`], with a stable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`Error::Store`].
    #[serde(rename = "StoreError")]
    Store,
    /// [`Error::InvalidKey`].
    InvalidKey,
    /// [`Error::Conflict`].
    Conflict,
    /// [`Error::S3Api`].
    #[serde(rename = "S3ApiError")]
    S3Api,
    /// [`Error::NotParquet`].
    NotParquet,
    /// [`Error::BadVersion`].
    BadVersion,
    /// [`Error::VersionMismatch`].
    VersionMismatch,
    /// [`Error::OtherSchema`].
    OtherSchema,
    /// [`Error::Step`].
    StepFailed,
    /// [`Error::StepPanicked`].
    StepPanicked,
    /// [`Error::StepContract`].
    StepContract,
    /// [`Error::Write`].
    WriteFailed,
    /// [`Error::Limit`].
    LimitExceeded,
    /// [`Error::Stamped`].
    #[serde(rename = "AlreadyStamped")]
    Stamped,
    /// [`Error::Registry`].
    RegistryInvalid,
    /// [`Error::Config`].
    ConfigInvalid,
    /// [`Error::Journal`].
    #[serde(rename = "JournalError")]
    Journal,
    /// [`Error::Task`].
    #[serde(rename = "TaskFailed")]
    Task,
    /// [`Error::Cancelled`].
    Cancelled,
    /// [`Error::Timeout`].
    Timeout,
    /// [`Error::LeaseHeld`].
    LeaseHeld,
    /// [`Error::Unsupported`].
    Unsupported,
    /// A step is missing for the object's version (a disposition, not an [`Error`]).
    MissingMigrationStep,
}

impl ErrorKind {
    /// The stable name (`StoreError`, `NotParquet`, ...).
    ///
    /// ```
    /// assert_eq!(pqmigrate_core::ErrorKind::Store.name(), "StoreError");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Store => "StoreError",
            ErrorKind::InvalidKey => "InvalidKey",
            ErrorKind::Conflict => "Conflict",
            ErrorKind::S3Api => "S3ApiError",
            ErrorKind::NotParquet => "NotParquet",
            ErrorKind::BadVersion => "BadVersion",
            ErrorKind::VersionMismatch => "VersionMismatch",
            ErrorKind::OtherSchema => "OtherSchema",
            ErrorKind::StepFailed => "StepFailed",
            ErrorKind::StepPanicked => "StepPanicked",
            ErrorKind::StepContract => "StepContract",
            ErrorKind::WriteFailed => "WriteFailed",
            ErrorKind::LimitExceeded => "LimitExceeded",
            ErrorKind::Stamped => "AlreadyStamped",
            ErrorKind::RegistryInvalid => "RegistryInvalid",
            ErrorKind::ConfigInvalid => "ConfigInvalid",
            ErrorKind::Journal => "JournalError",
            ErrorKind::Task => "TaskFailed",
            ErrorKind::Cancelled => "Cancelled",
            ErrorKind::Timeout => "Timeout",
            ErrorKind::LeaseHeld => "LeaseHeld",
            ErrorKind::Unsupported => "Unsupported",
            ErrorKind::MissingMigrationStep => "MissingMigrationStep",
        }
    }

    /// Whether an error of this kind refuses a command before it changes anything (bad
    /// arguments, configuration or steps, a data set leased by another run), as opposed to a
    /// failure while running.
    pub fn is_refusal(self) -> bool {
        matches!(
            self,
            ErrorKind::ConfigInvalid
                | ErrorKind::RegistryInvalid
                | ErrorKind::InvalidKey
                | ErrorKind::LeaseHeld
                | ErrorKind::Unsupported
        )
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether a store error may pass on another attempt.
pub(crate) fn is_transient_store_error(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    match e {
        E::Precondition { .. } => true,
        // An answer without the headers a client needs (an emulator that gives no ETag) is the
        // server's lasting behaviour, not a hiccup.
        E::Generic { source, .. } => !lasting_answer(&source.to_string()),
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

/// Whether an error's text names a lasting answer of the server.
fn lasting_answer(text: &str) -> bool {
    text.contains("Unable to extract metadata from headers") || text.contains("501 Not Implemented")
}

#[cfg(test)]
mod tests;
