use parquet::basic::{LogicalType, Repetition, Type as PhysicalType};
use parquet::schema::types::Type;

use crate::rewrite::renames::renamed_type;

#[test]
fn a_renamed_field_keeps_its_physical_and_logical_type() {
    let field = Arc::new(
        Type::primitive_type_builder("temp", PhysicalType::BYTE_ARRAY)
            .with_repetition(Repetition::REQUIRED)
            .with_logical_type(Some(LogicalType::String))
            .with_id(Some(7))
            .build()
            .unwrap(),
    );
    let renamed = renamed_type(&field, "temperature").unwrap();
    assert_eq!(renamed.name(), "temperature");
    assert_eq!(renamed.get_physical_type(), PhysicalType::BYTE_ARRAY);
    let info = renamed.get_basic_info();
    assert_eq!(info.repetition(), Repetition::REQUIRED);
    assert_eq!(info.logical_type_ref(), Some(&LogicalType::String));
    assert_eq!(info.id(), 7);
    assert!(
        Arc::ptr_eq(&renamed_type(&field, "temp").unwrap(), &field),
        "an unchanged name is the field itself"
    );
}

use std::sync::Arc;
