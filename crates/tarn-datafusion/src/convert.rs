//! Values and types between tarn, Arrow, DataFusion and SQL.

use std::sync::Arc;

use datafusion::arrow::datatypes::{
    DataType, Field as ArrowField, FieldRef, Schema as ArrowSchema, SchemaRef,
};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::sql::sqlparser::ast::{DataType as SqlType, ExactNumberInfo, TimezoneInfo};
use tarn_core::arrow_convert::{UTC, arrow_type, data_type};
use tarn_spec::{Field, PrimitiveType, Schema, Type, Value};

/// The Arrow schema DataFusion sees for a tarn schema (no field-id metadata: DataFusion
/// binds by name; the field ids live in the data files and the table metadata).
pub fn df_schema(schema: &Schema) -> SchemaRef {
    Arc::new(ArrowSchema::new(
        schema
            .fields()
            .iter()
            .map(|f| ArrowField::new(&f.name, df_data_type(&f.field_type), !f.required))
            .collect::<Vec<_>>(),
    ))
}

/// The Arrow type DataFusion computes with for a tarn type: strings and binaries as view
/// types, which the Parquet reader produces without copying values into one buffer (as
/// DataFusion does for its own Parquet tables).
pub fn df_type(ty: PrimitiveType) -> DataType {
    match ty {
        PrimitiveType::String => DataType::Utf8View,
        PrimitiveType::Binary => DataType::BinaryView,
        other => arrow_type(other),
    }
}

/// The Arrow type DataFusion computes with for a column of `ty`: [`df_type`] for a
/// primitive; a nested type's Arrow form without field ids (which only the data files
/// carry), its strings as files hold them.
pub fn df_data_type(ty: &Type) -> DataType {
    match ty {
        Type::Primitive(p) => df_type(*p),
        nested => without_field_ids(&data_type(nested)),
    }
}

/// `ty` with the metadata of every nested field dropped.
pub fn without_field_ids(ty: &DataType) -> DataType {
    let field = |f: &FieldRef| -> FieldRef {
        Arc::new(ArrowField::new(
            f.name(),
            without_field_ids(f.data_type()),
            f.is_nullable(),
        ))
    };
    match ty {
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(field).collect()),
        DataType::List(f) => DataType::List(field(f)),
        DataType::LargeList(f) => DataType::LargeList(field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(field(f), *n),
        DataType::Map(f, sorted) => DataType::Map(field(f), *sorted),
        other => other.clone(),
    }
}

/// A tarn value of type `ty` as a scalar of the type DataFusion computes with
/// ([`df_type`]).
pub fn df_scalar(ty: PrimitiveType, value: &Value) -> ScalarValue {
    match to_scalar(ty, Some(value)) {
        ScalarValue::Utf8(s) => ScalarValue::Utf8View(s),
        ScalarValue::Binary(b) => ScalarValue::BinaryView(b),
        other => other,
    }
}

/// A tarn value of type `ty` as a DataFusion scalar.
pub fn to_scalar(ty: PrimitiveType, value: Option<&Value>) -> ScalarValue {
    let v = value.cloned();
    match ty {
        PrimitiveType::Boolean => ScalarValue::Boolean(v.and_then(|v| {
            if let Value::Boolean(b) = v {
                Some(b)
            } else {
                None
            }
        })),
        PrimitiveType::Int => ScalarValue::Int32(int(v)),
        PrimitiveType::Date => ScalarValue::Date32(int(v)),
        PrimitiveType::Long => ScalarValue::Int64(long(v)),
        PrimitiveType::Timestamp => ScalarValue::TimestampMicrosecond(long(v), None),
        PrimitiveType::TimestampTz => ScalarValue::TimestampMicrosecond(long(v), Some(UTC.into())),
        PrimitiveType::Float => ScalarValue::Float32(v.and_then(|v| {
            if let Value::Float(x) = v {
                Some(x)
            } else {
                None
            }
        })),
        PrimitiveType::Double => ScalarValue::Float64(v.and_then(|v| {
            if let Value::Double(x) = v {
                Some(x)
            } else {
                None
            }
        })),
        PrimitiveType::Decimal { precision, scale } => ScalarValue::Decimal128(
            v.and_then(|v| {
                if let Value::Decimal(x) = v {
                    Some(x)
                } else {
                    None
                }
            }),
            precision,
            scale as i8,
        ),
        PrimitiveType::String => ScalarValue::Utf8(v.and_then(|v| {
            if let Value::String(s) = v {
                Some(s)
            } else {
                None
            }
        })),
        PrimitiveType::Binary => ScalarValue::Binary(v.and_then(|v| {
            if let Value::Binary(b) = v {
                Some(b)
            } else {
                None
            }
        })),
    }
}

