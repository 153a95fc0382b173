//! Planning a data set: what a run would do with each object, as a stream, and the totals.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::migrate::MigrateOptions;
use crate::outcome::{Counts, Outcome, Status};
use crate::registry::Registry;
use crate::scan::{Candidates, ScanSpec, ScannedObject, candidates, scan};
use crate::store::Store;

mod schemas;

pub use schemas::{SchemaCheck, SchemaChecks};

/// One object of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanEntry {
    /// Object key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Its version, when readable.
    pub version: Option<u32>,
    /// What a run does with it: [`Outcome::NeedsMigration`] or why not.
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl PlanEntry {
    /// The entry's status.
    pub fn status(&self) -> Status {
        self.outcome.status()
    }
}

/// Classifies one scanned object for `schema` at `target`. Pure.
pub fn classify(registry: &Registry, schema: &str, target: u32, object: &ScannedObject) -> PlanEntry {
    let (version, outcome) = match &object.version {
        Err(e) => (None, Outcome::unreadable(e)),
        Ok(v) => (
            Some(*v),
            match registry.chain(schema, *v, target) {
                Ok(chain) => Outcome::NeedsMigration {
                    steps: chain.iter().map(|s| s.id()).collect(),
                },
                Err(outcome) => outcome,
            },
        ),
    };
    PlanEntry {
        key: object.key.clone(),
        size: object.size,
        version,
        outcome,
    }
}

/// Scans a data set and classifies every object, as a stream: nothing is held beyond the
/// look-ups in flight. An error item is a failure of the listing itself.
pub fn plan(
    store: &Store,
    registry: Arc<Registry>,
    options: &MigrateOptions,
    spec: &ScanSpec,
    source: &Candidates,
) -> BoxStream<'static, Result<PlanEntry>> {
    let schema = options.schema.clone();
    let target = options.target;
    scan(store, candidates(store, spec, source), options, spec.concurrency)
        .map_ok(move |o| classify(&registry, &schema, target, &o))
        .boxed()
}

/// Totals of a plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanTotals {
    /// Objects seen.
    pub objects: u64,
    /// Objects per version found (unreadable ones not counted).
    pub by_version: BTreeMap<u32, u64>,
    /// Objects per status.
    pub by_status: Counts,
    /// Bytes of the objects that need migration.
    pub bytes_to_rewrite: u64,
}

impl PlanTotals {
    /// Adds one entry.
    pub fn add(&mut self, entry: &PlanEntry) {
        self.objects += 1;
        if let Some(v) = entry.version {
            *self.by_version.entry(v).or_default() += 1;
        }
        self.by_status.add(entry.status());
        if entry.status() == Status::NeedsMigration {
            self.bytes_to_rewrite += entry.size;
        }
    }

    /// Count of one status.
    pub fn count(&self, status: Status) -> u64 {
        self.by_status.get(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_and_total() {
        let registry = Registry::from_steps([]).unwrap();
        let objects = [
            ScannedObject {
                key: "a".into(),
                size: 10,
                e_tag: None,
                version: Ok(3),
            },
            ScannedObject {
                key: "b".into(),
                size: 20,
                e_tag: None,
                version: Ok(4),
            },
            ScannedObject {
                key: "c".into(),
                size: 30,
                e_tag: None,
                version: Ok(1),
            },
            ScannedObject {
                key: "d".into(),
                size: 40,
                e_tag: None,
                version: Err(crate::error::Error::Config("d: broken".into())),
            },
        ];
        let mut totals = PlanTotals::default();
        let classes: Vec<_> = objects
            .iter()
            .map(|o| {
                let e = classify(&registry, "s", 3, o);
                totals.add(&e);
                e.status().name()
            })
            .collect();
        assert_eq!(
            classes,
            vec!["at_target", "ahead_of_target", "missing_step", "unreadable"]
        );
        assert_eq!(totals.objects, 4);
        assert_eq!(totals.by_version, BTreeMap::from([(1, 1), (3, 1), (4, 1)]));
        assert_eq!(totals.bytes_to_rewrite, 0);
        assert_eq!(totals.count(Status::MissingStep), 1);
    }
}

/// Splits work into `n` parts balanced by bytes as it comes, without holding it: each item goes
/// to the part with the fewest bytes so far (for many items of mixed sizes, parts end within
/// one item's size of each other).
///
/// ```
/// let mut split = pqmigrate_core::plan::Split::new(2);
/// let parts: Vec<usize> = [100, 10, 10, 10, 50].iter().map(|&b| split.assign(b)).collect();
/// assert_eq!(parts, vec![0, 1, 1, 1, 1]);
/// assert_eq!(split.loads(), &[100, 80]);
/// ```
#[derive(Debug, Clone)]
pub struct Split {
    loads: Vec<u64>,
}

impl Split {
    /// `n` empty parts (at least one).
    pub fn new(n: usize) -> Self {
        Self {
            loads: vec![0; n.max(1)],
        }
    }

    /// The part an item of `bytes` goes to: the lightest so far (the first of equals).
    pub fn assign(&mut self, bytes: u64) -> usize {
        let (part, _) = self
            .loads
            .iter()
            .enumerate()
            .min_by_key(|(i, load)| (**load, *i))
            .expect("at least one part");
        self.loads[part] += bytes;
        part
    }

    /// Bytes per part so far.
    pub fn loads(&self) -> &[u64] {
        &self.loads
    }
}
