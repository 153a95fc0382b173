use super::*;
use crate::error::Error;
use crate::rewrite::contract::{apply_chain, output_schemas};
use crate::rewrite::{Footer, rewrite};

fn input_batch() -> (SchemaRef, RecordBatch) {
    let data = file(1);
    let batch = batches(&data).remove(0);
    (batch.schema(), batch)
}

#[test]
fn each_broken_rule_fails_the_object_naming_it_and_the_step() {
    static PANICS: Broken = Broken::Panics;
    static DROPS: Broken = Broken::DropsARow;
    static OTHER: Broken = Broken::OtherSchema;
    let (schema, batch) = input_batch();
    let cases: [(&'static Broken, &str, &str); 3] = [
        (&PANICS, "StepPanicked", "the step fell over"),
        (&DROPS, "StepContract", "returned 2 rows for 3 input rows"),
        (&OTHER, "StepContract", "but declared"),
    ];
    for (step, kind, says) in cases {
        let chain = [registration(step, "Broken")];
        let schemas = output_schemas("dir/f.parquet", &schema, &chain).unwrap();
        let err = apply_chain("dir/f.parquet", batch.clone(), &chain, &schemas).unwrap_err();
        assert_eq!(err.kind().name(), kind, "{err}");
        let text = err.to_string();
        assert!(
            text.starts_with("dir/f.parquet:") && text.contains(says) && text.contains("s 1->2"),
            "{text}"
        );
    }
}

#[test]
fn a_schema_the_step_refuses_fails_before_any_data_is_read() {
    static REFUSES: Broken = Broken::RefusesTheSchema;
    let (schema, _) = input_batch();
    let err = output_schemas("f", &schema, &[registration(&REFUSES, "Broken")]).unwrap_err();
    assert!(
        matches!(&err, Error::Step { message, .. } if message == "cannot migrate schema: column b is missing"),
        "{err}"
    );
    let data = file(1);
    let footer = Footer::parse("f", &data).unwrap();
    assert!(rewrite("f", data, &footer, &[registration(&REFUSES, "Broken")], VERSION_KEY, 2).is_err());
}

#[test]
fn a_chain_runs_in_order_on_each_step_s_declared_schema() {
    static DOUBLE: Double = Double;
    let (schema, batch) = input_batch();
    let chain = [registration(&DOUBLE, "Double")];
    let schemas = output_schemas("f", &schema, &chain).unwrap();
    let out = apply_chain("f", batch, &chain, &schemas).unwrap();
    assert_eq!(out.schema(), schemas[0]);
    let double = out
        .column_by_name("double")
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert_eq!(double.values().to_vec(), [0, 2, 4]);
}