fn int(v: Option<Value>) -> Option<i32> {
    if let Some(Value::Int(i)) = v {
        Some(i)
    } else {
        None
    }
}

fn long(v: Option<Value>) -> Option<i64> {
    if let Some(Value::Long(i)) = v {
        Some(i)
    } else {
        None
    }
}

/// A DataFusion scalar as a tarn value of type `ty`, casting where DataFusion's literal type
/// differs (an `Int64` literal compared with an `int` column). `None` for NULL or when the
/// value does not fit.
pub fn from_scalar(ty: PrimitiveType, scalar: &ScalarValue) -> Option<Value> {
    let target = arrow_type(ty);
    let scalar = if scalar.data_type() == target {
        scalar.clone()
    } else {
        scalar.cast_to(&target).ok()?
    };
    if scalar.is_null() {
        return None;
    }
    Some(match scalar {
        ScalarValue::Boolean(Some(b)) => Value::Boolean(b),
        ScalarValue::Int32(Some(i)) | ScalarValue::Date32(Some(i)) => Value::Int(i),
        ScalarValue::Int64(Some(i)) | ScalarValue::TimestampMicrosecond(Some(i), _) => {
            Value::Long(i)
        }
        ScalarValue::Float32(Some(x)) => Value::Float(x),
        ScalarValue::Float64(Some(x)) => Value::Double(x),
        ScalarValue::Decimal128(Some(x), _, _) => Value::Decimal(x),
        ScalarValue::Utf8(Some(s)) => Value::String(s),
        ScalarValue::Binary(Some(b)) => Value::Binary(b),
        _ => return None,
    })
}

