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
use parquet::schema::types::SchemaDescriptor;
use tarn_spec::{Field, FieldId, PrimitiveType, Schema, Type, Value};

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
                 floats, decimals, dates, timestamps, strings, binaries, and structs, lists \
                 and maps of them"
            )));
        }
    })
}

/// The Arrow type of a column of `ty`, every nested field carrying its field id. Lists and
/// fixed-size lists name their element `item` and maps their entries `entries` (with `key`
/// and `value`), as Arrow and DataFusion do.
pub fn data_type(ty: &Type) -> DataType {
    match ty {
        Type::Primitive(p) => arrow_type(*p),
        Type::Struct(fields) => DataType::Struct(fields.iter().map(arrow_field).collect()),
        Type::List(element) => DataType::List(Arc::new(arrow_field_named(element, LIST_ITEM))),
        Type::FixedList { element, size } => {
            DataType::FixedSizeList(Arc::new(arrow_field_named(element, LIST_ITEM)), *size)
        }
        Type::Map { key, value } => {
            let entries = DataType::Struct(
                vec![
                    arrow_field_named(key, MAP_KEY),
                    arrow_field_named(value, MAP_VALUE),
                ]
                .into(),
            );
            DataType::Map(
                Arc::new(ArrowField::new(MAP_ENTRIES, entries, false)),
                false,
            )
        }
    }
}

/// The Arrow names of a list's element and a map's parts.
pub const LIST_ITEM: &str = "item";
pub const MAP_ENTRIES: &str = "entries";
pub const MAP_KEY: &str = "key";
pub const MAP_VALUE: &str = "value";

/// The Arrow field of a column, carrying its field id (and those of its parts) as Parquet
/// field-id metadata.
pub fn arrow_field(field: &Field) -> ArrowField {
    arrow_field_named(field, &field.name)
}

fn arrow_field_named(field: &Field, name: &str) -> ArrowField {
    ArrowField::new(name, data_type(&field.field_type), !field.required).with_metadata(
        HashMap::from([(PARQUET_FIELD_ID_META_KEY.to_string(), field.id.to_string())]),
    )
}

/// The tarn type of an Arrow type, nested parts getting ids after `next_id` (which ends at
/// the last one given), parents first.
pub fn tarn_type(data_type: &DataType, next_id: &mut i32) -> Result<Type> {
    fn part(name: &str, f: &ArrowField, next_id: &mut i32) -> Result<Box<Field>> {
        *next_id += 1;
        let id = *next_id;
        Ok(Box::new(Field {
            required: !f.is_nullable(),
            ..Field::optional(id, name, tarn_type(f.data_type(), next_id)?)
        }))
    }
    Ok(match data_type {
        DataType::Struct(fields) => {
            let mut out = Vec::with_capacity(fields.len());
            for f in fields {
                out.push(*part(f.name(), f, next_id)?);
            }
            Type::Struct(out)
        }
        DataType::List(e)
        | DataType::LargeList(e)
        | DataType::ListView(e)
        | DataType::LargeListView(e) => Type::List(part(tarn_spec::ELEMENT_NAME, e, next_id)?),
        DataType::FixedSizeList(e, size) => Type::FixedList {
            element: part(tarn_spec::ELEMENT_NAME, e, next_id)?,
            size: *size,
        },
        DataType::Map(entries, _) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return Err(Error::Unsupported(format!(
                    "Arrow map type {data_type} has no key-value struct"
                )));
            };
            let [k, v] = &kv.iter().collect::<Vec<_>>()[..] else {
                return Err(Error::Unsupported(format!(
                    "Arrow map type {data_type} does not have exactly a key and a value"
                )));
            };
            let mut key = part(tarn_spec::KEY_NAME, k, next_id)?;
            key.required = true;
            Type::Map {
                key,
                value: part(tarn_spec::VALUE_NAME, v, next_id)?,
            }
        }
        DataType::Dictionary(_, values) => tarn_type(values, next_id)?,
        other => Type::Primitive(primitive_type(other)?),
    })
}

/// The Arrow schema of a table schema, with field ids.
pub fn arrow_schema(schema: &Schema) -> SchemaRef {
    Arc::new(ArrowSchema::new(
        schema.fields().iter().map(arrow_field).collect::<Vec<_>>(),
    ))
}

