//! The [`Migration`] trait a step implements, and its registration with `inventory`.

use std::fmt;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::file::properties::WriterPropertiesBuilder;

/// The error a step returns. Any error type converts into it with `?`.
pub type StepError = Box<dyn std::error::Error + Send + Sync>;

/// One schema migration step: a pure, synchronous transform of record batches.
///
/// The core owns all I/O: it streams an object row group by row group, calls
/// [`Migration::transform`] on each batch, checks the result against
/// [`Migration::output_schema`] and the input row count, and writes the object back.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{ArrayRef, Float64Array};
/// use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
/// use arrow::record_batch::RecordBatch;
/// use pqmigrate_core::{Migration, StepError};
///
/// /// Adds `double_x` = 2 * x.
/// struct DoubleX;
///
/// impl Migration for DoubleX {
///     fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef, StepError> {
///         let mut fields: Vec<_> = input.fields().iter().cloned().collect();
///         fields.push(Arc::new(Field::new("double_x", DataType::Float64, true)));
///         Ok(Arc::new(Schema::new(fields)))
///     }
///
///     fn transform(&self, batch: RecordBatch, output: &SchemaRef) -> Result<RecordBatch, StepError> {
///         let x = batch
///             .column_by_name("x")
///             .ok_or("column x is missing")?
///             .as_any()
///             .downcast_ref::<Float64Array>()
///             .ok_or("column x is not float64")?;
///         let doubled: Float64Array = x.iter().map(|v| v.map(|v| 2.0 * v)).collect();
///         let mut columns = batch.columns().to_vec();
///         columns.push(Arc::new(doubled) as ArrayRef);
///         Ok(RecordBatch::try_new(output.clone(), columns)?)
///     }
/// }
///
/// pqmigrate_core::register_step!("example", 1 => 2, DoubleX);
/// ```
pub trait Migration: Send + Sync + 'static {
    /// The schema this step produces from `input`. Called once per object before any data is
    /// read, so a file whose schema the step cannot handle fails early with a clear error.
    ///
    /// # Errors
    /// When `input` lacks a column the step needs, or has it with the wrong type.
    fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef, StepError>;

    /// Transforms one batch. `output` is the schema [`Migration::output_schema`] returned for this
    /// object; the result must have exactly that schema and as many rows as `batch`.
    ///
    /// # Errors
    /// Any error fails this object only; the object is left unchanged.
    fn transform(&self, batch: RecordBatch, output: &SchemaRef) -> Result<RecordBatch, StepError>;

    /// Which input columns the step reads and which it carries over untouched. The writer copies
    /// untouched columns as encoded column chunks instead of decoding and re-encoding them.
    /// The default, [`ColumnUse::All`], is always correct but slower.
    fn column_use(&self) -> ColumnUse {
        ColumnUse::All
    }

    /// Input columns this step renames, as `(old, new)` pairs: output column `new` holds input
    /// column `old` with its values and type unchanged. With a declared
    /// [`Migration::column_use`], a renamed column no step reads is carried over as its
    /// encoded chunks under the new name, so the rename costs only the footer. List neither
    /// name in `writes`; list `old` in `reads` only when the transform reads its values.
    ///
    /// On that path the step runs on the columns it reads, plus each renamed column as a
    /// nullable column of nulls of its type (its real values are copied, not decoded): a
    /// rename written as a map over the input's fields by name works unchanged. The default
    /// renames nothing.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use arrow::datatypes::{Schema, SchemaRef};
    /// # use arrow::record_batch::RecordBatch;
    /// # use pqmigrate_core::{ColumnUse, Migration, StepError};
    /// /// Renames `temp` to `temperature_c`.
    /// struct RenameTemp;
    /// impl Migration for RenameTemp {
    ///     fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef, StepError> {
    ///         let fields: Vec<_> = input.fields().iter()
    ///             .map(|f| match f.name().as_str() {
    ///                 "temp" => Arc::new(f.as_ref().clone().with_name("temperature_c")),
    ///                 _ => f.clone(),
    ///             })
    ///             .collect();
    ///         Ok(Arc::new(Schema::new_with_metadata(fields, input.metadata().clone())))
    ///     }
    ///     fn transform(&self, batch: RecordBatch, output: &SchemaRef) -> Result<RecordBatch, StepError> {
    ///         Ok(RecordBatch::try_new(output.clone(), batch.columns().to_vec())?)
    ///     }
    ///     fn column_use(&self) -> ColumnUse {
    ///         ColumnUse::Declared { reads: &[], writes: &[] }
    ///     }
    ///     fn renames(&self) -> &'static [(&'static str, &'static str)] {
    ///         &[("temp", "temperature_c")]
    ///     }
    /// }
    /// ```
    fn renames(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// What the step computes, stated as text, for steps that have it (a SQL step's normalized
    /// query and the engine version it runs on): the step's fingerprint is then a hash of it,
    /// so an edited step is told apart from the one that migrated earlier objects. `None` (the
    /// default) for compiled steps, whose fingerprint names their type, column use, revision
    /// and crate.
    fn definition(&self) -> Option<String> {
        None
    }

    /// Tunes how the columns this step writes are encoded (dictionary, encodings, statistics,
    /// bloom filters), for example turning the dictionary off for a continuous float feature,
    /// where building one only to abandon it costs more than the rest of the encoding. Called
    /// in chain order on the writer's properties, which start from the input's codec. Copied
    /// columns keep their encoding whatever is set here. The default changes nothing.
    ///
    /// ```
    /// # use arrow::datatypes::SchemaRef;
    /// # use arrow::record_batch::RecordBatch;
    /// # use parquet::file::properties::WriterPropertiesBuilder;
    /// # use parquet::schema::types::ColumnPath;
    /// # use pqmigrate_core::{Migration, StepError};
    /// struct AddScore;
    /// impl Migration for AddScore {
    ///     # fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef, StepError> { Ok(input.clone()) }
    ///     # fn transform(&self, b: RecordBatch, _: &SchemaRef) -> Result<RecordBatch, StepError> { Ok(b) }
    ///     fn writer_properties(&self, builder: WriterPropertiesBuilder) -> WriterPropertiesBuilder {
    ///         builder.set_column_dictionary_enabled(ColumnPath::from("score"), false)
    ///     }
    /// }
    /// ```
    fn writer_properties(&self, builder: WriterPropertiesBuilder) -> WriterPropertiesBuilder {
        builder
    }
}

