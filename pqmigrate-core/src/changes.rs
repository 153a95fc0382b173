//! What a run changed in the store: the migrations its journal records, and the writes whose
//! intents it journaled but whose outcomes it never recorded (a run killed mid-way), found by
//! the attempt id each written object carries in its own metadata. `status` and `rollback` see
//! a run through this, so nothing a run wrote is missed.

use std::collections::{BTreeMap, BTreeSet};

use futures::stream::{self, StreamExt};

use crate::error::Result;
use crate::intent::{ATTEMPT_METADATA, Intent};
use crate::journal::RunJournal;
use crate::outcome::{Migrated, Outcome, Record};
use crate::store::{Store, metadata};

/// A run's changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Migrations the journal records.
    pub recorded: Vec<Record>,
    /// Writes found in the store from journaled intents without a recorded outcome.
    pub unrecorded: Vec<Record>,
}

impl Changes {
    /// Every object the run wrote.
    pub fn all(&self) -> impl Iterator<Item = &Record> {
        self.recorded.iter().chain(&self.unrecorded)
    }

    /// How many objects the run wrote.
    pub fn len(&self) -> usize {
        self.recorded.len() + self.unrecorded.len()
    }

    /// Whether the run wrote nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The changes of the run in `journal`: its recorded migrations, and for every intent without
/// a recorded migration, one look at the object (at most `concurrency` at once) to see whether
/// that attempt's write is its current version.
///
/// # Errors
/// Store errors other than a missing object.
pub async fn run_changes(store: &Store, journal: &RunJournal, concurrency: usize) -> Result<Changes> {
    let recorded: Vec<Record> = journal
        .records
        .iter()
        .filter(|r| r.migrated().is_some())
        .cloned()
        .collect();
    let known: BTreeSet<&str> = recorded
        .iter()
        .filter_map(|r| r.migrated()?.attempt_id.as_deref())
        .collect();
    let mut open: BTreeMap<&str, Vec<&Intent>> = BTreeMap::new();
    for intent in &journal.intents {
        if !known.contains(intent.attempt_id.as_str()) {
            open.entry(intent.key.as_str()).or_default().push(intent);
        }
    }
    let found: Vec<Result<Option<Record>>> = stream::iter(open)
        .map(|(key, intents)| async move {
            let head = match store.head(key).await {
                Ok(head) => head,
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e),
            };
            let Some(attempt) = metadata(&head.attributes, ATTEMPT_METADATA) else {
                return Ok(None);
            };
            Ok(intents.iter().find(|i| i.attempt_id == attempt).map(|intent| {
                Record::new(
                    key,
                    Some(intent.from),
                    Outcome::Migrated(Box::new(Migrated {
                        to: intent.to,
                        old_e_tag: intent.e_tag.clone(),
                        old_version_id: intent.version_id.clone(),
                        new_e_tag: head.e_tag.clone(),
                        new_version_id: head.version_id.clone(),
                        attempt_id: Some(intent.attempt_id.clone()),
                        ..Migrated::default()
                    })),
                )
            }))
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut unrecorded = Vec::new();
    for record in found {
        unrecorded.extend(record?);
    }
    unrecorded.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(Changes { recorded, unrecorded })
}
