//! Migrations as files: SQL steps that a stock `pqmigrate` binary runs with no step compiled in.
//!
//! A folder holds one subfolder a schema id, and in it one file a step, named as Flyway names
//! them: `migrations/sensorData/V2__add_features.sql` migrates `sensorData` from version 1 to 2,
//! `V3__rename.sql` from 2 to 3. Each file is one `SELECT` over the file's rows as `input`, in
//! DataFusion's SQL dialect and with its scalar functions, the wildcard options `EXCLUDE`,
//! `REPLACE` and `RENAME` doing drops, casts and renames:
//!
//! ```sql
//! SELECT *,
//!        atan2(y, x) AS angle
//! FROM input
//! ```
//!
//! Only row-wise projections are taken: aggregates, joins, window functions, `WHERE`,
//! `ORDER BY`, `LIMIT`, subqueries and volatile functions (`random()`, `now()`) are refused when
//! the file is loaded (or, for a volatile function, when it is first planned), naming the file
//! and the position. The columns a step reads, computes and renames come from its plan, so
//! untouched columns are copied as encoded chunks, as for a compiled step that declares them.
//! A step's fingerprint is a hash of its normalized text and the engine version, so an edited
//! file is told apart from the one that migrated earlier objects.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::create_dir_all(dir.path().join("s")).unwrap();
//! std::fs::write(dir.path().join("s/V2__double.sql"), "SELECT *, a * 2 AS doubled FROM input").unwrap();
//! let migrations = pqmigrate_sql::Migrations::from_dir(dir.path()).unwrap();
//! let registry = migrations.registry([]).unwrap();
//! assert_eq!(registry.step("s", 1).unwrap().to, 2);
//! ```
//!
//! DataFusion 55 is built on Arrow 59 and the workspace on Arrow 60: the columns a step reads
//! cross to DataFusion and its computed columns back as Arrow IPC bytes (see `bridge`).

mod bridge;
mod cache;
mod engine;
mod error;
mod file;
mod functions;
mod refuse;
mod source;
mod step;

use std::path::Path;

use pqmigrate_core::{Registry, StepRegistration, StoreOptions};

use crate::source::Listing;

pub use cache::{Cache, Loaded};
pub use error::SqlError;
pub use file::{MigrationFile, chain_files, file_version};
pub use refuse::INPUT_TABLE;
pub use step::{ENGINE, SqlStep};

/// The migrations of a folder, each parsed and checked, ready to register.
#[derive(Debug, Clone, Default)]
pub struct Migrations {
    steps: Vec<&'static SqlStep>,
}

impl Migrations {
    /// Reads `dir/<schema>/V<to>__<description>.sql`.
    ///
    /// # Errors
    /// [`SqlError::Read`] for a folder that cannot be read, [`SqlError::File`] for a refused file.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, SqlError> {
        let listing = Listing::of_dir(&dir.as_ref().display().to_string())?;
        Self::from_files(&listing.location, listing.read_local()?)
    }

    /// Reads the migrations under a store URL (`s3://bucket/migrations`, `gs://`, `az://`,
    /// `file://`), so a fleet shares one copy; a plain path is read as a folder. A long-lived
    /// process that loads them again and again keeps them in a [`Cache`].
    ///
    /// # Errors
    /// As [`Migrations::from_dir`].
    pub async fn open(location: &str, options: &StoreOptions) -> Result<Self, SqlError> {
        let listing = Listing::of(location, options).await?;
        Self::from_files(&listing.location, listing.read().await?)
    }

    /// Migrations from `(schema, [(file name, text)])`, read from `location`.
    ///
    /// # Errors
    /// [`SqlError::File`] for a refused file.
    pub fn from_files(location: &str, schemas: Vec<(String, Vec<(String, String)>)>) -> Result<Self, SqlError> {
        let mut steps = Vec::new();
        for (schema, files) in schemas {
            for file in chain_files(location, &schema, files)? {
                let step: &'static SqlStep = Box::leak(Box::new(SqlStep::new(file)?));
                steps.push(step);
            }
        }
        steps.sort_by(|a, b| (&a.file().schema, a.file().to).cmp(&(&b.file().schema, b.file().to)));
        Ok(Self { steps })
    }

    /// The steps, by schema id and version.
    pub fn steps(&self) -> &[&'static SqlStep] {
        &self.steps
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The steps as registrations: each named by its file.
    pub fn registrations(&self) -> Vec<StepRegistration> {
        self.steps
            .iter()
            .map(|step| {
                let file = step.file();
                StepRegistration {
                    schema: Box::leak(file.schema.clone().into_boxed_str()),
                    from: file.from,
                    to: file.to,
                    name: Box::leak(file.location.clone().into_boxed_str()),
                    revision: Box::leak(file.checksum().into_boxed_str()),
                    crate_id: ENGINE,
                    migration: *step,
                }
            })
            .collect()
    }

    /// One registry of `compiled` steps and these; two steps leaving the same version of a
    /// schema are refused, naming both.
    ///
    /// # Errors
    /// [`pqmigrate_core::Error::Registry`].
    pub fn registry(&self, compiled: impl IntoIterator<Item = StepRegistration>) -> pqmigrate_core::Result<Registry> {
        Registry::from_steps(compiled.into_iter().chain(self.registrations()))
    }
}
