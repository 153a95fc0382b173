//! Controlled, versioned schema migration of Parquet data sets in object storage.
//!
//! A data set's files each record a schema version (an S3 object tag `schema:<id>:version`, absent
//! meaning 1, and the Parquet footer). Steps `from -> to`, written as [`Migration`]s and registered
//! from any crate with [`register_step!`], take files forward. [`migrate_object`] streams one file
//! through the whole chain of steps and writes it back in one conditional request that carries the
//! new version, so data and version change together or not at all.
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
//! let outcome = migrate_object(&store, &registry, "orders/1.parquet", &MigrateOptions::new("orders", 2)).await.unwrap();
//! let Outcome::Done(done) = outcome else { panic!("not migrated") };
//! assert_eq!((done.from, done.to, done.rows), (1, 2, 2));
//! # });
//! ```

mod error;
mod executor;
pub mod fault;
mod journal;
mod lease;
mod migrate;
mod migration;
mod plan;
mod ratelimit;
mod registry;
mod rewrite;
mod rollback;
mod scan;
mod stamp;
mod store;
mod version;

pub use error::{Error, Result};
pub use executor::{Event, EventSink, Executor, Job, LocalExecutor, RetryPolicy, RunOptions, migrate_with_retries};
pub use journal::{
    DEFAULT_JOURNAL_PREFIX, JournalWriter, Record, RunInfo, RunJournal, RunSummary, Status, host_name, list_runs,
    new_run_id, now_rfc3339, read_run,
};
pub use lease::{DEFAULT_LEASE_TTL, Lease, LeaseInfo, break_lease, current_lease, lease_key};
pub use migrate::{MigrateOptions, Migrated, Outcome, migrate_object, object_version};
pub use migration::{ColumnUse, Migration, StepError, StepId, StepRegistration};
pub use plan::{Class, PlanEntry, PlanTotals, classify};
pub use ratelimit::{RateLimitedStore, RateLimiter};
pub use registry::{ChainOutcome, Registry, plan_chain};
pub use rewrite::{FileRanges, Footer, Layout, Rewritten, RowGroupRewriter, STEPS_FOOTER_KEY, plan_layout, rewrite};
pub use rollback::rollback_run;
pub use scan::{Candidate, ScanSpec, ScannedObject, Shard, list_candidates, manifest_candidates, read_footer, scan};
pub use stamp::stamp;
pub use store::{
    ConditionalUpload, DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE, INTERNAL_PREFIX, ObjectInfo, ObjectReader,
    ObjectVersion, S3_MAX_TAG_KEY, S3_MAX_TAG_VALUE, S3_MAX_TAGS, S3Api, Store, StoreKind, StoreOptions, Written,
    check_tag_limits, object_path, user_metadata,
};
pub use version::{MAX_VERSION, VersionSource, parse_version, reconcile, schema_of_version_key, version_key};

#[doc(hidden)]
pub use inventory;
pub use tokio_util::sync::CancellationToken;
