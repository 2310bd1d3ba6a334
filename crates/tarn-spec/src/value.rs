//! Typed scalar values: partition values, statistics bounds, column defaults.

use std::cmp::Ordering;
use std::fmt;

use crate::types::PrimitiveType;

/// One value of a [`PrimitiveType`]. Which variant stands for which type:
///
/// | type | variant |
/// |---|---|
/// | boolean | `Boolean` |
/// | int | `Int` |
/// | long | `Long` |
/// | float / double | `Float` / `Double` |
/// | decimal(P,S) | `Decimal` (the unscaled integer) |
/// | date | `Int` (days since the epoch) |
/// | timestamp, timestamptz | `Long` (microseconds since the epoch) |
/// | string | `String` |
/// | binary | `Binary` |
///
/// Dates and timestamps share the integer variants so that transforms and statistics work
/// on one representation; the schema says how to interpret them.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Boolean(bool),
    Int(i32),
    Long(i64),
    Float(f32),
    Double(f64),
    Decimal(i128),
    String(String),
    Binary(Vec<u8>),
}

impl Value {
    /// Whether this value can stand for a value of type `ty`.
    pub fn fits(&self, ty: PrimitiveType) -> bool {
        use PrimitiveType as T;
        matches!(
            (self, ty),
            (Value::Boolean(_), T::Boolean)
                | (Value::Int(_), T::Int | T::Date)
                | (Value::Long(_), T::Long | T::Timestamp | T::TimestampTz)
                | (Value::Float(_), T::Float)
                | (Value::Double(_), T::Double)
                | (Value::Decimal(_), T::Decimal { .. })
                | (Value::String(_), T::String)
                | (Value::Binary(_), T::Binary)
        )
    }

    /// Compares two values of the same variant; `None` across variants or for NaN.
    pub fn compare(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::Boolean(a), Value::Boolean(b)) => Some(a.cmp(b)),
            (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
            (Value::Long(a), Value::Long(b)) => Some(a.cmp(b)),
            (Value::Float(a), Value::Float(b)) => a.partial_cmp(b),
            (Value::Double(a), Value::Double(b)) => a.partial_cmp(b),
            (Value::Decimal(a), Value::Decimal(b)) => Some(a.cmp(b)),
            (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
            (Value::Binary(a), Value::Binary(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Boolean(v) => write!(f, "{v}"),
            Value::Int(v) => write!(f, "{v}"),
            Value::Long(v) => write!(f, "{v}"),
            Value::Float(v) => write!(f, "{v}"),
            Value::Double(v) => write!(f, "{v}"),
            Value::Decimal(v) => write!(f, "{v}"),
            Value::String(v) => f.write_str(v),
            Value::Binary(v) => {
                for b in v {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}
