//! The column types of the format.
//!
//! Every type has one canonical spelling, used in metadata JSON and error messages:
//! `boolean`, `int`, `long`, `float`, `double`, `decimal(P,S)`, `date`, `timestamp`,
//! `timestamptz`, `string`, `binary`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Result, SpecError};

/// The largest decimal precision the format stores (128-bit unscaled values).
pub const MAX_DECIMAL_PRECISION: u8 = 38;

/// A column type.
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