/// `array` as the values of `field`: cast to its Arrow type (with the field ids of its
/// parts), struct fields matched by name, primitives only widened, NOT NULL parts checked.
/// `name` is the field's path, for messages.
pub fn conform_array(array: &ArrayRef, field: &Field, name: &str) -> Result<ArrayRef> {
    use arrow::array::{AsArray, FixedSizeListArray, ListArray, MapArray, StructArray};
    let mismatch = |what: String| Error::SchemaMismatch {
        reason: format!(
            "column '{name}' is {} in the table but {what} in the data",
            field.field_type
        ),
    };
    let recast = |to: DataType| {
        arrow::compute::cast(array, &to)
            .map_err(|e| Error::arrow(format!("converting column '{name}'"), e))
    };
    let target = data_type(&field.field_type);
    let conformed: ArrayRef = match &field.field_type {
        Type::Primitive(p) => {
            let source = primitive_type(array.data_type()).map_err(|_| {
                mismatch(format!(
                    "of Arrow type {}, which tarn cannot store",
                    array.data_type()
                ))
            })?;
            if !source.can_widen_to(*p) {
                return Err(mismatch(source.to_string()));
            }
            if array.data_type() == &target {
                array.clone()
            } else {
                recast(target)?
            }
        }
        Type::Struct(fields) => {
            let DataType::Struct(input) = array.data_type() else {
                return Err(mismatch(array.data_type().to_string()));
            };
            if let Some(extra) = input
                .iter()
                .find(|f| !fields.iter().any(|t| t.name.eq_ignore_ascii_case(f.name())))
            {
                return Err(Error::SchemaMismatch {
                    reason: format!(
                        "field '{}' of the data is not a field of struct column '{name}'",
                        extra.name()
                    ),
                });
            }
            let s = array.as_struct();
            let children = fields
                .iter()
                .map(|f| {
                    let path = format!("{name}.{}", f.name);
                    let at = input.iter().position(|i| i.name() == &f.name).or_else(|| {
                        input
                            .iter()
                            .position(|i| i.name().eq_ignore_ascii_case(&f.name))
                    });
                    match at {
                        Some(i) => conform_array(s.column(i), f, &path),
                        None if !f.required => {
                            Ok(new_null_array(&data_type(&f.field_type), s.len()))
                        }
                        None => Err(Error::SchemaMismatch {
                            reason: format!("NOT NULL field '{path}' is missing from the data"),
                        }),
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            let DataType::Struct(target_fields) = target else {
                unreachable!("a struct's Arrow type is a struct")
            };
            Arc::new(
                StructArray::try_new(target_fields, children, s.nulls().cloned())
                    .map_err(|e| Error::arrow(format!("converting column '{name}'"), e))?,
            )
        }
        Type::List(element) => match array.data_type() {
            DataType::List(_) => {
                let list = array.as_list::<i32>();
                let values = conform_array(list.values(), element, &format!("{name}[]"))?;
                Arc::new(
                    ListArray::try_new(
                        Arc::new(arrow_field_named(element, LIST_ITEM)),
                        list.offsets().clone(),
                        values,
                        list.nulls().cloned(),
                    )
                    .map_err(|e| Error::arrow(format!("converting column '{name}'"), e))?,
                )
            }
            DataType::LargeList(e)
            | DataType::FixedSizeList(e, _)
            | DataType::ListView(e)
            | DataType::LargeListView(e) => {
                let as_list = recast(DataType::List(e.clone()))?;
                return conform_array(&as_list, field, name);
            }
            other => return Err(mismatch(other.to_string())),
        },
        Type::FixedList { element, size } => match array.data_type() {
            DataType::FixedSizeList(_, n) if n == size => {
                let list = array.as_fixed_size_list();
                let values = conform_array(list.values(), element, &format!("{name}[]"))?;
                Arc::new(
                    FixedSizeListArray::try_new(
                        Arc::new(arrow_field_named(element, LIST_ITEM)),
                        *size,
                        values,
                        list.nulls().cloned(),
                    )
                    .map_err(|e| Error::arrow(format!("converting column '{name}'"), e))?,
                )
            }
            DataType::List(e) | DataType::LargeList(e) => {
                let fixed = arrow::compute::cast(array, &DataType::FixedSizeList(e.clone(), *size))
                    .map_err(|_| Error::SchemaMismatch {
                        reason: format!(
                            "column '{name}' holds lists of exactly {size} values, but the data \
                             has a list of another length"
                        ),
                    })?;
                return conform_array(&fixed, field, name);
            }
            other => return Err(mismatch(other.to_string())),
        },
        Type::Map { key, value } => match array.data_type() {
            DataType::Map(_, _) => {
                let map = array.as_map();
                let keys = conform_array(map.keys(), key, &format!("{name}.key"))?;
                let values = conform_array(map.values(), value, &format!("{name}.value"))?;
                let DataType::Map(entries_field, _) = &target else {
                    unreachable!("a map's Arrow type is a map")
                };
                let DataType::Struct(kv) = entries_field.data_type() else {
                    unreachable!("map entries are a struct")
                };
                let entries = StructArray::try_new(kv.clone(), vec![keys, values], None)
                    .map_err(|e| Error::arrow(format!("converting column '{name}'"), e))?;
                Arc::new(
                    MapArray::try_new(
                        entries_field.clone(),
                        map.offsets().clone(),
                        entries,
                        map.nulls().cloned(),
                        false,
                    )
                    .map_err(|e| Error::arrow(format!("converting column '{name}'"), e))?,
                )
            }
            other => return Err(mismatch(other.to_string())),
        },
    };
    for part in field.field_type.children() {
        if part.required {
            let nulls = required_part_nulls(&conformed, part);
            if nulls > 0 {
                return Err(Error::SchemaMismatch {
                    reason: format!(
                        "'{}' of column '{name}' is NOT NULL, but {nulls} NULL {} in the data",
                        part.name,
                        if nulls == 1 { "value is" } else { "values are" }
                    ),
                });
            }
        }
    }
    Ok(conformed)
}

/// NULLs of the part `part` of a nested array where its parent is not NULL itself.
fn required_part_nulls(array: &ArrayRef, part: &Field) -> usize {
    use arrow::array::AsArray;
    match array.data_type() {
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let Some(i) = fields.iter().position(|f| f.name() == &part.name) else {
                return 0;
            };
            let child = s.column(i);
            match (s.nulls(), child.nulls()) {
                (_, None) => 0,
                (None, Some(c)) => c.null_count(),
                (Some(p), Some(c)) => (0..s.len())
                    .filter(|&r| p.is_valid(r) && c.is_null(r))
                    .count(),
            }
        }
        DataType::List(_) => array.as_list::<i32>().values().null_count(),
        DataType::FixedSizeList(_, _) => array.as_fixed_size_list().values().null_count(),
        DataType::Map(_, _) if part.name == tarn_spec::VALUE_NAME => {
            array.as_map().values().null_count()
        }
        _ => 0,
    }
}

/// The Parquet leaf column of a data file carrying field id `id` (tarn writes every field's
/// id into the file's schema), so a renamed field still finds its column.
pub fn parquet_column(columns: &SchemaDescriptor, id: FieldId) -> Option<usize> {
    columns.columns().iter().position(|c| {
        let info = c.self_type().get_basic_info();
        info.has_id() && info.id() == id.get()
    })
}

/// The values of a leaf (see [`tarn_spec::Leaf`]) in a batch of the table's Arrow schema:
/// its column, or the field of the struct columns on its path, NULL wherever a struct
/// around it is.
pub fn leaf_array(batch: &RecordBatch, path: &[usize]) -> Result<ArrayRef> {
    use arrow::array::AsArray;
    let mut array = batch.column(path[0]).clone();
    for &i in &path[1..] {
        let s = array.as_struct_opt().ok_or_else(|| {
            Error::invalid(
                "batch",
                "a leaf's path goes through a column that is not a struct",
            )
        })?;
        let child = s.column(i).clone();
        array = match s.nulls() {
            None => child,
            Some(parent) => {
                let nulls = arrow::buffer::NullBuffer::union(Some(parent), child.nulls());
                arrow::array::make_array(
                    child
                        .to_data()
                        .into_builder()
                        .nulls(nulls)
                        .build()
                        .map_err(|e| Error::arrow("reading a struct field", e))?,
                )
            }
        };
    }
    Ok(array)
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
        DataType::Utf8View => Value::String(array.as_string_view().value(row).to_string()),
        DataType::BinaryView => Value::Binary(array.as_binary_view().value(row).to_vec()),
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
