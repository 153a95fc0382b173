//! Who wrote an object's current version, as a rollback must know it: an earlier rollback of
//! the same run (the object is restored already), or a rollback of a later run that put back
//! the very version this run wrote (the object is this run's output again, so runs can be
//! undone newest first). Anything else is another writer, whose change is never overwritten.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::error::Result;
use crate::journal::{RunInfo, read_run};
use crate::outcome::Outcome;
use crate::store::Store;

/// What a rollback of run `run_id` knows of the data set's other rollbacks.
#[derive(Debug)]
pub(super) struct Writers {
    /// Earlier rollbacks of the same run.
    restorers: BTreeSet<String>,
    /// Rollbacks of other runs, each with the run it undid.
    later: HashMap<String, String>,
    /// Per undone run read so far, the version each object had before it (its key's record).
    undone: Mutex<HashMap<String, Arc<HashMap<String, String>>>>,
    store: Store,
    journal_prefix: String,
}

/// Who wrote an object's current version.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Writer {
    /// An earlier rollback of this run: the object is restored already.
    Restored,
    /// This run: the current version is the one it wrote, or a rollback of a later run put
    /// that version back.
    ThisRun,
    /// Anyone else.
    Other,
}

impl Writers {
    pub(super) fn new(store: &Store, journal_prefix: &str, run_id: &str, runs: Vec<RunInfo>) -> Self {
        let mut restorers = BTreeSet::new();
        let mut later = HashMap::new();
        for run in runs {
            match run.rolls_back {
                Some(undone) if undone == run_id => {
                    restorers.insert(run.run_id);
                }
                Some(undone) => {
                    later.insert(run.run_id, undone);
                }
                None => {}
            }
        }
        Self {
            restorers,
            later,
            undone: Mutex::new(HashMap::new()),
            store: store.clone(),
            journal_prefix: journal_prefix.to_string(),
        }
    }

    /// Whether `writer` (the run named in the current version's metadata) is an earlier
    /// rollback of this run, or a rollback that put back version `written` of `key`, the one
    /// this run wrote.
    ///
    /// # Errors
    /// [`crate::Error::Journal`] when the undone run's journal cannot be read.
    pub(super) async fn of(&self, key: &str, writer: &str, written: &str) -> Result<Writer> {
        if self.restorers.contains(writer) {
            return Ok(Writer::Restored);
        }
        let Some(undone) = self.later.get(writer) else {
            return Ok(Writer::Other);
        };
        let before = {
            let mut cache = self.undone.lock().await;
            match cache.get(undone) {
                Some(before) => before.clone(),
                None => {
                    let journal = read_run(&self.store, &self.journal_prefix, undone).await?;
                    let before: HashMap<String, String> = journal
                        .records
                        .iter()
                        .filter_map(|r| match &r.outcome {
                            Outcome::Migrated(m) => Some((r.key.clone(), m.old_version_id.clone()?)),
                            _ => None,
                        })
                        .collect();
                    let before = Arc::new(before);
                    cache.insert(undone.clone(), before.clone());
                    before
                }
            }
        };
        // The undone run started from `written`, and its rollback copied that version back.
        Ok(if before.get(key).map(String::as_str) == Some(written) {
            Writer::ThisRun
        } else {
            Writer::Other
        })
    }
}