/// A column type as SQL writes it (the inverse of [`sql_type`]): `BIGINT`,
/// `STRUCT<a INT, b VARCHAR>`, `INT[]`, `REAL[128]`, `MAP<VARCHAR, BIGINT>`.
pub fn sql_column_type(ty: &Type) -> String {
    let part = |f: &Field| {
        let t = sql_column_type(&f.field_type);
        if f.required && f.name != tarn_spec::KEY_NAME {
            format!("{t} NOT NULL")
        } else {
            t
        }
    };
    match ty {
        Type::Primitive(p) => sql_type_name(*p),
        Type::Struct(fields) => format!(
            "STRUCT<{}>",
            fields
                .iter()
                .map(|f| format!("{} {}", field_name(&f.name), part(f)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Type::List(e) if e.field_type.is_primitive() => format!("{}[]", part(e)),
        Type::List(e) => format!("ARRAY<{}>", part(e)),
        Type::FixedList { element, size } => format!("{}[{size}]", part(element)),
        Type::Map { key, value } => format!("MAP<{}, {}>", part(key), part(value)),
    }
}

/// A struct field's name as SQL writes it: quoted unless it is a plain lowercase name (type
/// syntax takes keywords as field names).
fn field_name(name: &str) -> String {
    if crate::names::is_plain(name) {
        name.to_string()
    } else {
        crate::context::quote(name)
    }
}

/// A tarn type as SQL writes it (the inverse of [`sql_type`]).
pub fn sql_type_name(ty: PrimitiveType) -> String {
    match ty {
        PrimitiveType::Boolean => "BOOLEAN".into(),
        PrimitiveType::Int => "INT".into(),
        PrimitiveType::Long => "BIGINT".into(),
        PrimitiveType::Float => "REAL".into(),
        PrimitiveType::Double => "DOUBLE".into(),
        PrimitiveType::Decimal { precision, scale } => format!("DECIMAL({precision},{scale})"),
        PrimitiveType::Date => "DATE".into(),
        PrimitiveType::Timestamp => "TIMESTAMP".into(),
        PrimitiveType::TimestampTz => "TIMESTAMPTZ".into(),
        PrimitiveType::String => "VARCHAR".into(),
        PrimitiveType::Binary => "BYTEA".into(),
    }
}

/// `s` as an SQL string literal: `'it''s'`.
pub(crate) fn string_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A value as a SQL literal of its type: `42`, `'it''s'`, `DATE '2026-11-25'`, `'NaN'`.
pub fn sql_literal(ty: PrimitiveType, value: &Value) -> String {
    let scalar = to_scalar(ty, Some(value));
    let text = match &scalar {
        ScalarValue::Utf8(Some(s)) => s.clone(),
        // A timestamp's own display is its count of microseconds; Arrow's is ISO 8601.
        ScalarValue::TimestampMicrosecond(..) => scalar
            .to_array()
            .and_then(|array| Ok(array_value_to_string(&array, 0)?))
            .unwrap_or_else(|_| scalar.to_string()),
        other => other.to_string(),
    };
    let quoted = || string_literal(&text);
    match ty {
        PrimitiveType::String => quoted(),
        PrimitiveType::Date => format!("DATE {}", quoted()),
        PrimitiveType::Timestamp => format!("TIMESTAMP {}", quoted()),
        PrimitiveType::TimestampTz => format!("TIMESTAMPTZ {}", quoted()),
        PrimitiveType::Binary => format!("X'{value}'"),
        _ => match value {
            Value::Float(f) if !f.is_finite() => non_finite(f64::from(*f)),
            Value::Double(f) if !f.is_finite() => non_finite(*f),
            _ => text,
        },
    }
}

fn non_finite(f: f64) -> String {
    if f.is_nan() {
        "'NaN'".into()
    } else if f > 0.0 {
        "'Infinity'".into()
    } else {
        "'-Infinity'".into()
    }
}

/// The tarn type of a SQL column type: a primitive, `STRUCT<a INT, ...>`, `INT[]` (or
/// `ARRAY<INT>`), `REAL[128]` (a fixed-size list) or `MAP<K, V>`. Nested parts get field id
/// 0 here; the table's ids are given when the column is created or added.
pub fn sql_type(ty: &SqlType) -> Result<Type> {
    use datafusion::sql::sqlparser::ast::ArrayElemTypeDef as E;
    let element = |inner: &SqlType| -> Result<Box<Field>> {
        Ok(Box::new(Field::optional(
            0,
            tarn_spec::ELEMENT_NAME,
            sql_type(inner)?,
        )))
    };
    Ok(match ty {
        SqlType::Struct(fields, _) => {
            if fields.is_empty() {
                return Err(DataFusionError::Plan(
                    "a STRUCT needs at least one field: STRUCT<a INT, b VARCHAR>".into(),
                ));
            }
            Type::Struct(
                fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        let name = match &f.field_name {
                            Some(n) => crate::names::normalize(n),
                            None => format!("c{i}"),
                        };
                        Ok(Field::optional(0, name, sql_type(&f.field_type)?))
                    })
                    .collect::<Result<_>>()?,
            )
        }
        SqlType::Array(E::SquareBracket(inner, Some(size))) => Type::FixedList {
            element: element(inner)?,
            size: i32::try_from(*size)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    DataFusionError::Plan(format!(
                        "{ty}: a fixed-size list holds 1 to {} values",
                        i32::MAX
                    ))
                })?,
        },
        SqlType::Array(
            E::SquareBracket(inner, None) | E::AngleBracket(inner) | E::Parenthesis(inner),
        ) => Type::List(element(inner)?),
        SqlType::Array(E::None) => {
            return Err(DataFusionError::Plan(
                "ARRAY needs an element type: INT[] or ARRAY<INT>".into(),
            ));
        }
        SqlType::Map(key, value) => {
            let key_type = sql_type(key)?;
            if !key_type.is_primitive() {
                return Err(DataFusionError::Plan(format!(
                    "{ty}: map keys must be of a primitive type"
                )));
            }
            Type::Map {
                key: Box::new(Field::required(0, tarn_spec::KEY_NAME, key_type)),
                value: Box::new(Field::optional(0, tarn_spec::VALUE_NAME, sql_type(value)?)),
            }
        }
        other => Type::Primitive(sql_primitive_type(other)?),
    })
}

