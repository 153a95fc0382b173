//! The steps' contract: their declared output schemas, the chain applied to a batch with each
//! output checked and panics contained, the writer properties they ask for, and the schemas the
//! chain yields on the decoded columns only.

use std::panic::{AssertUnwindSafe, catch_unwind};

use std::ops::Range;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::SchemaDescriptor;

use crate::error::{Error, Result};
use crate::migration::StepRegistration;

use super::{Footer, Layout, decoded_schema};

/// The writer properties of a rewrite: the input's codec, then each step's changes.
pub(super) fn writer_properties(key: &str, footer: &Footer, chain: &[StepRegistration]) -> Result<WriterProperties> {
    let builder = WriterProperties::builder().set_compression(footer.compression());
    let builder = chain.iter().try_fold(builder, |builder, step| {
        guard(key, step, || Ok(step.migration.writer_properties(builder)))
    })?;
    Ok(builder
        .set_created_by(format!("pqmigrate version {}", env!("CARGO_PKG_VERSION")))
        .build())
}

/// Leaf column ranges of each top-level field.
pub(super) fn leaf_ranges(descr: &SchemaDescriptor, fields: usize) -> Vec<Range<usize>> {
    let mut ranges = vec![0..0; fields];
    for leaf in 0..descr.num_columns() {
        let root = descr.get_column_root_idx(leaf);
        let range = &mut ranges[root];
        if range.start == range.end {
            *range = leaf..leaf + 1;
        } else {
            range.end = leaf + 1;
        }
    }
    ranges
}

/// The chain's schemas on the decoded columns only, when every computed output column comes out
/// of them with its final type; `None` sends the rewrite to a full decode.
pub(super) fn thin_schemas(
    key: &str,
    input: &SchemaRef,
    output: &SchemaRef,
    layout: &Layout,
    chain: &[StepRegistration],
) -> Option<Vec<SchemaRef>> {
    if layout.nothing_computed() {
        // Every output column is copied: the steps never run on data.
        return Some(Vec::new());
    }
    if layout.decode.is_empty() {
        return None;
    }
    let thin = output_schemas(key, &decoded_schema(input, layout), chain).ok()?;
    let last = thin.last()?;
    let complete = layout.sources.iter().enumerate().all(|(i, source)| {
        source.is_some() || {
            let want = output.field(i);
            last.field_with_name(want.name())
                .is_ok_and(|got| got.data_type() == want.data_type())
        }
    });
    complete.then_some(thin)
}

/// Each step's declared output schema, in chain order.
pub(crate) fn output_schemas(key: &str, input: &SchemaRef, chain: &[StepRegistration]) -> Result<Vec<SchemaRef>> {
    let mut schemas = Vec::with_capacity(chain.len());
    let mut current = input.clone();
    for step in chain {
        let next = guard(key, step, || step.migration.output_schema(&current)).map_err(|e| match e {
            Error::Step { key, step, message } => Error::Step {
                key,
                step,
                message: format!("cannot migrate schema: {message}"),
            },
            other => other,
        })?;
        schemas.push(next.clone());
        current = next;
    }
    Ok(schemas)
}

pub(super) fn apply_chain(
    key: &str,
    mut batch: RecordBatch,
    chain: &[StepRegistration],
    schemas: &[SchemaRef],
) -> Result<RecordBatch> {
    for (step, expected) in chain.iter().zip(schemas) {
        let rows = batch.num_rows();
        let out = guard(key, step, || step.migration.transform(batch, expected))?;
        if out.num_rows() != rows {
            return Err(contract(
                key,
                step,
                format!("returned {} rows for {rows} input rows", out.num_rows()),
            ));
        }
        let got = out.schema();
        let same = got.fields().len() == expected.fields().len()
            && got
                .fields()
                .iter()
                .zip(expected.fields())
                .all(|(g, e)| g.name() == e.name() && g.data_type() == e.data_type());
        if !same {
            return Err(contract(
                key,
                step,
                format!("returned schema {got} but declared {expected}"),
            ));
        }
        batch = RecordBatch::try_new(expected.clone(), out.columns().to_vec())
            .map_err(|e| contract(key, step, e.to_string()))?;
    }
    Ok(batch)
}

/// Runs a step callback, turning its error or panic into a per-object error.
pub(super) fn guard<T>(
    key: &str,
    step: &StepRegistration,
    f: impl FnOnce() -> Result<T, crate::migration::StepError>,
) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Error::Step {
            key: key.to_string(),
            step: step.id(),
            message: error_chain(e.as_ref()),
        }),
        Err(payload) => Err(Error::StepPanicked {
            key: key.to_string(),
            step: step.id(),
            message: panic_message(payload.as_ref()),
        }),
    }
}

pub(super) fn contract(key: &str, step: &StepRegistration, message: String) -> Error {
    Error::StepContract {
        key: key.to_string(),
        step: step.id(),
        message,
    }
}

pub(super) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_string())
}
