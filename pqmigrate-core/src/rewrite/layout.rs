//! Which output columns are copied as encoded chunks and which are computed, for a chain of
//! steps. Pure: decided from schemas and the steps' declared column use.

use std::collections::BTreeSet;

use arrow::datatypes::{Schema, SchemaRef};

use crate::migration::{ColumnUse, StepRegistration};

/// How each column of the output is produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Input (file) field indexes to decode, ascending.
    pub decode: Vec<usize>,
    /// Per output field: `Some(input field index)` when it is copied from the input as encoded
    /// chunks, `None` when it is encoded from the steps' output.
    pub sources: Vec<Option<usize>>,
}

impl Layout {
    /// Every column decoded and re-encoded: always correct.
    pub fn full(input: &Schema, output: &Schema) -> Self {
        Self {
            decode: (0..input.fields().len()).collect(),
            sources: vec![None; output.fields().len()],
        }
    }

    /// Number of output columns copied without decoding.
    pub fn copied(&self) -> usize {
        self.sources.iter().filter(|s| s.is_some()).count()
    }
}

/// Plans the columns of a chain whose steps all declare their column use. `output` is the
/// chain's final schema computed from the whole `input` schema.
///
/// A final column is copied when it is an input column of the same name and type that no step
/// writes; the columns any step reads are decoded. Returns `None` when a step does not declare
/// (then everything is decoded).
pub fn plan_layout(input: &Schema, output: &Schema, chain: &[StepRegistration]) -> Option<Layout> {
    let mut reads = BTreeSet::new();
    let mut writes = BTreeSet::new();
    for step in chain {
        match step.migration.column_use() {
            ColumnUse::All => return None,
            ColumnUse::Declared { reads: r, writes: w } => {
                reads.extend(r.iter().copied());
                writes.extend(w.iter().copied());
            }
        }
    }
    let decode = input
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| reads.contains(f.name().as_str()))
        .map(|(i, _)| i)
        .collect();
    let sources = output
        .fields()
        .iter()
        .map(|out| {
            if writes.contains(out.name().as_str()) {
                return None;
            }
            let (index, field) = input.column_with_name(out.name())?;
            (field.data_type() == out.data_type()).then_some(index)
        })
        .collect();
    Some(Layout { decode, sources })
}

/// The input schema restricted to the decoded fields, in file order.
pub fn decoded_schema(input: &SchemaRef, layout: &Layout) -> SchemaRef {
    std::sync::Arc::new(
        input
            .project(&layout.decode)
            .expect("decode indexes come from the schema"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::{Migration, StepError};
    use arrow::datatypes::{DataType, Field};
    use arrow::record_batch::RecordBatch;

    struct Declared(ColumnUse);
    impl Migration for Declared {
        fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef, StepError> {
            Ok(input.clone())
        }
        fn transform(&self, batch: RecordBatch, _: &SchemaRef) -> Result<RecordBatch, StepError> {
            Ok(batch)
        }
        fn column_use(&self) -> ColumnUse {
            self.0
        }
    }

    static ADD: Declared = Declared(ColumnUse::Declared {
        reads: &["x", "y"],
        writes: &["m"],
    });
    static RENAME: Declared = Declared(ColumnUse::Declared {
        reads: &["kind", "dev"],
        writes: &["sort", "dev"],
    });
    static ALL: Declared = Declared(ColumnUse::All);

    fn reg(step: &'static Declared, from: u32) -> StepRegistration {
        StepRegistration {
            revision: "",
            crate_id: "test",
            schema: "s",
            from,
            to: from + 1,
            name: "Declared",
            migration: step,
        }
    }

    fn schema(fields: &[(&str, DataType)]) -> Schema {
        Schema::new(
            fields
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn layout_table() {
        use DataType::*;
        let dict = Dictionary(Box::new(Int32), Box::new(Utf8));
        let input = schema(&[
            ("ts", Int64),
            ("dev", Utf8),
            ("kind", Utf8),
            ("x", Float64),
            ("y", Float64),
            ("v", Float64),
        ]);
        let after_add = schema(&[
            ("ts", Int64),
            ("dev", Utf8),
            ("kind", Utf8),
            ("x", Float64),
            ("y", Float64),
            ("v", Float64),
            ("m", Float64),
        ]);
        let after_both = schema(&[
            ("ts", Int64),
            ("dev", dict.clone()),
            ("sort", Utf8),
            ("x", Float64),
            ("y", Float64),
            ("v", Float64),
            ("m", Float64),
        ]);
        let cases: Vec<(Vec<StepRegistration>, &Schema, Option<Layout>)> = vec![
            (
                vec![reg(&ADD, 1)],
                &after_add,
                Some(Layout {
                    decode: vec![3, 4],
                    sources: vec![Some(0), Some(1), Some(2), Some(3), Some(4), Some(5), None],
                }),
            ),
            (
                vec![reg(&ADD, 1), reg(&RENAME, 2)],
                &after_both,
                Some(Layout {
                    decode: vec![1, 2, 3, 4],
                    sources: vec![Some(0), None, None, Some(3), Some(4), Some(5), None],
                }),
            ),
            (vec![reg(&ADD, 1), reg(&ALL, 2)], &after_add, None),
        ];
        for (chain, output, expected) in cases {
            assert_eq!(plan_layout(&input, output, &chain), expected, "{output}");
        }
    }

    #[test]
    fn a_column_whose_type_changed_is_never_copied() {
        let input = schema(&[("a", DataType::Int32)]);
        let output = schema(&[("a", DataType::Int64)]);
        let layout = plan_layout(&input, &output, &[reg(&ADD, 1)]).unwrap();
        assert_eq!(layout.sources, vec![None]);
    }
}
