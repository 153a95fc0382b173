//! The one classification of an object: what a plan says will happen to it, what a run did to
//! it, and the totals of both. Plans, runs, journals, the Lambda adapter and every report take
//! their names and counts from here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};
use crate::migration::StepId;

/// Where an object stands or how it ended, without the details: the key of every count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Status {
    /// Below the target with a complete chain of steps (a plan's answer).
    NeedsMigration,
    /// Rewritten to a new version.
    Migrated,
    /// Already at the target version.
    AtTarget,
    /// Above the target version; never downgraded.
    AheadOfTarget,
    /// No step leads on from the object's version.
    MissingStep,
    /// Tagged as another schema; left alone.
    OtherSchema,
    /// Its version could not be read.
    Unreadable,
    /// Migrating it failed; the object is unchanged.
    Failed,
}

impl Status {
    /// Every status, in report order.
    pub const ALL: [Status; 8] = [
        Status::NeedsMigration,
        Status::Migrated,
        Status::AtTarget,
        Status::AheadOfTarget,
        Status::MissingStep,
        Status::OtherSchema,
        Status::Unreadable,
        Status::Failed,
    ];

    /// The stable name (`needs_migration`, `migrated`, ...), as serialized.
    ///
    /// ```
    /// assert_eq!(pqmigrate_core::Status::AheadOfTarget.name(), "ahead_of_target");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Status::NeedsMigration => "needs_migration",
            Status::Migrated => "migrated",
            Status::AtTarget => "at_target",
            Status::AheadOfTarget => "ahead_of_target",
            Status::MissingStep => "missing_step",
            Status::OtherSchema => "other_schema",
            Status::Unreadable => "unreadable",
            Status::Failed => "failed",
        }
    }

    /// Whether an object ending so needs attention (the run exits non-zero).
    pub fn needs_attention(self) -> bool {
        matches!(self, Status::Failed | Status::MissingStep | Status::Unreadable)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Objects per [`Status`]; serialized as a map from status name to count, zero counts left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Counts(BTreeMap<Status, u64>);

impl Counts {
    /// Adds one object with `status`.
    pub fn add(&mut self, status: Status) {
        *self.0.entry(status).or_default() += 1;
    }

    /// Adds every count of `other` (the shards of one data set, for example).
    pub fn merge(&mut self, other: &Counts) {
        for (status, n) in &other.0 {
            *self.0.entry(*status).or_default() += n;
        }
    }

    /// Objects with `status`.
    pub fn get(&self, status: Status) -> u64 {
        self.0.get(&status).copied().unwrap_or(0)
    }

    /// Objects counted.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Objects that need attention ([`Status::needs_attention`]).
    pub fn needing_attention(&self) -> u64 {
        self.0.iter().filter(|(s, _)| s.needs_attention()).map(|(_, n)| n).sum()
    }

    /// Every status with its count, zeros included, in report order.
    pub fn iter(&self) -> impl Iterator<Item = (Status, u64)> + '_ {
        Status::ALL.into_iter().map(|s| (s, self.get(s)))
    }
}

/// What was done to, or found about, one object: a [`Status`] with its details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// Needs these steps, in order.
    NeedsMigration {
        /// Steps to apply.
        steps: Vec<StepId>,
    },
    /// Rewritten to a new version, and its version recorded.
    Migrated(Box<Migrated>),
    /// Already at the target; untouched.
    AtTarget,
    /// Above the target; never downgraded.
    AheadOfTarget,
    /// No step leads on; untouched.
    MissingStep {
        /// The missing step.
        missing: StepId,
    },
    /// Another schema's object; untouched.
    OtherSchema {
        /// The schema id it records.
        schema: String,
    },
    /// Its version could not be read; untouched.
    Unreadable {
        /// Kind of the failure.
        error_kind: ErrorKind,
        /// The failure, naming the object.
        error: String,
    },
    /// Migrating it failed; the object is unchanged.
    Failed {
        /// Kind of the failure.
        error_kind: ErrorKind,
        /// The failure, naming the object and the cause.
        error: String,
    },
}

