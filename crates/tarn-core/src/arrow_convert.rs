//! Mapping between tarn's types and values and Arrow's.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array,
    Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    new_null_array,
};
use arrow::datatypes::{DataType, Field as ArrowField, Schema as ArrowSchema, SchemaRef, TimeUnit};
use parquet::arrow::PARQUET_FIELD_ID_META_KEY;
use tarn_spec::{Field, FieldId, PrimitiveType, Schema, Value};

use crate::error::{Error, Result};

/// The time zone of `timestamptz` columns in Arrow.
pub const UTC: &str = "UTC";

/// The Arrow type a column of `ty` has in memory and in Parquet.
pub fn arrow_type(ty: PrimitiveType) -> DataType {
    match ty {
        PrimitiveType::Boolean => DataType::Boolean,
        PrimitiveType::Int => DataType::Int32,
        PrimitiveType::Long => DataType::Int64,
        PrimitiveType::Float => DataType::Float32,
        PrimitiveType::Double => DataType::Float64,
        PrimitiveType::Decimal { precision, scale } => DataType::Decimal128(precision, scale as i8),
        PrimitiveType::Date => DataType::Date32,
        PrimitiveType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        PrimitiveType::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
        PrimitiveType::String => DataType::Utf8,
        PrimitiveType::Binary => DataType::Binary,
    }
}

/// The tarn type for an Arrow type, if the format has one. Several Arrow types map to one
/// tarn type (every string encoding is `string`); data is cast to [`arrow_type`] on write.
pub fn primitive_type(data_type: &DataType) -> Result<PrimitiveType> {
    Ok(match data_type {
        DataType::Boolean => PrimitiveType::Boolean,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::UInt8 | DataType::UInt16 => {
            PrimitiveType::Int
        }
        DataType::Int64 | DataType::UInt32 => PrimitiveType::Long,
        DataType::Float16 | DataType::Float32 => PrimitiveType::Float,
        DataType::Float64 => PrimitiveType::Double,
        DataType::Decimal128(p, s) if *s >= 0 => {
            tarn_spec::decimal(*p, *s as u8).map_err(Error::InvalidMetadata)?
        }
        DataType::Date32 => PrimitiveType::Date,
        DataType::Timestamp(_, None) => PrimitiveType::Timestamp,
        DataType::Timestamp(_, Some(_)) => PrimitiveType::TimestampTz,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => PrimitiveType::String,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => PrimitiveType::Binary,
        other => {
            return Err(Error::Unsupported(format!(
                "Arrow type {other} has no tarn column type; supported are booleans, integers, \
                 floats, decimals, dates, timestamps, strings and binaries"
            )));
        }
    })
}

/// The Arrow field of a column, carrying its field id as Parquet field-id metadata.
pub fn arrow_field(field: &Field) -> ArrowField {
    ArrowField::new(&field.name, arrow_type(field.field_type), !field.required).with_metadata(
        HashMap::from([(PARQUET_FIELD_ID_META_KEY.to_string(), field.id.to_string())]),
    )
}

/// The Arrow schema of a table schema, with field ids.
pub fn arrow_schema(schema: &Schema) -> SchemaRef {
    Arc::new(ArrowSchema::new(
        schema.fields().iter().map(arrow_field).collect::<Vec<_>>(),
    ))
}

/// The field id an Arrow field carries, if any.
pub fn field_id_of(field: &ArrowField) -> Option<FieldId> {
    field
        .metadata()
        .get(PARQUET_FIELD_ID_META_KEY)?
        .parse()
        .ok()
        .map(FieldId)
}

/// An array of `ty` holding `values`.
pub fn values_to_array(ty: PrimitiveType, values: &[Option<Value>]) -> Result<ArrayRef> {
    macro_rules! build {
        ($array:ty, $variant:ident) => {{
            let typed = values
                .iter()
                .map(|v| match v {
                    None => Ok(None),
                    Some(Value::$variant(x)) => Ok(Some(x.clone())),
                    Some(other) => Err(mismatch(ty, other)),
                })
                .collect::<Result<$array>>()?;
            Arc::new(typed) as ArrayRef
        }};
    }
    let array = match ty {
        PrimitiveType::Boolean => build!(BooleanArray, Boolean),
        PrimitiveType::Int => build!(Int32Array, Int),
        PrimitiveType::Long => build!(Int64Array, Long),
        PrimitiveType::Float => build!(Float32Array, Float),
        PrimitiveType::Double => build!(Float64Array, Double),
        PrimitiveType::Date => build!(Date32Array, Int),
        PrimitiveType::Timestamp => build!(TimestampMicrosecondArray, Long),
        PrimitiveType::TimestampTz => {
            let a: ArrayRef = build!(TimestampMicrosecondArray, Long);
            let a = a
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .expect("built above");
            Arc::new(a.clone().with_timezone(UTC))
        }
        PrimitiveType::Decimal { precision, scale } => {
            let a: ArrayRef = build!(Decimal128Array, Decimal);
            let a = a
                .as_any()
                .downcast_ref::<Decimal128Array>()
                .expect("built above");
            Arc::new(
                a.clone()
                    .with_precision_and_scale(precision, scale as i8)
                    .map_err(|e| Error::arrow("building a decimal array", e))?,
            )
        }
        PrimitiveType::String => build!(StringArray, String),
        PrimitiveType::Binary => {
            let typed = values
                .iter()
                .map(|v| match v {
                    None => Ok(None),
                    Some(Value::Binary(b)) => Ok(Some(b.as_slice())),
                    Some(other) => Err(mismatch(ty, other)),
                })
                .collect::<Result<BinaryArray>>()?;
            Arc::new(typed)
        }
    };
    Ok(array)
}

