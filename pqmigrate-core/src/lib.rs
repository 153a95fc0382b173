//! Controlled, versioned schema migration of Parquet data sets in object storage.
//!
//! A data set's files each record a schema version (an S3 object tag `schema:<id>:version`, absent
//! meaning 1, and the Parquet footer). Steps `from -> to`, written as [`Migration`]s and registered
//! from any crate with [`register_step!`], take files forward. [`migrate_object`] streams one file
//! through the whole chain of steps and writes it back in one conditional request that carries the
//! new version, so data and version change together or not at all; [`Migrator::run`] does that for
//! a whole data set, under a lease, with a journal that `status` and `rollback` read.
//!
//! # Layers
//!
//! Each layer uses only the ones above it in this list:
//!
//! - domain, pure: [`error`], [`migration`] (the step trait), [`registry`], [`version`],
//!   [`outcome`] (the one classification of an object), [`intent`], [`identity`];
//! - Parquet format: [`rewrite`] (footer, byte ranges, the row-group rewriter);
//! - storage: [`store`], the [`Store`] facade over one I/O seam ([`store::StoreIo`]) that
//!   backends implement and the rate limiter and fault injector wrap;
//! - use cases: [`scan`], [`plan`], [`mod@migrate`] (one object), [`executor`], [`journal`],
//!   [`lease`], [`mod@run`] (a data set), [`changes`] (what a run wrote), [`rollback`], [`stamp`].
//!
//! The root re-exports what a step author and an embedder need; the rest stays in its module.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use arrow::array::{ArrayRef, Int64Array};
//! use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
//! use arrow::record_batch::RecordBatch;
//! use bytes::Bytes;
//! use pqmigrate_core::{Migration, MigrateOptions, Outcome, Registry, StepError, Store, migrate_object};
//!
//! struct AddTotal;
//! impl Migration for AddTotal {
//!     fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef, StepError> {
//!         let mut fields: Vec<_> = input.fields().iter().cloned().collect();
//!         fields.push(Arc::new(Field::new("total", DataType::Int64, true)));
//!         Ok(Arc::new(Schema::new(fields)))
//!     }
//!     fn transform(&self, batch: RecordBatch, output: &SchemaRef) -> Result<RecordBatch, StepError> {
//!         let a = batch.column(0).as_any().downcast_ref::<Int64Array>().ok_or("a is not int64")?;
//!         let total: Int64Array = a.iter().map(|v| v.map(|v| v * 10)).collect();
//!         let mut columns = batch.columns().to_vec();
//!         columns.push(Arc::new(total) as ArrayRef);
//!         Ok(RecordBatch::try_new(output.clone(), columns)?)
//!     }
//! }
//! pqmigrate_core::register_step!("orders", 1 => 2, AddTotal);
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! // A small Parquet file at version 1 in an in-memory store.
//! let batch = RecordBatch::try_from_iter([("a", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef)]).unwrap();
//! let mut file = Vec::new();
//! let mut writer = parquet::arrow::ArrowWriter::try_new(&mut file, batch.schema(), None).unwrap();
//! writer.write(&batch).unwrap();
//! writer.close().unwrap();
//! let store = Store::memory();
//! store.put("orders/1.parquet", Bytes::from(file), &[], Default::default()).await.unwrap();
//!
//! let registry = Registry::from_inventory().unwrap();
//! let record = migrate_object(&store, &registry, "orders/1.parquet", &MigrateOptions::new("orders", 2)).await.unwrap();
//! let Outcome::Migrated(done) = &record.outcome else { panic!("not migrated") };
//! assert_eq!((record.from, done.to, done.rows), (Some(1), 2, 2));
//! # });
//! ```

#![warn(unreachable_pub)]

pub mod changes;
pub mod detached;
pub mod error;
pub mod executor;
pub mod identity;
pub mod intent;
pub mod journal;
pub mod lease;
pub mod malloc;
pub mod migrate;
pub mod migration;
pub mod outcome;
pub mod plan;
pub mod registry;
pub mod rewrite;
pub mod rollback;
pub mod run;
pub mod scan;
mod session;
mod setters;
pub mod stamp;
pub mod status;
pub mod store;
pub mod table_format;
#[cfg(feature = "test-support")]
pub mod test_support;
pub mod transfer;
pub mod validate;
pub mod version;
pub mod version_store;

pub use error::{Error, ErrorKind, Result};
pub use executor::{Event, EventSink, RunOptions};
pub use identity::new_run_id;
pub use migrate::{MigrateOptions, Origin, migrate_object};
pub use migration::{ColumnUse, Migration, StepError, StepId, StepRegistration};
pub use outcome::{Counts, Migrated, Outcome, Record, RunSummary, Status, WritePath};
pub use registry::Registry;
pub use run::{Migrator, RunReport};
pub use store::{Store, StoreOptions};
pub use version::{VersionSource, schema_of_version_key, version_key};

#[doc(hidden)]
pub use inventory;
pub use tokio_util::sync::CancellationToken;
