//! The `pandas` footer entry that pandas writes (through pyarrow or fastparquet) kept true to the
//! rewritten file: the columns it lists are the output's, renamed where the steps renamed, with
//! pandas and NumPy types for the columns the steps computed, in the convention of the library
//! that wrote the file. pandas reads the entry to restore dtypes a Parquet type does not carry
//! (a nullable `Int8` rather than `float64`, the index, time zones).

use arrow_schema::{DataType, Field, Schema};
use serde_json::{Map, Value, json};

/// The footer key pandas writes.
pub(super) const PANDAS_KEY: &str = "pandas";

/// `pandas` as written for `input`, updated for `output`, whose column `i` carries input column
/// `sources[i]` unchanged (renamed or not) or, when `None`, was computed by the steps. `None`
/// when the entry is not pandas metadata this can read; the caller then keeps it as it was.
pub(super) fn updated(pandas: &str, input: &Schema, output: &Schema, sources: &[Option<usize>]) -> Option<String> {
    let mut metadata: Map<String, Value> = serde_json::from_str(pandas).ok()?;
    let old: Vec<Map<String, Value>> = metadata
        .get("columns")?
        .as_array()?
        .iter()
        .map(|c| c.as_object().cloned())
        .collect::<Option<_>>()?;
    let written_by_fastparquet = metadata
        .get("creator")
        .and_then(|c| c.get("library"))
        .and_then(Value::as_str)
        == Some("fastparquet");
    // Older pandas wrote no `field_name`; its `name` is the column's then.
    let entry_of = |name: &str| {
        old.iter()
            .find(|c| c.get("field_name").or_else(|| c.get("name")).and_then(Value::as_str) == Some(name))
    };
    let columns = output
        .fields()
        .iter()
        .zip(sources)
        .map(|(field, source)| {
            let kept = source.and_then(|i| {
                let old_name = input.field(i).name();
                let mut entry = entry_of(old_name)?.clone();
                if entry.get("name").and_then(Value::as_str) == Some(old_name.as_str()) {
                    entry.insert("name".into(), json!(field.name()));
                }
                entry.insert("field_name".into(), json!(field.name()));
                Some(entry)
            });
            Value::Object(kept.unwrap_or_else(|| computed(field, input, &entry_of, written_by_fastparquet)))
        })
        .collect();
    metadata.insert("columns".into(), Value::Array(columns));
    serde_json::to_string(&metadata).ok()
}

/// The entry of a column the steps computed.
fn computed<'a>(
    field: &Field,
    input: &Schema,
    entry_of: &dyn Fn(&str) -> Option<&'a Map<String, Value>>,
    written_by_fastparquet: bool,
) -> Map<String, Value> {
    // A dictionary column is listed as its values' type, never as `categorical`: fastparquet
    // reads a categorical column as if every row group had the first one's dictionary, and a
    // row group by row group rewrite does not promise that (it would mislabel values silently).
    let data_type = match field.data_type() {
        DataType::Dictionary(_, values) => values.as_ref(),
        other => other,
    };
    // Types that pandas maps one way: as the writer listed an input column of the same kind
    // (pandas 3 and pandas 2 differ on strings, and timestamps carry their unit and zone).
    // The input column of the same name first (a column whose type a step changed).
    let sibling = same_kind_as_copied(data_type).then(|| {
        let own = input.field_with_name(field.name()).ok();
        own.into_iter()
            .chain(input.fields().iter().map(AsRef::as_ref))
            .filter(|f| same_kind(f.data_type(), data_type))
            .filter_map(|f| entry_of(f.name()))
            .find(|e| e.get("pandas_type").and_then(Value::as_str) != Some("categorical"))
    });
    let (pandas_type, numpy_type, metadata) = match sibling.flatten() {
        Some(e) => (
            e.get("pandas_type").cloned().unwrap_or(Value::Null),
            e.get("numpy_type").cloned().unwrap_or(Value::Null),
            e.get("metadata").cloned().unwrap_or(Value::Null),
        ),
        None => {
            let (pandas, numpy, metadata) = by_type(data_type, field.is_nullable(), written_by_fastparquet);
            (json!(pandas), json!(numpy), metadata)
        }
    };
    let mut entry = Map::new();
    entry.insert("name".into(), json!(field.name()));
    entry.insert("field_name".into(), json!(field.name()));
    entry.insert("pandas_type".into(), pandas_type);
    entry.insert("numpy_type".into(), numpy_type);
    entry.insert("metadata".into(), metadata);
    entry
}

