//! What a rewrite produces besides the data: the version it records in the footer, and whether
//! the chunks it copies are checked first.

/// The target of a rewrite, named instead of passed as loose arguments.
///
/// ```
/// use pqmigrate_core::test_support::RewriteTarget;
/// let target = RewriteTarget::new("schema:sensorData:version", 3).verify_copied(false);
/// assert_eq!((target.version_key.as_str(), target.version, target.verify_copied), ("schema:sensorData:version", 3, false));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RewriteTarget {
    /// The footer key recording the version.
    pub version_key: String,
    /// The version recorded.
    pub version: u32,
    /// Check every page of the copied column chunks before copying them (the default).
    pub verify_copied: bool,
}

impl RewriteTarget {
    /// `version_key = version`, copied chunks checked.
    pub fn new(version_key: impl Into<String>, version: u32) -> Self {
        Self {
            version_key: version_key.into(),
            version,
            verify_copied: true,
        }
    }

    /// Whether copied chunks are checked first (the default): every page's header parsed, its
    /// CRC compared where the writer recorded one, its data decompressed and its values
    /// counted, nothing decoded. Both threads of a row group's rewrite check in the time the
    /// writing and encoding leave, so bytes may reach the sink before the check ends; a failed
    /// check fails the rewrite, and [`migrate_object`](crate::migrate_object) then abandons
    /// its upload. Off, a damaged chunk in a column no step reads is copied as it is, unnoticed;
    /// the append layout then needs only the read columns' chunks
    /// ([`AppendPlan::reads`](crate::rewrite::AppendPlan::reads)).
    pub fn verify_copied(mut self, verify: bool) -> Self {
        self.verify_copied = verify;
        self
    }
}

/// One rewrite's inputs, as the rewriter's builder takes them.
#[derive(Clone, Copy)]
pub(super) struct Job<'a> {
    pub(super) key: &'a str,
    pub(super) footer: &'a super::Footer,
    pub(super) chain: &'a [crate::migration::StepRegistration],
    pub(super) target: &'a RewriteTarget,
}