/// What a step does with its input columns; see [`Migration::column_use`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnUse {
    /// The step may read and change any column.
    All,
    /// The step reads only `reads`; every input column it outputs under the same name is passed
    /// through unchanged (values and type), and it only adds or replaces the columns in `writes`.
    Declared {
        /// Input columns the step's transform reads.
        reads: &'static [&'static str],
        /// Output columns the step creates or changes; all other output columns are carried
        /// over untouched from its input.
        writes: &'static [&'static str],
    },
}

/// Identifies a step: schema id and `from -> to` versions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct StepId {
    /// Schema id, e.g. `sensorData`.
    pub schema: String,
    /// Version the step reads.
    pub from: u32,
    /// Version the step writes.
    pub to: u32,
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}->{}", self.schema, self.from, self.to)
    }
}

/// A registered step, as submitted to `inventory` by [`register_step!`](crate::register_step).
#[derive(Clone, Copy)]
pub struct StepRegistration {
    /// Schema id.
    pub schema: &'static str,
    /// Version the step reads.
    pub from: u32,
    /// Version the step writes.
    pub to: u32,
    /// The step's type name, for listings and fingerprints.
    pub name: &'static str,
    /// The revision the author declared (`revision = "..."` in [`register_step!`](crate::register_step));
    /// bump it when the step's code changes what it writes.
    pub revision: &'static str,
    /// Name and version of the crate that registered the step (`my-steps@1.2.0`).
    pub crate_id: &'static str,
    /// The step itself.
    pub migration: &'static dyn Migration,
}