/// A one-element array of `ty` (a null one for `None`), for comparisons against a scalar.
pub fn scalar_array(ty: PrimitiveType, value: Option<&Value>) -> Result<ArrayRef> {
    match value {
        None => Ok(new_null_array(&arrow_type(ty), 1)),
        Some(v) => values_to_array(ty, &[Some(v.clone())]),
    }
}

fn mismatch(ty: PrimitiveType, value: &Value) -> Error {
    Error::invalid("value", format!("{value} is not a value of type {ty}"))
}

/// The value at `row` of an array of one of tarn's Arrow types; `None` for null.
pub fn value_at(array: &dyn Array, row: usize) -> Option<Value> {
    use arrow::array::AsArray;
    use arrow::datatypes::*;
    if array.is_null(row) {
        return None;
    }
    Some(match array.data_type() {
        DataType::Boolean => Value::Boolean(array.as_boolean().value(row)),
        DataType::Int32 => Value::Int(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => Value::Long(array.as_primitive::<Int64Type>().value(row)),
        DataType::Float32 => Value::Float(array.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => Value::Double(array.as_primitive::<Float64Type>().value(row)),
        DataType::Date32 => Value::Int(array.as_primitive::<Date32Type>().value(row)),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Value::Long(array.as_primitive::<TimestampMicrosecondType>().value(row))
        }
        DataType::Decimal128(_, _) => {
            Value::Decimal(array.as_primitive::<Decimal128Type>().value(row))
        }
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(row).to_string()),
        DataType::Binary => Value::Binary(array.as_binary::<i32>().value(row).to_vec()),
        _ => return None,
    })
}

/// Concatenates batches whose schemas may differ: the result has every column of any input
/// (in first-seen order), missing ones filled with nulls, and a column whose type changed
/// (a widened column) cast to its type in the last batch that has it.
pub fn concat_union(batches: &[RecordBatch]) -> Result<RecordBatch> {
    let context = "concatenating manifest rows";
    let mut order: Vec<String> = Vec::new();
    let mut types: HashMap<String, DataType> = HashMap::new();
    let mut metadata = HashMap::new();
    for batch in batches {
        metadata.extend(batch.schema().metadata().clone());
        for field in batch.schema().fields() {
            if types
                .insert(field.name().clone(), field.data_type().clone())
                .is_none()
            {
                order.push(field.name().clone());
            }
        }
    }
    let fields: Vec<ArrowField> = order
        .iter()
        .map(|name| {
            let nullable = batches.iter().any(|b| {
                b.schema()
                    .field_with_name(name)
                    .map(|f| f.is_nullable())
                    .unwrap_or(true)
            });
            ArrowField::new(name, types[name].clone(), nullable)
        })
        .collect();
    let schema = Arc::new(ArrowSchema::new(fields).with_metadata(metadata));
    let aligned = batches
        .iter()
        .map(|batch| {
            let columns = schema
                .fields()
                .iter()
                .map(|field| match batch.column_by_name(field.name()) {
                    Some(c) if c.data_type() == field.data_type() => Ok(c.clone()),
                    Some(c) => arrow::compute::cast(c, field.data_type())
                        .map_err(|e| Error::arrow(context, e)),
                    None => Ok(new_null_array(field.data_type(), batch.num_rows())),
                })
                .collect::<Result<Vec<_>>>()?;
            RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::arrow(context, e))
        })
        .collect::<Result<Vec<_>>>()?;
    arrow::compute::concat_batches(&schema, &aligned).map_err(|e| Error::arrow(context, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_arrays() {
        let cases = [
            (PrimitiveType::Long, Value::Long(-5)),
            (
                PrimitiveType::TimestampTz,
                Value::Long(1_700_000_000_000_000),
            ),
            (PrimitiveType::Date, Value::Int(20_000)),
            (tarn_spec::decimal(10, 2).unwrap(), Value::Decimal(1234)),
            (PrimitiveType::String, Value::String("x".into())),
            (PrimitiveType::Binary, Value::Binary(vec![1, 2])),
        ];
        for (ty, v) in cases {
            let array = values_to_array(ty, &[Some(v.clone()), None]).unwrap();
            assert_eq!(array.data_type(), &arrow_type(ty));
            assert_eq!(value_at(&array, 0), Some(v));
            assert_eq!(value_at(&array, 1), None);
        }
    }

    #[test]
    fn wrong_values_are_refused() {
        assert!(values_to_array(PrimitiveType::Int, &[Some(Value::Long(1))]).is_err());
    }
}
