//! Classifying scanned objects: what a run would do to each, and the totals. Pure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::migration::StepId;
use crate::registry::{ChainOutcome, Registry};
use crate::scan::ScannedObject;

/// What a run would do with one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum Class {
    /// Below the target with a complete chain of steps.
    NeedsMigration {
        /// Steps to apply, in order.
        steps: Vec<StepId>,
    },
    /// At the target version.
    AtTarget,
    /// Above the target version (never downgraded).
    AheadOfTarget,
    /// No step leads on from `from`.
    MissingStep {
        /// The version the chain stops at.
        from: u32,
        /// The missing step's `to`.
        to: u32,
    },
    /// Tagged with another schema's version and not with ours: never touched.
    OtherSchema {
        /// The other schema id.
        schema: String,
    },
    /// The version could not be read.
    Unreadable {
        /// Why, naming the object.
        error: String,
    },
}

impl Class {
    /// A short stable name (`needs_migration`, `at_target`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Class::NeedsMigration { .. } => "needs_migration",
            Class::AtTarget => "at_target",
            Class::AheadOfTarget => "ahead_of_target",
            Class::MissingStep { .. } => "missing_step",
            Class::OtherSchema { .. } => "other_schema",
            Class::Unreadable { .. } => "unreadable",
        }
    }
}

/// One object of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanEntry {
    /// Object key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Its version, when readable.
    pub version: Option<u32>,
    /// What a run does with it.
    #[serde(flatten)]
    pub class: Class,
}

/// Classifies one scanned object for `schema` at `target`.
pub fn classify(registry: &Registry, schema: &str, target: u32, object: &ScannedObject) -> PlanEntry {
    let (version, class) = match &object.version {
        Err(Error::OtherSchema { schema, .. }) => (None, Class::OtherSchema { schema: schema.clone() }),
        Err(e) => (None, Class::Unreadable { error: e.to_string() }),
        Ok(v) => (
            Some(*v),
            match registry.chain(schema, *v, target) {
                Ok(chain) => Class::NeedsMigration {
                    steps: chain.iter().map(|s| s.id()).collect(),
                },
                Err(ChainOutcome::AtTarget) => Class::AtTarget,
                Err(ChainOutcome::AheadOfTarget) => Class::AheadOfTarget,
                Err(ChainOutcome::Missing { from, to }) => Class::MissingStep { from, to },
            },
        ),
    };
    PlanEntry {
        key: object.key.clone(),
        size: object.size,
        version,
        class,
    }
}

/// Totals of a plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanTotals {
    /// Objects seen.
    pub objects: u64,
    /// Objects per version found (unreadable ones not counted).
    pub by_version: BTreeMap<u32, u64>,
    /// Objects per class name.
    pub by_class: BTreeMap<String, u64>,
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
        *self.by_class.entry(entry.class.name().to_string()).or_default() += 1;
        if matches!(entry.class, Class::NeedsMigration { .. }) {
            self.bytes_to_rewrite += entry.size;
        }
    }

    /// Count of one class.
    pub fn count(&self, class: &str) -> u64 {
        self.by_class.get(class).copied().unwrap_or(0)
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
                version: Err(Error::Config("d: broken".into())),
            },
        ];
        let mut totals = PlanTotals::default();
        let classes: Vec<_> = objects
            .iter()
            .map(|o| {
                let e = classify(&registry, "s", 3, o);
                totals.add(&e);
                e.class.name()
            })
            .collect();
        assert_eq!(
            classes,
            vec!["at_target", "ahead_of_target", "missing_step", "unreadable"]
        );
        assert_eq!(totals.objects, 4);
        assert_eq!(totals.by_version, BTreeMap::from([(1, 1), (3, 1), (4, 1)]));
        assert_eq!(totals.bytes_to_rewrite, 0);
        assert_eq!(totals.count("missing_step"), 1);
    }
}
