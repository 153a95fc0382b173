//! A migration file as a step: planned against each input schema it meets (cached), evaluated
//! batch by batch, with its column use taken from the plan so untouched columns are copied.

use std::sync::{Arc, Mutex, OnceLock};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use datafusion_sql::sqlparser::ast::{RenameSelectItem, SelectItem, SetExpr, Statement};
use parquet::file::properties::WriterPropertiesBuilder;
use parquet::schema::types::ColumnPath;
use pqmigrate_core::{ColumnUse, Migration, StepError};

use crate::engine::{self, Planned};
use crate::error::SqlError;
use crate::file::MigrationFile;
use crate::refuse;

/// The version of DataFusion that evaluates the queries: part of each step's fingerprint, since
/// a function's semantics may change with it.
pub const ENGINE: &str = "datafusion-55.2";

/// Plans cached per input schema: a data set has a few (the full files' and the decoded
/// columns' of each).
const PLANS_KEPT: usize = 16;

/// The column use of a plan, and the same as the core's declaration and renames.
type Used = (engine::ColumnUse, ColumnUse, &'static [(&'static str, &'static str)]);

/// A SQL migration step.
pub struct SqlStep {
    file: MigrationFile,
    statement: Statement,
    renames: Vec<(String, String)>,
    plans: Mutex<Vec<(SchemaRef, Arc<Planned>)>>,
    /// The column use of the first plan, which every later plan must repeat.
    used: OnceLock<Used>,
}

impl std::fmt::Debug for SqlStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStep")
            .field("file", &self.file.location)
            .finish_non_exhaustive()
    }
}

impl SqlStep {
    /// Parses `file`, refusing what is not a row-wise projection of `input`.
    ///
    /// # Errors
    /// [`SqlError::File`] naming the file, what and where.
    pub fn new(file: MigrationFile) -> Result<Self, SqlError> {
        let mut statement = refuse::parse(&file.location, &file.text)?;
        let renames = take_renames(&mut statement);
        Ok(Self {
            file,
            statement,
            renames,
            plans: Mutex::new(Vec::new()),
            used: OnceLock::new(),
        })
    }

    /// The file.
    pub fn file(&self) -> &MigrationFile {
        &self.file
    }

    /// The query planned against `input`, from the cache or planned now.
    ///
    /// # Errors
    /// The planning error, naming the file.
    pub fn check(&self, input: &SchemaRef) -> Result<SchemaRef, SqlError> {
        self.planned(input).map(|p| p.output.clone())
    }

    fn planned(&self, input: &SchemaRef) -> Result<Arc<Planned>, SqlError> {
        let refuse = |message: String| SqlError::File {
            location: self.file.location.clone(),
            message,
        };
        if let Some((_, planned)) = self.plans.lock().unwrap().iter().find(|(s, _)| s == input) {
            return Ok(planned.clone());
        }
        let planned = Arc::new(engine::plan(&self.statement, &self.renames, input).map_err(refuse)?);
        let (first, ..) = self.used.get_or_init(|| {
            let used = &planned.column_use;
            let declared = ColumnUse::Declared {
                reads: leak_names(&used.reads),
                writes: leak_names(&used.writes),
            };
            let renames: Vec<(&'static str, &'static str)> =
                used.renames.iter().map(|(a, b)| (leak(a), leak(b))).collect();
            (used.clone(), declared, Vec::leak(renames))
        });
        if first.reads != planned.column_use.reads
            || first.writes != planned.column_use.writes
            || first.renames != planned.column_use.renames
        {
            return Err(refuse(format!(
                "reads, writes or renames other columns on this file ({:?}) than on the first ({:?})",
                planned.column_use, first
            )));
        }
        let mut plans = self.plans.lock().unwrap();
        if plans.len() >= PLANS_KEPT {
            plans.remove(0);
        }
        plans.push((input.clone(), planned.clone()));
        Ok(planned)
    }
}

/// Takes `* RENAME (a AS b, ...)` out of the query (DataFusion does not plan it): the renames are
/// applied to the planned projection instead, in place.
fn take_renames(statement: &mut Statement) -> Vec<(String, String)> {
    let mut renames = Vec::new();
    let Statement::Query(query) = statement else {
        return renames;
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        return renames;
    };
    for item in &mut select.projection {
        let options = match item {
            SelectItem::Wildcard(options) | SelectItem::QualifiedWildcard(_, options) => options,
            _ => continue,
        };
        match options.opt_rename.take() {
            Some(RenameSelectItem::Single(one)) => renames.push((one.ident.value, one.alias.value)),
            Some(RenameSelectItem::Multiple(many)) => {
                renames.extend(many.into_iter().map(|one| (one.ident.value, one.alias.value)));
            }
            None => {}
        }
    }
    renames
}

fn leak(name: &str) -> &'static str {
    Box::leak(name.to_string().into_boxed_str())
}

fn leak_names(names: &[String]) -> &'static [&'static str] {
    Vec::leak(names.iter().map(|n| leak(n)).collect())
}

impl Migration for SqlStep {
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef, StepError> {
        Ok(self.check(input)?)
    }

    fn transform(&self, batch: RecordBatch, output: &SchemaRef) -> Result<RecordBatch, StepError> {
        let planned = self.planned(&batch.schema())?;
        let out = planned.evaluate(&batch).map_err(|message| SqlError::File {
            location: self.file.location.clone(),
            message,
        })?;
        Ok(RecordBatch::try_new(output.clone(), out.columns().to_vec())?)
    }

    /// The columns the plan reads, computes and renames, once the query has been planned
    /// against a file (it always is before its column use is asked for); everything before.
    fn column_use(&self) -> ColumnUse {
        self.used.get().map_or(ColumnUse::All, |(_, declared, _)| *declared)
    }

    fn renames(&self) -> &'static [(&'static str, &'static str)] {
        self.used.get().map_or(&[], |(.., renames)| renames)
    }

    /// A computed floating-point column is continuous: it is written without a dictionary,
    /// which would be built for every page and abandoned.
    fn writer_properties(&self, builder: WriterPropertiesBuilder) -> WriterPropertiesBuilder {
        let floats = self
            .used
            .get()
            .map(|(used, ..)| used.float_writes.clone())
            .unwrap_or_default();
        floats.iter().fold(builder, |builder, name| {
            builder.set_column_dictionary_enabled(ColumnPath::from(name.as_str()), false)
        })
    }

    fn definition(&self) -> Option<String> {
        Some(format!("{}|engine={ENGINE}", self.file.normalized()))
    }
}
