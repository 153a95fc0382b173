//! The validated set of registered steps, and chain planning.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::migration::{StepId, StepRegistration};
use crate::outcome::Outcome;

/// Every registered step, validated and sorted by schema id and version.
///
/// `inventory` yields registrations in no particular order; the registry sorts them and
/// rejects a set in which a version has two ways forward, or a step that does not move forward.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    by_schema: BTreeMap<String, BTreeMap<u32, StepRegistration>>,
}

impl Registry {
    /// Collects and validates every step registered with
    /// [`register_step!`](crate::register_step) in the running binary.
    ///
    /// # Errors
    /// [`Error::Registry`] when two steps share a schema id and `from` version, or a step does not
    /// go up.
    pub fn from_inventory() -> Result<Self> {
        Self::from_steps(inventory::iter::<StepRegistration>.into_iter().copied())
    }

    /// Builds a registry from an explicit list of steps (used by tests and embedders).
    ///
    /// # Errors
    /// As [`Registry::from_inventory`].
    pub fn from_steps(steps: impl IntoIterator<Item = StepRegistration>) -> Result<Self> {
        let mut by_schema: BTreeMap<String, BTreeMap<u32, StepRegistration>> = BTreeMap::new();
        for step in steps {
            validate_step(&step)?;
            let versions = by_schema.entry(step.schema.to_string()).or_default();
            if let Some(existing) = versions.get(&step.from) {
                return Err(Error::Registry(format!(
                    "two steps leave {} version {}: {} ({}) and {} ({})",
                    step.schema,
                    step.from,
                    existing.id(),
                    existing.name,
                    step.id(),
                    step.name
                )));
            }
            versions.insert(step.from, step);
        }
        Ok(Self { by_schema })
    }

    /// All steps, sorted by schema id and `from`.
    pub fn steps(&self) -> impl Iterator<Item = &StepRegistration> {
        self.by_schema.values().flat_map(|v| v.values())
    }

    /// Number of registered steps.
    pub fn len(&self) -> usize {
        self.by_schema.values().map(BTreeMap::len).sum()
    }

    /// Whether no step is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The step leaving `from` for `schema`, if any.
    pub fn step(&self, schema: &str, from: u32) -> Option<&StepRegistration> {
        self.by_schema.get(schema)?.get(&from)
    }

