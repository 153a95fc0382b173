//! Which output columns are copied as encoded chunks and which are computed, for a chain of
//! steps. Pure: decided from schemas and the steps' declared column use.

use std::collections::{BTreeSet, HashMap};

use arrow_schema::{Schema, SchemaRef};

use crate::migration::{ColumnUse, StepRegistration};

/// How each column of the output is produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Input (file) field indexes to decode, ascending.
    pub decode: Vec<usize>,
    /// Input fields a step renames and no step reads, ascending: the steps are given them as
    /// nulls of their type (their values are copied, never decoded).
    pub stand_ins: Vec<usize>,
    /// Per output field: `Some(input field index)` when it is copied from the input as encoded
    /// chunks (under its output name), `None` when it is encoded from the steps' output.
    pub sources: Vec<Option<usize>>,
}

impl Layout {
    /// Every column decoded and re-encoded: always correct.
    pub fn full(input: &Schema, output: &Schema) -> Self {
        Self {
            decode: (0..input.fields().len()).collect(),
            stand_ins: Vec::new(),
            sources: vec![None; output.fields().len()],
        }
    }

    /// Number of output columns copied without decoding.
    pub fn copied(&self) -> usize {
        self.sources.iter().filter(|s| s.is_some()).count()
    }

    /// Whether no output column is computed: the steps never see data.
    pub fn nothing_computed(&self) -> bool {
        self.sources.iter().all(Option::is_some)
    }
}

/// Plans the columns of a chain whose steps all declare their column use. `output` is the
/// chain's final schema computed from the whole `input` schema.
///
/// Each column is followed through the chain by name: a step's renames carry an input column
/// to its new name, a step's writes make a column computed. A final column is copied when it
/// is still an input column, under this or an earlier name, of the same type; the input columns
/// any step reads are decoded. Returns `None` when a step does not declare (then everything is
/// decoded).
pub fn plan_layout(input: &Schema, output: &Schema, chain: &[StepRegistration]) -> Option<Layout> {
    // Current name -> the input field it still is, or `None` once a step computed it.
    let mut origin: HashMap<String, Option<usize>> = input
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name().clone(), Some(i)))
        .collect();
    let mut decode = BTreeSet::new();
    let mut renamed = BTreeSet::new();
    for step in chain {
        let ColumnUse::Declared { reads, writes } = step.migration.column_use() else {
            return None;
        };
        decode.extend(reads.iter().filter_map(|name| origin.get(*name).copied().flatten()));
        for (old, new) in step.migration.renames() {
            let from = origin.remove(*old).flatten();
            renamed.extend(from);
            origin.insert((*new).to_string(), from);
        }
        for name in writes {
            origin.insert((*name).to_string(), None);
        }
    }
    let sources = output
        .fields()
        .iter()
        .map(|out| {
            let index = origin.get(out.name()).copied().flatten()?;
            (input.field(index).data_type() == out.data_type()).then_some(index)
        })
        .collect();
    Some(Layout {
        stand_ins: renamed.difference(&decode).copied().collect(),
        decode: decode.into_iter().collect(),
        sources,
    })
}

/// Whether every rename a step declares is what its schema does: where the step's input has
/// `old`, its output has `new` of the same type and no longer `old`. `schemas` are the steps'
/// outputs over the whole `input`, in chain order. A rename that does not hold would hand a
/// computed column the stand-in's nulls, so the caller then decodes everything instead.
pub fn renames_hold(input: &SchemaRef, schemas: &[SchemaRef], chain: &[StepRegistration]) -> bool {
    let inputs = std::iter::once(input).chain(schemas.iter());
    chain.iter().zip(inputs.zip(schemas)).all(|(step, (before, after))| {
        step.migration
            .renames()
            .iter()
            .all(|(old, new)| match before.field_with_name(old) {
                Err(_) => true,
                Ok(field) => {
                    after.field_with_name(old).is_err()
                        && after
                            .field_with_name(new)
                            .is_ok_and(|renamed| renamed.data_type() == field.data_type())
                }
            })
    })
}

/// The input schema the steps run on when not every column is decoded: the decoded fields and
/// the stand-ins (as nullable), in file order.
pub(super) fn decoded_schema(input: &SchemaRef, layout: &Layout) -> SchemaRef {
    let fields: Vec<_> = thin_fields(layout)
        .map(|(index, stand_in)| {
            let field = input.field(index);
            if stand_in {
                std::sync::Arc::new(field.clone().with_nullable(true))
            } else {
                input.fields()[index].clone()
            }
        })
        .collect();
    std::sync::Arc::new(Schema::new_with_metadata(fields, input.metadata().clone()))
}

