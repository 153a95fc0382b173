//! Write-ahead intents: what a run is about to write, made durable before the write, and the
//! user metadata by which a written object names the run and the attempt that wrote it. With
//! both, a change is never lost from view: `status` and `rollback` find every object a run
//! wrote, even when the run was killed before it recorded the outcome.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// User metadata key naming the run that wrote an object (`x-amz-meta-pqm-run` on S3).
pub const RUN_METADATA: &str = "pqm-run";
/// User metadata key naming the attempt that wrote an object (`x-amz-meta-pqm-attempt` on S3).
pub const ATTEMPT_METADATA: &str = "pqm-attempt";

/// What one attempt is about to write: journaled before the write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// Object key.
    pub key: String,
    /// The attempt: unique, and written into the object's metadata with the data.
    pub attempt_id: String,
    /// ETag of the object read, which the write is conditioned on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
    /// Version id of the object read (versioned buckets): what a rollback restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Version of the object read.
    pub from: u32,
    /// Version the write records.
    pub to: u32,
}

/// Where intents are made durable. [`IntentLog::record`] returns only once the intent is.
#[async_trait]
pub trait IntentLog: fmt::Debug + Send + Sync {
    /// Makes `intent` durable.
    ///
    /// # Errors
    /// When it could not be made durable; the write must then not happen.
    async fn record(&self, intent: Intent) -> Result<()>;
}

/// The run an object is migrated in: its id, written into every object it writes, and where
/// its intents go.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// Run id.
    pub run_id: String,
    /// The run's intent log.
    pub intents: Arc<dyn IntentLog>,
    /// Cancelled once the run's lease is no longer certainly its own (another run took it, or
    /// it could not be renewed in time): no write may start or complete after that.
    pub fence: CancellationToken,
}

impl RunContext {
    /// Journals the intent of a write of `key`, read at `e_tag` and `version_id`, from version
    /// `from` to `to`; returns the new attempt's id once the intent is durable.
    ///
    /// # Errors
    /// When the intent could not be made durable; the write must then not happen.
    pub async fn record_intent(
        &self,
        key: &str,
        e_tag: Option<String>,
        version_id: Option<String>,
        from: u32,
        to: u32,
    ) -> Result<String> {
        let attempt_id = new_attempt_id();
        let intent = Intent {
            key: key.to_string(),
            attempt_id: attempt_id.clone(),
            e_tag,
            version_id,
            from,
            to,
        };
        self.intents.record(intent).await?;
        Ok(attempt_id)
    }

    /// Names the run and `attempt_id` in `attributes`, the user metadata written with the
    /// object, so the object tells who wrote it.
    pub fn name_in(&self, attributes: &mut object_store::Attributes, attempt_id: &str) {
        use object_store::Attribute;
        attributes.insert(Attribute::Metadata(RUN_METADATA.into()), self.run_id.clone().into());
        attributes.insert(
            Attribute::Metadata(ATTEMPT_METADATA.into()),
            attempt_id.to_string().into(),
        );
    }

    /// Fails when the fence is down, naming `key`: the write must not happen.
    ///
    /// # Errors
    /// [`Error::Cancelled`].
    pub fn check_fence(&self, key: &str) -> Result<()> {
        if self.fence.is_cancelled() {
            return Err(Error::Cancelled {
                reason: format!("{key}: not written: the run's lease is no longer certainly its own"),
            });
        }
        Ok(())
    }
}

/// A new attempt id: 64 random bits.
///
/// ```
/// let a = pqmigrate_core::intent::new_attempt_id();
/// assert_eq!(a.len(), 16);
/// assert_ne!(a, pqmigrate_core::intent::new_attempt_id());
/// ```
pub fn new_attempt_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}