/// Whether a computed column of this type takes the listing of an input column of its kind.
fn same_kind_as_copied(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Timestamp(_, _)
    )
}

fn same_kind(a: &DataType, b: &DataType) -> bool {
    let text = |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    (text(a) && text(b)) || a == b
}

/// pandas and NumPy types of a column no input column says how to list. A nullable integer or
/// boolean is pandas' nullable extension type (`Int8`, `boolean`), which is what a pandas step
/// computing it with missing values makes; pyarrow and fastparquet put that name in different
/// fields.
fn by_type(data_type: &DataType, nullable: bool, written_by_fastparquet: bool) -> (String, String, Value) {
    use DataType::*;
    let extension = |numpy: &str, pandas_name: &str| {
        if !nullable {
            (numpy.to_string(), numpy.to_string())
        } else if written_by_fastparquet {
            (pandas_name.to_string(), numpy.to_string())
        } else {
            (numpy.to_string(), pandas_name.to_string())
        }
    };
    let plain = |pandas: &str, numpy: &str| (pandas.to_string(), numpy.to_string());
    let ((pandas, numpy), metadata) = match data_type {
        Int8 => (extension("int8", "Int8"), Value::Null),
        Int16 => (extension("int16", "Int16"), Value::Null),
        Int32 => (extension("int32", "Int32"), Value::Null),
        Int64 => (extension("int64", "Int64"), Value::Null),
        UInt8 => (extension("uint8", "UInt8"), Value::Null),
        UInt16 => (extension("uint16", "UInt16"), Value::Null),
        UInt32 => (extension("uint32", "UInt32"), Value::Null),
        UInt64 => (extension("uint64", "UInt64"), Value::Null),
        Boolean if nullable && written_by_fastparquet => (plain("boolean", "bool"), Value::Null),
        Boolean if nullable => (plain("bool", "boolean"), Value::Null),
        Boolean => (plain("bool", "bool"), Value::Null),
        Float16 => (plain("float16", "float16"), Value::Null),
        Float32 => (plain("float32", "float32"), Value::Null),
        Float64 => (plain("float64", "float64"), Value::Null),
        Utf8 | LargeUtf8 | Utf8View => (plain("unicode", "object"), Value::Null),
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => (plain("bytes", "object"), Value::Null),
        Date32 | Date64 => (plain("date", "object"), Value::Null),
        Timestamp(unit, None) => (
            plain("datetime", &format!("datetime64[{}]", unit_name(unit))),
            Value::Null,
        ),
        Timestamp(unit, Some(zone)) => (
            plain("datetimetz", &format!("datetime64[{}]", unit_name(unit))),
            json!({ "timezone": zone.as_ref() }),
        ),
        Decimal32(..) | Decimal64(..) | Decimal128(..) | Decimal256(..) => (plain("decimal", "object"), Value::Null),
        _ => (plain("object", "object"), Value::Null),
    };
    (pandas, numpy, metadata)
}

fn unit_name(unit: &arrow_schema::TimeUnit) -> &'static str {
    match unit {
        arrow_schema::TimeUnit::Second => "s",
        arrow_schema::TimeUnit::Millisecond => "ms",
        arrow_schema::TimeUnit::Microsecond => "us",
        arrow_schema::TimeUnit::Nanosecond => "ns",
    }
}
