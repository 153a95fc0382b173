//! What can be wrong with a migration file.

/// A migration file that cannot be used, or a store location that cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// The file is refused: it does not parse, is not a row-wise projection, or clashes with
    /// another step.
    #[error("{location}: {message}")]
    File {
        /// The file (path or URL).
        location: String,
        /// Why, with the position in the file where there is one.
        message: String,
    },
    /// The migrations could not be read from where they were asked for.
    #[error("{location}: cannot read migrations: {message}")]
    Read {
        /// The folder or URL.
        location: String,
        /// Why.
        message: String,
        /// Whether the store failed transiently (throttled, timed out, dropped), so that the
        /// same read may work when tried again.
        retryable: bool,
    },
}

impl SqlError {
    /// Whether trying again may work ([`SqlError::Read`] of a transient store failure).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Read { retryable: true, .. })
    }
}