    /// Checks that a run of `schema` to `target` can do something: the schema id is not empty,
    /// the target is a version (1 or more), and some registered step of `schema` ends at it.
    ///
    /// ```
    /// let registry = pqmigrate_core::Registry::default();
    /// assert!(registry.check_target("orders", 1).is_ok());
    /// let e = registry.check_target("orders", 3).unwrap_err();
    /// assert!(e.to_string().contains("no step of schema \"orders\" ends at version 3 (step orders:2->3 is missing)"), "{e}");
    /// assert!(registry.check_target("", 1).is_err() && registry.check_target("orders", 0).is_err());
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] naming the value and what is allowed.
    pub fn check_target(&self, schema: &str, target: u32) -> Result<()> {
        if schema.trim().is_empty() {
            return Err(Error::Config(
                "the schema id is empty; give the data set's schema id, such as sensorData".into(),
            ));
        }
        if target == 0 {
            return Err(Error::Config(
                "target version 0 does not exist; versions start at 1".into(),
            ));
        }
        let steps = self.by_schema.get(schema);
        if target == 1 || steps.is_some_and(|steps| steps.values().any(|s| s.to == target)) {
            return Ok(());
        }
        let registered = match steps {
            Some(steps) => format!(
                "registered steps of {schema:?}: {}",
                steps
                    .values()
                    .map(|s| format!("{}->{}", s.from, s.to))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None if self.is_empty() => "this binary has no steps registered".to_string(),
            None => format!(
                "no step of {schema:?} is registered; registered schemas: {}",
                self.by_schema.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        };
        Err(Error::Config(format!(
            "no step of schema {schema:?} ends at version {target} (step {schema}:{}->{target} is missing), so no object can reach it; {registered}",
            target - 1
        )))
    }

    /// The ordered steps taking `schema` from version `from` to `target`.
    ///
    /// # Errors
    /// The [`Outcome`] of the object when no migration is needed or possible:
    /// [`Outcome::AtTarget`], [`Outcome::AheadOfTarget`] or [`Outcome::MissingStep`].
    pub fn chain(&self, schema: &str, from: u32, target: u32) -> Result<Vec<StepRegistration>, Outcome> {
        let empty = BTreeMap::new();
        let steps = self.by_schema.get(schema).unwrap_or(&empty);
        plan_chain(schema, |v| steps.get(&v).map(|s| (s.to, *s)), from, target)
    }
}

fn validate_step(step: &StepRegistration) -> Result<()> {
    if step.schema.is_empty() {
        return Err(Error::Registry(format!("step {} has an empty schema id", step.name)));
    }
    if step.from == 0 {
        return Err(Error::Registry(format!(
            "step {} ({}) starts at version 0; versions start at 1",
            step.id(),
            step.name
        )));
    }
    if step.to <= step.from {
        return Err(Error::Registry(format!(
            "step {} ({}) does not go up; downgrades are not migrations",
            step.id(),
            step.name
        )));
    }
    Ok(())
}

/// Plans the chain of steps from `from` to `target`, given a lookup of the step leaving each
/// version (`version -> (to, step)`). Pure, so it is tested on tables.
///
/// # Errors
/// [`Outcome::AtTarget`], [`Outcome::AheadOfTarget`], or [`Outcome::MissingStep`] naming the
/// first missing step of `schema` (also when the only step leaving a version would overshoot
/// the target).
pub fn plan_chain<T>(
    schema: &str,
    next: impl Fn(u32) -> Option<(u32, T)>,
    from: u32,
    target: u32,
) -> Result<Vec<T>, Outcome> {
    if from == target {
        return Err(Outcome::AtTarget);
    }
    if from > target {
        return Err(Outcome::AheadOfTarget);
    }
    let mut chain = Vec::new();
    let mut at = from;
    while at < target {
        match next(at) {
            Some((to, step)) if to > at && to <= target => {
                chain.push(step);
                at = to;
            }
            _ => {
                return Err(Outcome::MissingStep {
                    missing: StepId {
                        schema: schema.to_string(),
                        from: at,
                        to: at + 1,
                    },
                });
            }
        }
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn table(edges: &[(u32, u32)]) -> HashMap<u32, u32> {
        edges.iter().copied().collect()
    }

    fn missing(from: u32, to: u32) -> Outcome {
        Outcome::MissingStep {
            missing: StepId {
                schema: "s".into(),
                from,
                to,
            },
        }
    }

    #[test]
    fn plan_chain_table() {
        type Case = (&'static [(u32, u32)], u32, u32, Result<Vec<u32>, Outcome>);
        let cases: &[Case] = &[
            (&[(1, 2), (2, 3)], 1, 3, Ok(vec![2, 3])),
            (&[(1, 2), (2, 3)], 2, 3, Ok(vec![3])),
            (&[(1, 2), (2, 3)], 1, 2, Ok(vec![2])),
            (&[(1, 2), (2, 3)], 3, 3, Err(Outcome::AtTarget)),
            (&[(1, 2), (2, 3)], 4, 3, Err(Outcome::AheadOfTarget)),
            (&[(1, 2)], 1, 3, Err(missing(2, 3))),
            (&[(2, 3)], 1, 3, Err(missing(1, 2))),
            (&[], 1, 2, Err(missing(1, 2))),
            (&[(1, 3)], 1, 3, Ok(vec![3])),
            (&[(1, 3)], 1, 2, Err(missing(1, 2))),
            (&[(1, 2), (2, 4), (4, 5)], 1, 5, Ok(vec![2, 4, 5])),
        ];
        for (edges, from, target, expected) in cases {
            let t = table(edges);
            let got = plan_chain("s", |v| t.get(&v).map(|to| (*to, *to)), *from, *target);
            assert_eq!(&got, expected, "edges {edges:?} from {from} to {target}");
        }
    }

    fn reg(schema: &'static str, from: u32, to: u32) -> StepRegistration {
        crate::migration::testing::same(schema, from, to)
    }

    #[test]
    fn registry_validation_table() {
        type Case = (&'static [(&'static str, u32, u32)], Option<&'static str>);
        let cases: &[Case] = &[
            (&[("a", 1, 2), ("a", 2, 3), ("b", 1, 2)], None),
            (&[("a", 1, 2), ("a", 1, 2)], Some("two steps leave a version 1")),
            (&[("a", 1, 2), ("a", 1, 3)], Some("two steps leave a version 1")),
            (&[("a", 2, 2)], Some("does not go up")),
            (&[("a", 3, 2)], Some("does not go up")),
            (&[("a", 0, 1)], Some("starts at version 0")),
            (&[("", 1, 2)], Some("empty schema id")),
        ];
        for (steps, expected) in cases {
            let got = Registry::from_steps(steps.iter().map(|(s, f, t)| reg(s, *f, *t)));
            match (got, expected) {
                (Ok(r), None) => assert_eq!(r.len(), steps.len()),
                (Err(e), Some(msg)) => assert!(e.to_string().contains(msg), "{e} should contain {msg}"),
                (got, expected) => panic!("steps {steps:?}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn registry_sorts_and_chains_per_schema() {
        let r = Registry::from_steps([reg("a", 2, 3), reg("b", 1, 2), reg("a", 1, 2)]).unwrap();
        let ids: Vec<_> = r.steps().map(|s| (s.schema, s.from, s.to)).collect();
        assert_eq!(ids, vec![("a", 1, 2), ("a", 2, 3), ("b", 1, 2)]);
        let chain = r.chain("a", 1, 3).unwrap();
        assert_eq!(chain.iter().map(|s| s.to).collect::<Vec<_>>(), vec![2, 3]);
        let missing = |schema: &str, from, to| Outcome::MissingStep {
            missing: StepId {
                schema: schema.into(),
                from,
                to,
            },
        };
        assert_eq!(r.chain("b", 1, 3).unwrap_err(), missing("b", 2, 3));
        assert_eq!(r.chain("zzz", 1, 2).unwrap_err(), missing("zzz", 1, 2));
    }
}