impl Outcome {
    /// The status of this outcome.
    pub fn status(&self) -> Status {
        match self {
            Outcome::NeedsMigration { .. } => Status::NeedsMigration,
            Outcome::Migrated(_) => Status::Migrated,
            Outcome::AtTarget => Status::AtTarget,
            Outcome::AheadOfTarget => Status::AheadOfTarget,
            Outcome::MissingStep { .. } => Status::MissingStep,
            Outcome::OtherSchema { .. } => Status::OtherSchema,
            Outcome::Unreadable { .. } => Status::Unreadable,
            Outcome::Failed { .. } => Status::Failed,
        }
    }

    /// The outcome of a failure.
    pub fn failed(error: &Error) -> Self {
        Outcome::Failed {
            error_kind: error.kind(),
            error: error.report(),
        }
    }

    /// The outcome of an object whose version could not be read: another schema's object, or
    /// unreadable.
    pub fn unreadable(error: &Error) -> Self {
        match error {
            Error::OtherSchema { schema, .. } => Outcome::OtherSchema { schema: schema.clone() },
            e => Outcome::Unreadable {
                error_kind: e.kind(),
                error: e.report(),
            },
        }
    }

    /// Why the object needs attention, naming it, when it does.
    pub fn problem(&self, key: &str) -> Option<(ErrorKind, String)> {
        match self {
            Outcome::MissingStep { missing } => Some((
                ErrorKind::MissingMigrationStep,
                format!("{key}: missing migration step {}->{}", missing.from, missing.to),
            )),
            Outcome::Unreadable { error_kind, error } | Outcome::Failed { error_kind, error } => {
                Some((*error_kind, error.clone()))
            }
            _ => None,
        }
    }
}

/// The details of a finished rewrite of one object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migrated {
    /// Version after.
    pub to: u32,
    /// Steps applied, in order.
    pub steps: Vec<StepId>,
    /// Their fingerprints ([`crate::migration::StepRegistration::fingerprint`]), in the same order.
    #[serde(default)]
    pub fingerprints: Vec<String>,
    /// ETag before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_e_tag: Option<String>,
    /// ETag after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_e_tag: Option<String>,
    /// Version id before (versioned buckets): what `rollback` restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_version_id: Option<String>,
    /// Version id after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_version_id: Option<String>,
    /// Size of the object before.
    #[serde(default)]
    pub bytes_in: u64,
    /// Size of the object after.
    #[serde(default)]
    pub bytes_out: u64,
    /// Rows rewritten.
    #[serde(default)]
    pub rows: u64,
    /// How the new version was written.
    #[serde(default)]
    pub path: WritePath,
    /// Why the append layout was not used, when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streamed_because: Option<String>,
    /// Bytes downloaded from the store for this object (footer and column chunks).
    #[serde(default)]
    pub received: u64,
    /// Bytes uploaded to the store for this object.
    #[serde(default)]
    pub sent: u64,
    /// Bytes the store copied in place (server-side, or by the kernel on local disk).
    #[serde(default)]
    pub copied: u64,
    /// The attempt that wrote it (named in the object's user metadata), in a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_id: Option<String>,
}

/// How a new version was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WritePath {
    /// The whole file streamed down and up again (copied columns as encoded chunks).
    #[default]
    Streamed,
    /// The input's data region copied in place by the store, only the computed chunks and the
    /// new footer sent ([`crate::rewrite::plan_append`]).
    Appended,
}

/// One object's line in a run: its key, the version it was found at, and its [`Outcome`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Object key.
    pub key: String,
    /// Version found, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u32>,
    /// What happened.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Attempts made.
    #[serde(default)]
    pub attempts: u32,
    /// Milliseconds spent, all attempts.
    #[serde(default)]
    pub millis: u64,
}

impl Record {
    /// A record of `outcome` for `key`, found at version `from`.
    pub fn new(key: &str, from: Option<u32>, outcome: Outcome) -> Self {
        Self {
            key: key.to_string(),
            from,
            outcome,
            attempts: 0,
            millis: 0,
        }
    }

    /// The record of a failure.
    pub fn failed(key: &str, error: &Error) -> Self {
        Self::new(key, None, Outcome::failed(error))
    }

    /// The status of the outcome.
    pub fn status(&self) -> Status {
        self.outcome.status()
    }

    /// The rewrite, when the object was migrated.
    pub fn migrated(&self) -> Option<&Migrated> {
        match &self.outcome {
            Outcome::Migrated(m) => Some(m.as_ref()),
            _ => None,
        }
    }

