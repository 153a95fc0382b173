//! What a run changed in the store: the migrations its journal records, and the writes whose
//! intents it journaled but whose outcomes it never recorded (a run killed mid-way), found by
//! the attempt id each written object carries in its own metadata. `status` and `rollback` see
//! a run through this, so nothing a run wrote is missed.
//!
//! The changes stream: the records are read once, keeping only a 64-bit key of each recorded
//! attempt (8 bytes an object), and then the intents, each one not recorded looked up in the
//! store. A journal part at a time is in memory, whatever the run's size.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

use crate::error::Result;
use crate::intent::{ATTEMPT_METADATA, Intent};
use crate::journal::{JournalReader, RunJournal};
use crate::outcome::{Migrated, Outcome, Record};
use crate::store::{Store, metadata};

/// One object a run wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A migration the journal records.
    Recorded(Record),
    /// A write found in the store from a journaled intent without a recorded outcome.
    Unrecorded(Record),
}

impl Change {
    /// The object's record.
    pub fn record(&self) -> &Record {
        match self {
            Change::Recorded(r) | Change::Unrecorded(r) => r,
        }
    }

    /// The object's record, owned.
    pub fn into_record(self) -> Record {
        match self {
            Change::Recorded(r) | Change::Unrecorded(r) => r,
        }
    }
}

/// A run's changes, gathered (see [`stream_changes`] for a large run).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Migrations the journal records.
    pub recorded: Vec<Record>,
    /// Writes found in the store from journaled intents without a recorded outcome, by key.
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

/// The 64-bit key of an attempt id: the id itself (16 hex digits, 64 random bits), or a hash of
/// an id of another form.
fn attempt_key(attempt_id: &str) -> u64 {
    match u64::from_str_radix(attempt_id, 16) {
        Ok(key) if attempt_id.len() == 16 => key,
        _ => {
            let mut hasher = DefaultHasher::new();
            attempt_id.hash(&mut hasher);
            hasher.finish()
        }
    }
}

/// The changes of a run from its `records` and `intents`: every recorded migration first, then
/// every write the store shows for an intent without a recorded outcome, with at most
/// `concurrency` look-ups at once.
pub fn changes_of(
    store: &Store,
    records: BoxStream<'static, Result<Record>>,
    intents: BoxStream<'static, Result<Intent>>,
    concurrency: usize,
) -> BoxStream<'static, Result<Change>> {
    let known = Arc::new(Mutex::new(Vec::<u64>::new()));
    let recorded = {
        let known = known.clone();
        records.try_filter_map(move |record| {
            let change = match record.migrated().map(|m| m.attempt_id.as_deref().map(attempt_key)) {
                None => None,
                Some(attempt) => {
                    known.lock().expect("attempt keys").extend(attempt);
                    Some(Change::Recorded(record))
                }
            };
            std::future::ready(Ok(change))
        })
    };
    let store = store.clone();
    let unrecorded = stream::once(async move {
        let known = {
            let mut keys = std::mem::take(&mut *known.lock().expect("attempt keys"));
            keys.sort_unstable();
            keys.dedup();
            Arc::new(keys)
        };
        intents
            .try_filter(move |intent| {
                std::future::ready(known.binary_search(&attempt_key(&intent.attempt_id)).is_err())
            })
            .map_ok(move |intent| {
                let store = store.clone();
                async move { written_by(&store, intent).await }
            })
            .try_buffer_unordered(concurrency.max(1))
            .try_filter_map(|found| std::future::ready(Ok(found.map(Change::Unrecorded))))
    })
    .flatten();
    recorded.chain(unrecorded).boxed()
}

/// The changes of the run `journal` reads, streamed (see [`changes_of`]).
pub fn stream_changes(
    store: &Store,
    journal: &JournalReader,
    concurrency: usize,
) -> BoxStream<'static, Result<Change>> {
    changes_of(store, journal.records(), journal.intents(), concurrency)
}

/// The write of `intent`'s attempt, when it is the object's current version.
async fn written_by(store: &Store, intent: Intent) -> Result<Option<Record>> {
    let head = match store.head(&intent.key).await {
        Ok(head) => head,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    if metadata(&head.attributes, ATTEMPT_METADATA) != Some(intent.attempt_id.as_str()) {
        return Ok(None);
    }
    Ok(Some(Record::new(
        &intent.key,
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
    )))
}

/// The changes of the run in `journal`, gathered: its recorded migrations, and for every intent
/// without a recorded migration, one look at the object (at most `concurrency` at once) to see
/// whether that attempt's write is its current version.
///
/// # Errors
/// Store errors other than a missing object.
pub async fn run_changes(store: &Store, journal: &RunJournal, concurrency: usize) -> Result<Changes> {
    let records = stream::iter(journal.records.clone().into_iter().map(Ok)).boxed();
    let intents = stream::iter(journal.intents.clone().into_iter().map(Ok)).boxed();
    let mut changes = Changes::default();
    let mut found = changes_of(store, records, intents, concurrency);
    while let Some(change) = found.try_next().await? {
        match change {
            Change::Recorded(r) => changes.recorded.push(r),
            Change::Unrecorded(r) => changes.unrecorded.push(r),
        }
    }
    changes.unrecorded.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_keys_are_the_ids_themselves_or_a_hash() {
        assert_eq!(attempt_key("00000000000000ff"), 255);
        assert_ne!(attempt_key("a0"), attempt_key("a1"));
        assert_eq!(attempt_key("a0"), attempt_key("a0"));
    }
}