impl StepRegistration {
    /// A short SHA-256 fingerprint of the step: schema id, versions, type name, columns read and
    /// written, the declared revision, and the name and version of the crate that registered
    /// it. Recorded with every object it migrates, so objects migrated by a different build of
    /// the same `from->to` can be found. A change to the step's code shows only through the
    /// revision or the crate version: bump one when the output changes. A step that states its
    /// [`Migration::definition`] (a SQL step) is fingerprinted by schema id, versions and that
    /// definition alone, so any edit of it shows.
    ///
    /// ```
    /// # use arrow::datatypes::SchemaRef;
    /// # use arrow::record_batch::RecordBatch;
    /// # use pqmigrate_core::{Migration, StepError, StepRegistration};
    /// struct Noop;
    /// impl Migration for Noop {
    ///     fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef, StepError> { Ok(input.clone()) }
    ///     fn transform(&self, b: RecordBatch, _: &SchemaRef) -> Result<RecordBatch, StepError> { Ok(b) }
    /// }
    /// let step = |revision| StepRegistration {
    ///     schema: "s", from: 1, to: 2, name: "Noop", revision, crate_id: "my-steps@1.0.0", migration: &Noop,
    /// };
    /// assert_eq!(step("1").fingerprint().len(), 16);
    /// assert_ne!(step("1").fingerprint(), step("2").fingerprint());
    /// ```
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        if let Some(definition) = self.migration.definition() {
            let identity = format!("{}|{}|{}|definition={definition}", self.schema, self.from, self.to);
            let digest = Sha256::digest(identity.as_bytes());
            return digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        }
        let mut columns = match self.migration.column_use() {
            ColumnUse::All => "all".to_string(),
            ColumnUse::Declared { reads, writes } => format!("reads={};writes={}", reads.join(","), writes.join(",")),
        };
        let renames = self.migration.renames();
        if !renames.is_empty() {
            let pairs: Vec<String> = renames.iter().map(|(old, new)| format!("{old}>{new}")).collect();
            columns.push_str(&format!(";renames={}", pairs.join(",")));
        }
        let identity = format!(
            "{}|{}|{}|{}|{}|rev={}|crate={}",
            self.schema, self.from, self.to, self.name, columns, self.revision, self.crate_id
        );
        let digest = Sha256::digest(identity.as_bytes());
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The step's id.
    pub fn id(&self) -> StepId {
        StepId {
            schema: self.schema.to_string(),
            from: self.from,
            to: self.to,
        }
    }
}

impl fmt::Debug for StepRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepRegistration")
            .field("schema", &self.schema)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("name", &self.name)
            .field("revision", &self.revision)
            .field("crate_id", &self.crate_id)
            .finish()
    }
}

inventory::collect!(StepRegistration);

/// Registers a step for a schema id and `from => to` versions, from any crate, optionally with
/// a revision that goes into its [fingerprint](StepRegistration::fingerprint)
/// (`register_step!("orders", 1 => 2, AddTotal, revision = "2")`).
///
/// The step value must be a constant expression (a unit struct, or a struct literal of
/// constants). A crate holding only steps must be named by the binary that runs them (for
/// example `use my_steps as _;`), or the linker drops its registrations.
///
/// ```
/// # use std::sync::Arc;
/// # use arrow::datatypes::SchemaRef;
/// # use arrow::record_batch::RecordBatch;
/// # use pqmigrate_core::{Migration, StepError};
/// struct Noop;
/// impl Migration for Noop {
///     fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef, StepError> { Ok(input.clone()) }
///     fn transform(&self, b: RecordBatch, _: &SchemaRef) -> Result<RecordBatch, StepError> { Ok(b) }
/// }
/// pqmigrate_core::register_step!("docs", 1 => 2, Noop);
/// ```
#[macro_export]
macro_rules! register_step {
    ($schema:expr, $from:literal => $to:literal, $step:expr) => {
        $crate::register_step!($schema, $from => $to, $step, revision = "");
    };
    ($schema:expr, $from:literal => $to:literal, $step:expr, revision = $revision:expr) => {
        $crate::inventory::submit! {
            $crate::StepRegistration {
                schema: $schema,
                from: $from,
                to: $to,
                name: stringify!($step),
                revision: $revision,
                crate_id: concat!(env!("CARGO_PKG_NAME"), "@", env!("CARGO_PKG_VERSION")),
                migration: &$step,
            }
        }
    };
}

/// Steps for the core's own tests.
#[cfg(test)]
pub(crate) mod testing {
    use arrow_array::RecordBatch;
    use arrow_schema::SchemaRef;

    use super::{Migration, StepError, StepRegistration};

    /// A step that changes nothing but the version.
    pub(crate) struct Same;

    impl Migration for Same {
        fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef, StepError> {
            Ok(input.clone())
        }
        fn transform(&self, batch: RecordBatch, _: &SchemaRef) -> Result<RecordBatch, StepError> {
            Ok(batch)
        }
    }

    /// [`Same`] registered for `schema`, `from -> to`.
    pub(crate) fn same(schema: &'static str, from: u32, to: u32) -> StepRegistration {
        StepRegistration {
            schema,
            from,
            to,
            name: "Same",
            revision: "",
            crate_id: "test",
            migration: &Same,
        }
    }
}
