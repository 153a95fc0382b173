//! Checking a plan's file schemas against their chains before a run: each distinct schema (and
//! version) of the objects that need migrating is passed through its steps' `output_schema`
//! once, so a step that cannot take it (an unknown column, a type error in a SQL file) is
//! reported per schema at `plan` time instead of per object during the run.

use arrow_schema::SchemaRef;
use serde::Serialize;

use super::PlanEntry;
use crate::error::Result;
use crate::outcome::Outcome;
use crate::registry::Registry;
use crate::scan::read_footer;
use crate::store::Store;

/// One distinct schema of a plan's objects, and what its chain makes of it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SchemaCheck {
    /// The version the objects are at.
    pub from: u32,
    /// The schema's fields, as `name: type`.
    pub fields: Vec<String>,
    /// Objects with this schema and version.
    pub objects: u64,
    /// One of them.
    pub example: String,
    /// Why the chain cannot migrate it; `None` when it can.
    pub error: Option<String>,
    #[serde(skip)]
    schema: SchemaRef,
}

/// The schema checks of one plan, filled entry by entry.
#[derive(Debug)]
pub struct SchemaChecks<'a> {
    registry: &'a Registry,
    schema_id: String,
    target: u32,
    checks: Vec<SchemaCheck>,
}

impl<'a> SchemaChecks<'a> {
    /// Checks for `schema_id` to `target` against `registry`'s steps.
    pub fn new(registry: &'a Registry, schema_id: &str, target: u32) -> Self {
        Self {
            registry,
            schema_id: schema_id.to_string(),
            target,
            checks: Vec::new(),
        }
    }

    /// Reads the footer of an entry that needs migrating (one ranged read of its tail) and
    /// checks its schema, once per distinct schema and version. Other entries, and objects whose
    /// footer cannot be read (the plan and the run report those), are passed over.
    ///
    /// # Errors
    /// None today; kept for reads that may fail the whole plan.
    pub async fn add(&mut self, store: &Store, entry: &PlanEntry) -> Result<()> {
        if !matches!(entry.outcome, Outcome::NeedsMigration { .. }) {
            return Ok(());
        }
        let from = entry.version.unwrap_or(1);
        let Ok(footer) = read_footer(store, &entry.key, entry.size).await else {
            return Ok(());
        };
        let schema = footer.schema().clone();
        if let Some(check) = self.checks.iter_mut().find(|c| c.from == from && c.schema == schema) {
            check.objects += 1;
            return Ok(());
        }
        let error = match self.registry.chain(&self.schema_id, from, self.target) {
            Ok(chain) => crate::rewrite::output_schemas(&entry.key, &schema, &chain)
                .err()
                .map(|e| e.report()),
            Err(_) => None,
        };
        self.checks.push(SchemaCheck {
            from,
            fields: schema
                .fields()
                .iter()
                .map(|f| format!("{}: {}", f.name(), f.data_type()))
                .collect(),
            objects: 1,
            example: entry.key.clone(),
            error,
            schema,
        });
        Ok(())
    }

    /// The distinct schemas seen, in the order met.
    pub fn checks(&self) -> &[SchemaCheck] {
        &self.checks
    }

    /// How many cannot be migrated.
    pub fn failed(&self) -> usize {
        self.checks.iter().filter(|c| c.error.is_some()).count()
    }
}