    /// Bytes read for this object.
    pub fn bytes_in(&self) -> u64 {
        self.migrated().map_or(0, |m| m.bytes_in)
    }
}

/// Totals of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Run id.
    pub run_id: String,
    /// Objects per status.
    pub by_status: Counts,
    /// Bytes read by migrations.
    pub bytes_in: u64,
    /// Bytes written by migrations.
    pub bytes_out: u64,
    /// Bytes downloaded by migrations.
    #[serde(default)]
    pub received: u64,
    /// Bytes uploaded by migrations.
    #[serde(default)]
    pub sent: u64,
    /// Bytes the store copied in place.
    #[serde(default)]
    pub copied: u64,
    /// Objects written in the append layout.
    #[serde(default)]
    pub appended: u64,
    /// Objects streamed whole.
    #[serde(default)]
    pub streamed: u64,
    /// Rows rewritten.
    pub rows: u64,
    /// Objects attempted again (attempts beyond the first).
    pub retries: u64,
    /// Single requests repeated after throttling or a dropped connection.
    #[serde(default)]
    pub request_retries: u64,
    /// Wall time in milliseconds.
    pub elapsed_ms: u64,
    /// Whether the run stopped before every object was taken (cancelled, lease lost, or the
    /// listing failed).
    pub cancelled: bool,
    /// Why the run stopped early, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<String>,
    /// Objects that need attention: key and why.
    pub failures: Vec<(String, String)>,
}

impl RunSummary {
    /// Adds one record.
    pub fn add(&mut self, record: &Record) {
        self.by_status.add(record.status());
        if let Some(m) = record.migrated() {
            self.bytes_in += m.bytes_in;
            self.bytes_out += m.bytes_out;
            self.received += m.received;
            self.sent += m.sent;
            self.copied += m.copied;
            match m.path {
                WritePath::Appended => self.appended += 1,
                WritePath::Streamed => self.streamed += 1,
            }
            self.rows += m.rows;
        }
        self.retries += u64::from(record.attempts.saturating_sub(1));
        if let Some((_, error)) = record.outcome.problem(&record.key) {
            self.failures.push((record.key.clone(), error));
        }
    }

    /// Objects with `status`.
    pub fn count(&self, status: Status) -> u64 {
        self.by_status.get(status)
    }

    /// Objects recorded.
    pub fn objects(&self) -> u64 {
        self.by_status.total()
    }

    /// Whether any object needs attention, or the run stopped early: the run exits non-zero.
    pub fn has_failures(&self) -> bool {
        !self.failures.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_serialize_flat_with_the_status_name() {
        let record = Record {
            attempts: 2,
            ..Record::new(
                "k",
                Some(1),
                Outcome::Migrated(Box::new(Migrated {
                    to: 3,
                    rows: 10,
                    ..Migrated::default()
                })),
            )
        };
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(
            (json["status"].as_str(), json["to"].as_u64(), json["from"].as_u64()),
            (Some("migrated"), Some(3), Some(1))
        );
        let back: Record = serde_json::from_value(json).unwrap();
        assert_eq!(back, record);
        let failed = Record::failed("k", &Error::Config("x".into()));
        let json = serde_json::to_value(&failed).unwrap();
        assert_eq!(
            (json["status"].as_str(), json["error_kind"].as_str()),
            (Some("failed"), Some("ConfigInvalid"))
        );
        assert_eq!(serde_json::from_value::<Record>(json).unwrap(), failed);
    }

    #[test]
    fn counts_and_summary_follow_the_statuses() {
        let mut summary = RunSummary::default();
        let missing = StepId {
            schema: "s".into(),
            from: 2,
            to: 3,
        };
        for outcome in [
            Outcome::AtTarget,
            Outcome::AtTarget,
            Outcome::MissingStep { missing },
            Outcome::failed(&Error::Config("broken".into())),
        ] {
            summary.add(&Record::new("k", Some(1), outcome));
        }
        assert_eq!(
            (
                summary.count(Status::AtTarget),
                summary.objects(),
                summary.by_status.needing_attention()
            ),
            (2, 4, 2)
        );
        assert_eq!(summary.failures[0].1, "k: missing migration step 2->3");
        let json = serde_json::to_value(&summary.by_status).unwrap();
        assert_eq!(json["at_target"], 2);
        assert!(json.get("migrated").is_none());
    }
}