/// The input fields the steps run on, in file order, each with whether it is a stand-in.
pub(super) fn thin_fields(layout: &Layout) -> impl Iterator<Item = (usize, bool)> + '_ {
    let mut all: Vec<(usize, bool)> = layout
        .decode
        .iter()
        .map(|i| (*i, false))
        .chain(layout.stand_ins.iter().map(|i| (*i, true)))
        .collect();
    all.sort_unstable();
    all.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::{Migration, StepError};
    use arrow_array::RecordBatch;
    use arrow_schema::{DataType, Field};
    use std::sync::Arc;

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

    fn reg(step: &'static dyn Migration, from: u32) -> StepRegistration {
        StepRegistration {
            revision: "",
            crate_id: "test",
            schema: "s",
            from,
            to: from + 1,
            name: "test step",
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
                    stand_ins: vec![],
                    sources: vec![Some(0), Some(1), Some(2), Some(3), Some(4), Some(5), None],
                }),
            ),
            (
                vec![reg(&ADD, 1), reg(&RENAME, 2)],
                &after_both,
                Some(Layout {
                    decode: vec![1, 2, 3, 4],
                    stand_ins: vec![],
                    sources: vec![Some(0), None, None, Some(3), Some(4), Some(5), None],
                }),
            ),
            (vec![reg(&ADD, 1), reg(&ALL, 2)], &after_add, None),
        ];
        for (chain, output, expected) in cases {
            assert_eq!(plan_layout(&input, output, &chain), expected, "{output}");
        }
    }

    /// Renames declared by the steps: a renamed column is copied under its new name through a
    /// chain of renames, given to the steps as a stand-in unless one reads it, and computed
    /// once a step writes it.
    #[test]
    fn renamed_columns_are_followed_through_the_chain() {
        struct Renaming(ColumnUse, &'static [(&'static str, &'static str)]);
        impl Migration for Renaming {
            fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef, StepError> {
                Ok(input.clone())
            }
            fn transform(&self, batch: RecordBatch, _: &SchemaRef) -> Result<RecordBatch, StepError> {
                Ok(batch)
            }
            fn column_use(&self) -> ColumnUse {
                self.0
            }
            fn renames(&self) -> &'static [(&'static str, &'static str)] {
                self.1
            }
        }
        static KIND_TO_SORT: Renaming = Renaming(
            ColumnUse::Declared {
                reads: &["dev"],
                writes: &["dev"],
            },
            &[("kind", "sort")],
        );
        static SORT_TO_CLASS_READ: Renaming = Renaming(
            ColumnUse::Declared {
                reads: &["sort"],
                writes: &["m"],
            },
            &[("sort", "class")],
        );
        static CLASS_WRITTEN: Renaming = Renaming(
            ColumnUse::Declared {
                reads: &[],
                writes: &["class"],
            },
            &[],
        );
        use DataType::*;
        let input = schema(&[("ts", Int64), ("dev", Utf8), ("kind", Utf8)]);
        let one = schema(&[("ts", Int64), ("dev", Utf8), ("sort", Utf8)]);
        let two = schema(&[("ts", Int64), ("dev", Utf8), ("class", Utf8), ("m", Float64)]);
        let cases: Vec<(Vec<StepRegistration>, &Schema, Layout)> = vec![
            (
                vec![reg(&KIND_TO_SORT, 1)],
                &one,
                Layout {
                    decode: vec![1],
                    stand_ins: vec![2],
                    sources: vec![Some(0), None, Some(2)],
                },
            ),
            (
                vec![reg(&KIND_TO_SORT, 1), reg(&SORT_TO_CLASS_READ, 2)],
                &two,
                Layout {
                    decode: vec![1, 2],
                    stand_ins: vec![],
                    sources: vec![Some(0), None, Some(2), None],
                },
            ),
            (
                vec![
                    reg(&KIND_TO_SORT, 1),
                    reg(&SORT_TO_CLASS_READ, 2),
                    reg(&CLASS_WRITTEN, 3),
                ],
                &two,
                Layout {
                    decode: vec![1, 2],
                    stand_ins: vec![],
                    sources: vec![Some(0), None, None, None],
                },
            ),
        ];
        for (chain, output, expected) in cases {
            assert_eq!(plan_layout(&input, output, &chain), Some(expected), "{output}");
        }
        // A stand-in is nullable, whatever the input says.
        let strict = Arc::new(Schema::new(vec![
            Field::new("ts", Int64, false),
            Field::new("kind", Utf8, false),
        ]));
        let layout = Layout {
            decode: vec![0],
            stand_ins: vec![1],
            sources: vec![Some(0), Some(1)],
        };
        let thin = decoded_schema(&strict, &layout);
        assert!(!thin.field(0).is_nullable() && thin.field(1).is_nullable());
    }

    #[test]
    fn a_column_whose_type_changed_is_never_copied() {
        let input = schema(&[("a", DataType::Int32)]);
        let output = schema(&[("a", DataType::Int64)]);
        let layout = plan_layout(&input, &output, &[reg(&ADD, 1)]).unwrap();
        assert_eq!(layout.sources, vec![None]);
    }
}