/// The tarn type of a SQL primitive column type.
pub fn sql_primitive_type(ty: &SqlType) -> Result<PrimitiveType> {
    use SqlType as S;
    let unsupported = || {
        DataFusionError::Plan(format!(
            "column type {ty} is not supported; use BOOLEAN, INT, BIGINT, REAL, DOUBLE, \
             DECIMAL(p,s), DATE, TIMESTAMP, TIMESTAMPTZ, VARCHAR or BYTEA, or STRUCT<...>, \
             T[], T[N] or MAP<K, V> of them"
        ))
    };
    Ok(match ty {
        S::Boolean | S::Bool => PrimitiveType::Boolean,
        S::TinyInt(_)
        | S::SmallInt(_)
        | S::Int(_)
        | S::Integer(_)
        | S::Int2(_)
        | S::Int4(_)
        | S::Int8(_)
        | S::Int16
        | S::Int32 => {
            if matches!(ty, S::Int8(_)) {
                PrimitiveType::Long
            } else {
                PrimitiveType::Int
            }
        }
        S::BigInt(_) | S::Int64 => PrimitiveType::Long,
        S::Real | S::Float4 | S::Float32 => PrimitiveType::Float,
        S::Double(_) | S::DoublePrecision | S::Float8 | S::Float64 | S::Float(_) => {
            PrimitiveType::Double
        }
        S::Decimal(info) | S::Numeric(info) | S::Dec(info) => {
            let (p, s) = match info {
                ExactNumberInfo::None => (38, 10),
                ExactNumberInfo::Precision(p) => (*p, 0),
                ExactNumberInfo::PrecisionAndScale(p, s) => (*p, *s as u64),
            };
            let p = u8::try_from(p).map_err(|_| unsupported())?;
            let s = u8::try_from(s).map_err(|_| unsupported())?;
            tarn_spec::decimal(p, s).map_err(crate::error::spec_to_df)?
        }
        S::Date => PrimitiveType::Date,
        S::Timestamp(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) | S::Datetime(_) => {
            PrimitiveType::Timestamp
        }
        S::Timestamp(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => {
            PrimitiveType::TimestampTz
        }
        // Strings have no length in tarn: a length would be a promise nothing keeps.
        S::Varchar(None)
        | S::CharVarying(None)
        | S::CharacterVarying(None)
        | S::Nvarchar(None)
        | S::Text
        | S::String(None) => PrimitiveType::String,
        S::Varchar(Some(_))
        | S::CharVarying(Some(_))
        | S::CharacterVarying(Some(_))
        | S::Nvarchar(Some(_))
        | S::String(Some(_))
        | S::Char(_)
        | S::Character(_) => {
            return Err(DataFusionError::Plan(format!(
                "{ty}: tarn strings have no length limit, and it does not pad or cut values; \
                 use VARCHAR (or TEXT), and a CHECK in your pipeline if lengths matter"
            )));
        }
        S::Bytea | S::Binary(_) | S::Varbinary(_) | S::Blob(_) => PrimitiveType::Binary,
        S::Custom(name, _) if name.to_string().eq_ignore_ascii_case("timestamptz") => {
            PrimitiveType::TimestampTz
        }
        _ => return Err(unsupported()),
    })
}
