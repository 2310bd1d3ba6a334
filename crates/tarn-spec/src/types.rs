//! The column types of the format.
//!
//! Every primitive type has one canonical spelling, used in metadata JSON and error
//! messages: `boolean`, `int`, `long`, `float`, `double`, `decimal(P,S)`, `date`,
//! `timestamp`, `timestamptz`, `string`, `binary`. Nested types (structs, lists, fixed-size
//! lists, maps) are built of fields, each with a field id of its own.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Result, SpecError};
use crate::schema::Field;

/// The largest decimal precision the format stores (128-bit unscaled values).
pub const MAX_DECIMAL_PRECISION: u8 = 38;

/// The type of a column or of a part of one.
#[derive(Debug, Clone, PartialEq)]
pub enum Type {
    Primitive(PrimitiveType),
    /// Named fields, in order.
    Struct(Vec<Field>),
    /// Any number of values, each of the element field's type.
    List(Box<Field>),
    /// Exactly `size` values of the element field's type in every non-null row: an
    /// embedding.
    FixedList {
        element: Box<Field>,
        size: i32,
    },
    /// Key-value pairs. The key field is required.
    Map {
        key: Box<Field>,
        value: Box<Field>,
    },
}

/// The name of the element field of a list or fixed-size list.
pub const ELEMENT_NAME: &str = "element";
/// The names of a map's key and value fields.
pub const KEY_NAME: &str = "key";
pub const VALUE_NAME: &str = "value";

impl Type {
    /// The primitive type, if this is one.
    pub fn as_primitive(&self) -> Option<PrimitiveType> {
        match self {
            Type::Primitive(p) => Some(*p),
            _ => None,
        }
    }

    pub fn is_primitive(&self) -> bool {
        matches!(self, Type::Primitive(_))
    }

    /// The fields directly inside this type: a struct's fields, a list's element, a map's
    /// key and value; none for a primitive.
    pub fn children(&self) -> Vec<&Field> {
        match self {
            Type::Primitive(_) => Vec::new(),
            Type::Struct(fields) => fields.iter().collect(),
            Type::List(element) | Type::FixedList { element, .. } => vec![element],
            Type::Map { key, value } => vec![key, value],
        }
    }

    /// The same, mutably.
    pub fn children_mut(&mut self) -> Vec<&mut Field> {
        match self {
            Type::Primitive(_) => Vec::new(),
            Type::Struct(fields) => fields.iter_mut().collect(),
            Type::List(element) | Type::FixedList { element, .. } => vec![element],
            Type::Map { key, value } => vec![key, value],
        }
    }
}

impl From<PrimitiveType> for Type {
    fn from(p: PrimitiveType) -> Self {
        Type::Primitive(p)
    }
}

impl PartialEq<PrimitiveType> for Type {
    fn eq(&self, other: &PrimitiveType) -> bool {
        self.as_primitive() == Some(*other)
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let element = |f: &mut fmt::Formatter<'_>, e: &Field| {
            write!(f, "{}", e.field_type)?;
            if e.required {
                f.write_str(" not null")?;
            }
            Ok(())
        };
        match self {
            Type::Primitive(p) => write!(f, "{p}"),
            Type::Struct(fields) => {
                f.write_str("struct<")?;
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}: ", field.name)?;
                    element(f, field)?;
                }
                f.write_str(">")
            }
            Type::List(e) => {
                f.write_str("list<")?;
                element(f, e)?;
                f.write_str(">")
            }
            Type::FixedList { element: e, size } => {
                f.write_str("fixed_size_list<")?;
                element(f, e)?;
                write!(f, ", {size}>")
            }
            Type::Map { key, value } => {
                write!(f, "map<{}, ", key.field_type)?;
                element(f, value)?;
                f.write_str(">")
            }
        }
    }
}

/// A primitive column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrimitiveType {
    Boolean,
    /// 32-bit signed integer.
    Int,
    /// 64-bit signed integer.
    Long,
    /// 32-bit IEEE 754 float.
    Float,
    /// 64-bit IEEE 754 float.
    Double,
    /// Fixed-point decimal with `precision` digits, `scale` of them after the point.
    Decimal {
        precision: u8,
        scale: u8,
    },
    /// Days since 1970-01-01.
    Date,
    /// Microseconds since 1970-01-01 00:00:00, no time zone.
    Timestamp,
    /// Microseconds since 1970-01-01 00:00:00 UTC.
    TimestampTz,
    /// UTF-8 text.
    String,
    /// Arbitrary bytes.
    Binary,
}

