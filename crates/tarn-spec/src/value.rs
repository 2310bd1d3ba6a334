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

/// A float as JSON: a number when finite, otherwise one of three strings.
fn float_json(v: f64) -> serde_json::Value {
    if v.is_nan() {
        serde_json::Value::String("NaN".into())
    } else if v.is_infinite() {
        serde_json::Value::String(if v > 0.0 { "Infinity" } else { "-Infinity" }.into())
    } else {
        serde_json::Value::from(v)
    }
}

fn float_of_json(json: &serde_json::Value) -> Option<f64> {
    match json {
        serde_json::Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        other => other.as_f64(),
    }
}

impl Value {
    /// The JSON form of a value of type `ty` in metadata (column defaults): booleans and
    /// numbers as JSON booleans and numbers (dates as days, timestamps as microseconds since
    /// the epoch), except that floats which JSON cannot hold are the strings `"NaN"`,
    /// `"Infinity"` and `"-Infinity"`; decimals as strings with their scale (`"14.20"`),
    /// strings as strings, binary as lowercase hex strings.
    pub fn to_json(&self, ty: PrimitiveType) -> serde_json::Value {
        use serde_json::Value as J;
        match (self, ty) {
            (Value::Boolean(v), _) => J::Bool(*v),
            (Value::Int(v), _) => J::from(*v),
            (Value::Long(v), _) => J::from(*v),
            (Value::Float(v), _) => float_json(f64::from(*v)),
            (Value::Double(v), _) => float_json(*v),
            (Value::Decimal(v), PrimitiveType::Decimal { scale, .. }) => {
                J::String(decimal_text(*v, scale))
            }
            (Value::Decimal(v), _) => J::String(v.to_string()),
            (Value::String(v), _) => J::String(v.clone()),
            (Value::Binary(_), _) => J::String(self.to_string()),
        }
    }

    /// Reads [`Value::to_json`]'s form back; `None` if `json` is not a value of `ty`.
    pub fn from_json(ty: PrimitiveType, json: &serde_json::Value) -> Option<Value> {
        use PrimitiveType as T;
        let value = match ty {
            T::Boolean => Value::Boolean(json.as_bool()?),
            T::Int | T::Date => Value::Int(i32::try_from(json.as_i64()?).ok()?),
            T::Long | T::Timestamp | T::TimestampTz => Value::Long(json.as_i64()?),
            T::Float => Value::Float(float_of_json(json)? as f32),
            T::Double => Value::Double(float_of_json(json)?),
            T::Decimal { scale, .. } => Value::Decimal(parse_decimal(json.as_str()?, scale)?),
            T::String => Value::String(json.as_str()?.to_string()),
            T::Binary => {
                let hex = json.as_str()?;
                if hex.len() % 2 != 0 {
                    return None;
                }
                Value::Binary(
                    (0..hex.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                        .collect::<Option<Vec<u8>>>()?,
                )
            }
        };
        Some(value)
    }

    /// This value of type `from` as a value of the wider type `to` (see
    /// [`PrimitiveType::can_widen_to`]); `None` if `to` is not a widening of `from`.
    pub fn widen(&self, from: PrimitiveType, to: PrimitiveType) -> Option<Value> {
        if !from.can_widen_to(to) {
            return None;
        }
        Some(match self {
            Value::Int(v) if to == PrimitiveType::Long => Value::Long(i64::from(*v)),
            Value::Float(v) if to == PrimitiveType::Double => Value::Double(f64::from(*v)),
            other => other.clone(),
        })
    }
}

fn decimal_text(unscaled: i128, scale: u8) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let scale = usize::from(scale);
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

fn parse_decimal(text: &str, scale: u8) -> Option<i128> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if frac.len() != usize::from(scale) || int.is_empty() {
        return None;
    }
    let all = format!("{int}{frac}");
    if !all.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude: i128 = all.parse().ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_json() {
        let cases = [
            (PrimitiveType::Boolean, Value::Boolean(true)),
            (PrimitiveType::Int, Value::Int(-7)),
            (PrimitiveType::Date, Value::Int(20_000)),
            (PrimitiveType::Timestamp, Value::Long(1_700_000_000_000_000)),
            (PrimitiveType::Double, Value::Double(0.5)),
            (crate::decimal(10, 2).unwrap(), Value::Decimal(-1425)),
            (crate::decimal(10, 3).unwrap(), Value::Decimal(5)),
            (PrimitiveType::String, Value::String("x".into())),
            (PrimitiveType::Binary, Value::Binary(vec![0, 255])),
        ];
        for (ty, value) in cases {
            let json = value.to_json(ty);
            assert_eq!(Value::from_json(ty, &json), Some(value.clone()), "{json}");
        }
        let d = Value::Decimal(-1425).to_json(crate::decimal(10, 2).unwrap());
        assert_eq!(d, serde_json::json!("-14.25"));
        assert_eq!(
            Value::Decimal(5).to_json(crate::decimal(10, 3).unwrap()),
            serde_json::json!("0.005")
        );
        assert_eq!(
            Value::from_json(PrimitiveType::Int, &serde_json::json!("1")),
            None
        );
        assert_eq!(
            Value::from_json(crate::decimal(10, 2).unwrap(), &serde_json::json!("1.5")),
            None
        );
    }

    #[test]
    fn non_finite_floats_are_strings_in_json() {
        for ty in [PrimitiveType::Float, PrimitiveType::Double] {
            let value = |v: f64| match ty {
                PrimitiveType::Float => Value::Float(v as f32),
                _ => Value::Double(v),
            };
            let as_f64 = |v: &Value| match v {
                Value::Float(f) => f64::from(*f),
                Value::Double(d) => *d,
                other => panic!("{other:?}"),
            };
            for (v, text) in [
                (f64::NAN, "NaN"),
                (f64::INFINITY, "Infinity"),
                (f64::NEG_INFINITY, "-Infinity"),
            ] {
                let json = value(v).to_json(ty);
                assert_eq!(json, serde_json::json!(text));
                let back = Value::from_json(ty, &json).expect("reads back");
                assert!(as_f64(&back).is_nan() == v.is_nan() && (v.is_nan() || as_f64(&back) == v));
            }
            assert_eq!(value(1.5).to_json(ty), serde_json::json!(1.5));
            assert_eq!(Value::from_json(ty, &serde_json::json!("nan")), None);
        }
    }
}