impl PrimitiveType {
    /// Whether values of `self` can be read as `to` without loss, so that a column may be
    /// changed from one to the other while old files keep their physical type.
    pub fn can_widen_to(self, to: PrimitiveType) -> bool {
        use PrimitiveType::*;
        match (self, to) {
            (a, b) if a == b => true,
            (Int, Long) | (Float, Double) => true,
            (
                Decimal {
                    precision: p1,
                    scale: s1,
                },
                Decimal {
                    precision: p2,
                    scale: s2,
                },
            ) => s1 == s2 && p2 >= p1,
            _ => false,
        }
    }

    /// Whether values of this type have an order that min/max statistics describe.
    pub fn is_ordered(self) -> bool {
        !matches!(self, PrimitiveType::Boolean)
    }
}

impl fmt::Display for PrimitiveType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrimitiveType::Boolean => f.write_str("boolean"),
            PrimitiveType::Int => f.write_str("int"),
            PrimitiveType::Long => f.write_str("long"),
            PrimitiveType::Float => f.write_str("float"),
            PrimitiveType::Double => f.write_str("double"),
            PrimitiveType::Decimal { precision, scale } => {
                write!(f, "decimal({precision},{scale})")
            }
            PrimitiveType::Date => f.write_str("date"),
            PrimitiveType::Timestamp => f.write_str("timestamp"),
            PrimitiveType::TimestampTz => f.write_str("timestamptz"),
            PrimitiveType::String => f.write_str("string"),
            PrimitiveType::Binary => f.write_str("binary"),
        }
    }
}

impl FromStr for PrimitiveType {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self> {
        let t = match s {
            "boolean" => PrimitiveType::Boolean,
            "int" => PrimitiveType::Int,
            "long" => PrimitiveType::Long,
            "float" => PrimitiveType::Float,
            "double" => PrimitiveType::Double,
            "date" => PrimitiveType::Date,
            "timestamp" => PrimitiveType::Timestamp,
            "timestamptz" => PrimitiveType::TimestampTz,
            "string" => PrimitiveType::String,
            "binary" => PrimitiveType::Binary,
            other => return parse_decimal(other),
        };
        Ok(t)
    }
}

fn parse_decimal(s: &str) -> Result<PrimitiveType> {
    let unknown = || {
        SpecError::Unsupported(format!(
            "unknown type '{s}'; expected one of boolean, int, long, float, double, \
             decimal(P,S), date, timestamp, timestamptz, string, binary"
        ))
    };
    let inner = s
        .strip_prefix("decimal(")
        .and_then(|rest| rest.strip_suffix(')'))
        .ok_or_else(unknown)?;
    let (p, sc) = inner.split_once(',').ok_or_else(unknown)?;
    let precision: u8 = p.trim().parse().map_err(|_| unknown())?;
    let scale: u8 = sc.trim().parse().map_err(|_| unknown())?;
    decimal(precision, scale)
}

/// A checked decimal type: `1 <= precision <= 38` and `scale <= precision`.
pub fn decimal(precision: u8, scale: u8) -> Result<PrimitiveType> {
    if precision == 0 || precision > MAX_DECIMAL_PRECISION || scale > precision {
        return Err(SpecError::Unsupported(format!(
            "decimal({precision},{scale}): precision must be 1 to {MAX_DECIMAL_PRECISION} \
             and scale at most the precision"
        )));
    }
    Ok(PrimitiveType::Decimal { precision, scale })
}

impl Serialize for PrimitiveType {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PrimitiveType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelling_round_trips() {
        for t in [
            PrimitiveType::Boolean,
            PrimitiveType::Int,
            PrimitiveType::Long,
            PrimitiveType::Float,
            PrimitiveType::Double,
            decimal(10, 2).unwrap(),
            PrimitiveType::Date,
            PrimitiveType::Timestamp,
            PrimitiveType::TimestampTz,
            PrimitiveType::String,
            PrimitiveType::Binary,
        ] {
            assert_eq!(t.to_string().parse::<PrimitiveType>().unwrap(), t);
        }
        assert_eq!(
            "decimal(38, 0)".parse::<PrimitiveType>().unwrap(),
            decimal(38, 0).unwrap()
        );
    }

    #[test]
    fn bad_types_are_refused() {
        assert!("varchar".parse::<PrimitiveType>().is_err());
        assert!("decimal(39,0)".parse::<PrimitiveType>().is_err());
        assert!("decimal(5,6)".parse::<PrimitiveType>().is_err());
    }

    #[test]
    fn widening_rules() {
        use PrimitiveType::*;
        assert!(Int.can_widen_to(Long));
        assert!(Float.can_widen_to(Double));
        assert!(!Long.can_widen_to(Int));
        assert!(!Int.can_widen_to(String));
        assert!(
            decimal(10, 2)
                .unwrap()
                .can_widen_to(decimal(12, 2).unwrap())
        );
        assert!(
            !decimal(10, 2)
                .unwrap()
                .can_widen_to(decimal(12, 3).unwrap())
        );
    }
}
