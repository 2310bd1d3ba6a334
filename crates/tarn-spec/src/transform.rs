//! Partition transforms: how a partition value is derived from a source column's value.
//!
//! The definitions follow Apache Iceberg's, so that bucket numbers agree across engines:
//! `bucket[N]` is `(murmur3_x86_32(bytes(v)) & i32::MAX) % N`, with `bytes` as in
//! [`bucket_hash`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Result, SpecError};
use crate::types::PrimitiveType;
use crate::value::Value;

const MICROS_PER_HOUR: i64 = 3_600_000_000;
const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;

/// A partition transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transform {
    /// The source value itself.
    Identity,
    /// Years since 1970 (`int`).
    Year,
    /// Months since 1970-01 (`int`).
    Month,
    /// Days since 1970-01-01 (`date`).
    Day,
    /// Hours since 1970-01-01 00:00 (`int`).
    Hour,
    /// A hash bucket in `0..N` (`int`).
    Bucket(u32),
    /// Integers rounded down to a multiple of W; strings and binaries cut to W characters
    /// or bytes.
    Truncate(u32),
}

impl Transform {
    /// The type of the partition value for a source column of type `source`, or an error
    /// naming why the transform does not apply to it.
    pub fn result_type(self, source: PrimitiveType) -> Result<PrimitiveType> {
        use PrimitiveType as T;
        let ok = match (self, source) {
            (Transform::Identity, t) => Some(t),
            (Transform::Year | Transform::Month, T::Date | T::Timestamp | T::TimestampTz) => {
                Some(T::Int)
            }
            (Transform::Day, T::Date | T::Timestamp | T::TimestampTz) => Some(T::Date),
            (Transform::Hour, T::Timestamp | T::TimestampTz) => Some(T::Int),
            (
                Transform::Bucket(_),
                T::Int
                | T::Long
                | T::Decimal { .. }
                | T::Date
                | T::Timestamp
                | T::TimestampTz
                | T::String
                | T::Binary,
            ) => Some(T::Int),
            (
                Transform::Truncate(_),
                t @ (T::Int | T::Long | T::Decimal { .. } | T::String | T::Binary),
            ) => Some(t),
            _ => None,
        };
        ok.ok_or_else(|| {
            SpecError::Unsupported(format!(
                "transform {self} cannot be applied to a {source} column"
            ))
        })
    }

    /// Whether `a <= b` implies `transform(a) <= transform(b)`, so that a range over the
    /// source column maps to a range over partition values.
    pub fn preserves_order(self) -> bool {
        !matches!(self, Transform::Bucket(_))
    }

    /// Applies the transform to one value of type `source`. `None` maps to `None`.
    pub fn apply(self, source: PrimitiveType, value: Option<&Value>) -> Result<Option<Value>> {
        let Some(value) = value else { return Ok(None) };
        let mismatch = || {
            SpecError::invalid(format!(
                "value {value} does not fit a {source} column for transform {self}"
            ))
        };
        if !value.fits(source) {
            return Err(mismatch());
        }
        let out = match (self, value) {
            (Transform::Identity, v) => v.clone(),
            (Transform::Year, v) => {
                Value::Int(years_from_days(days_of(source, v).ok_or_else(mismatch)?))
            }
            (Transform::Month, v) => {
                Value::Int(months_from_days(days_of(source, v).ok_or_else(mismatch)?))
            }
            (Transform::Day, v) => Value::Int(days_of(source, v).ok_or_else(mismatch)?),
            (Transform::Hour, Value::Long(micros)) => Value::Int(hours_from_micros(*micros)),
            (Transform::Bucket(n), v) => {
                Value::Int(bucket_of(bucket_hash(v).ok_or_else(mismatch)?, n))
            }
            (Transform::Truncate(w), v) => truncate(w, v).ok_or_else(mismatch)?,
            _ => return Err(mismatch()),
        };
        Ok(Some(out))
    }

    /// Renders a partition value of type `result_type` for the human-readable part of a data
    /// file's path. Paths are never parsed back: the manifest holds the typed value.
    pub fn render(self, result_type: PrimitiveType, value: Option<&Value>) -> String {
        let Some(value) = value else {
            return "null".to_string();
        };
        match (self, result_type, value) {
            (Transform::Year, _, Value::Int(y)) => format!("{}", 1970 + i64::from(*y)),
            (Transform::Month, _, Value::Int(m)) => {
                let (y, mo) = (i64::from(*m).div_euclid(12), i64::from(*m).rem_euclid(12));
                format!("{}-{:02}", 1970 + y, mo + 1)
            }
            (Transform::Hour, _, Value::Int(h)) => {
                let (y, m, d) = civil_from_days(i64::from(*h).div_euclid(24));
                format!("{y}-{m:02}-{d:02}-{:02}", i64::from(*h).rem_euclid(24))
            }
            (_, PrimitiveType::Date, Value::Int(d)) => {
                let (y, m, day) = civil_from_days(i64::from(*d));
                format!("{y}-{m:02}-{day:02}")
            }
            (_, PrimitiveType::Timestamp | PrimitiveType::TimestampTz, Value::Long(us)) => {
                let (y, m, d) = civil_from_days(us.div_euclid(MICROS_PER_DAY));
                let of_day = us.rem_euclid(MICROS_PER_DAY);
                let secs = of_day / 1_000_000;
                format!(
                    "{y}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}",
                    secs / 3600,
                    secs / 60 % 60,
                    secs % 60,
                    of_day % 1_000_000
                )
            }
            (_, _, v) => v.to_string(),
        }
    }
}

fn narrow(v: i64) -> i32 {
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

// The transforms on native values. `Transform::apply` is built from these, and so are the
// writer's column-at-a-time kernels, so both always agree.

/// Days since the epoch of a timestamp in microseconds (`day`).
pub fn days_from_micros(micros: i64) -> i32 {
    narrow(micros.div_euclid(MICROS_PER_DAY))
}

/// Hours since the epoch of a timestamp in microseconds (`hour`).
pub fn hours_from_micros(micros: i64) -> i32 {
    narrow(micros.div_euclid(MICROS_PER_HOUR))
}

/// Years since 1970 of a day count (`year`).
pub fn years_from_days(days: i32) -> i32 {
    narrow(civil_from_days(i64::from(days)).0 - 1970)
}

/// Months since 1970-01 of a day count (`month`).
pub fn months_from_days(days: i32) -> i32 {
    let (y, m, _) = civil_from_days(i64::from(days));
    narrow((y - 1970) * 12 + i64::from(m) - 1)
}

/// The bucket in `0..n` of a value whose [`bucket_hash`] is `hash`.
pub fn bucket_of(hash: i32, n: u32) -> i32 {
    ((hash & i32::MAX) as u32 % n) as i32
}

/// [`bucket_hash`] of an int, long, date or timestamp.
pub fn bucket_hash_long(v: i64) -> i32 {
    murmur3_32(&v.to_le_bytes()) as i32
}

/// [`bucket_hash`] of a decimal's unscaled value.
pub fn bucket_hash_decimal(v: i128) -> i32 {
    murmur3_32(&minimal_be_bytes(v)) as i32
}

/// [`bucket_hash`] of a string's UTF-8 bytes or of a binary.
pub fn bucket_hash_bytes(b: &[u8]) -> i32 {
    murmur3_32(b) as i32
}

/// `v` rounded down to a multiple of `width` (`truncate` of an int, long or decimal).
pub fn truncate_integer(v: i128, width: u32) -> i128 {
    v - v.rem_euclid(i128::from(width))
}

/// Days since the epoch of a date or timestamp value.
fn days_of(source: PrimitiveType, value: &Value) -> Option<i32> {
    match (source, value) {
        (PrimitiveType::Date, Value::Int(d)) => Some(*d),
        (PrimitiveType::Timestamp | PrimitiveType::TimestampTz, Value::Long(us)) => {
            Some(days_from_micros(*us))
        }
        _ => None,
    }
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn truncate(width: u32, value: &Value) -> Option<Value> {
    Some(match value {
        Value::Int(v) => Value::Int(truncate_integer(i128::from(*v), width) as i32),
        Value::Long(v) => Value::Long(truncate_integer(i128::from(*v), width) as i64),
        Value::Decimal(v) => Value::Decimal(truncate_integer(*v, width)),
        Value::String(s) => Value::String(s.chars().take(width as usize).collect()),
        Value::Binary(b) => Value::Binary(b.iter().take(width as usize).copied().collect()),
        _ => return None,
    })
}

/// The 32-bit murmur3 hash used by `bucket[N]`. Ints, longs, dates and timestamps hash as
/// their value widened to a 64-bit little-endian integer; decimals as the minimal
/// big-endian two's-complement bytes of the unscaled value; strings as UTF-8; binaries as
/// themselves.
pub fn bucket_hash(value: &Value) -> Option<i32> {
    Some(match value {
        Value::Int(v) => bucket_hash_long(i64::from(*v)),
        Value::Long(v) => bucket_hash_long(*v),
        Value::Decimal(v) => bucket_hash_decimal(*v),
        Value::String(s) => bucket_hash_bytes(s.as_bytes()),
        Value::Binary(b) => bucket_hash_bytes(b),
        _ => return None,
    })
}

fn minimal_be_bytes(v: i128) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    // Drop leading bytes that only repeat the sign of the next one.
    while start < bytes.len() - 1 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    bytes[start..].to_vec()
}

/// murmur3_x86_32 with seed 0.
fn murmur3_32(data: &[u8]) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mix = |k: u32| k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    let mut h: u32 = 0;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        h ^= mix(k);
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut k: u32 = 0;
        for (i, b) in tail.iter().enumerate() {
            k ^= u32::from(*b) << (8 * i);
        }
        h ^= mix(k);
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

impl fmt::Display for Transform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transform::Identity => f.write_str("identity"),
            Transform::Year => f.write_str("year"),
            Transform::Month => f.write_str("month"),
            Transform::Day => f.write_str("day"),
            Transform::Hour => f.write_str("hour"),
            Transform::Bucket(n) => write!(f, "bucket[{n}]"),
            Transform::Truncate(w) => write!(f, "truncate[{w}]"),
        }
    }
}

impl FromStr for Transform {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self> {
        let parametrised = |prefix: &str| -> Option<Result<u32>> {
            let n = s.strip_prefix(prefix)?.strip_suffix(']')?;
            Some(match n.parse::<u32>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(SpecError::Unsupported(format!(
                    "transform '{s}': the parameter must be a positive integer"
                ))),
            })
        };
        Ok(match s {
            "identity" => Transform::Identity,
            "year" => Transform::Year,
            "month" => Transform::Month,
            "day" => Transform::Day,
            "hour" => Transform::Hour,
            _ => {
                if let Some(n) = parametrised("bucket[") {
                    Transform::Bucket(n?)
                } else if let Some(w) = parametrised("truncate[") {
                    Transform::Truncate(w?)
                } else {
                    return Err(SpecError::Unsupported(format!(
                        "unknown transform '{s}'; expected identity, year, month, day, hour, \
                         bucket[N] or truncate[W]"
                    )));
                }
            }
        })
    }
}

impl Serialize for Transform {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Transform {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference hashes from the Apache Iceberg specification, appendix B.
    #[test]
    fn bucket_hash_matches_iceberg() {
        assert_eq!(bucket_hash(&Value::Int(34)), Some(2_017_239_379));
        assert_eq!(bucket_hash(&Value::Long(34)), Some(2_017_239_379));
        assert_eq!(bucket_hash(&Value::Decimal(1420)), Some(-500_754_589));
        // 2017-11-16 is day 17486.
        assert_eq!(bucket_hash(&Value::Int(17_486)), Some(-653_330_422));
        assert_eq!(
            bucket_hash(&Value::String("iceberg".into())),
            Some(1_210_000_089)
        );
        assert_eq!(
            bucket_hash(&Value::Binary(vec![0, 1, 2, 3])),
            Some(-188_683_207)
        );
    }

    #[test]
    fn temporal_transforms() {
        // 2026-11-25 10:30:00 UTC in microseconds.
        let ts = Value::Long(1_795_602_600_000_000);
        let t = PrimitiveType::Timestamp;
        let apply = |tr: Transform| tr.apply(t, Some(&ts)).unwrap().unwrap();
        assert_eq!(apply(Transform::Year), Value::Int(56));
        assert_eq!(apply(Transform::Month), Value::Int(56 * 12 + 10));
        let (int, date) = (PrimitiveType::Int, PrimitiveType::Date);
        assert_eq!(
            Transform::Day.render(date, Some(&apply(Transform::Day))),
            "2026-11-25"
        );
        assert_eq!(
            Transform::Hour.render(int, Some(&apply(Transform::Hour))),
            "2026-11-25-10"
        );
        assert_eq!(
            Transform::Month.render(int, Some(&apply(Transform::Month))),
            "2026-11"
        );
        assert_eq!(
            Transform::Identity.render(t, Some(&ts)),
            "2026-11-25T10:30:00.000000"
        );
        assert_eq!(
            Transform::Identity.render(date, Some(&Value::Int(0))),
            "1970-01-01"
        );
        // Before the epoch rounds down, not toward zero.
        let before = Value::Long(-1);
        assert_eq!(
            Transform::Day.apply(t, Some(&before)).unwrap(),
            Some(Value::Int(-1))
        );
        assert_eq!(
            Transform::Year.apply(t, Some(&before)).unwrap(),
            Some(Value::Int(-1))
        );
    }

    #[test]
    fn truncate_rounds_down() {
        let t = Transform::Truncate(10);
        assert_eq!(
            t.apply(PrimitiveType::Int, Some(&Value::Int(-1))).unwrap(),
            Some(Value::Int(-10))
        );
        assert_eq!(
            t.apply(PrimitiveType::Long, Some(&Value::Long(19)))
                .unwrap(),
            Some(Value::Long(10))
        );
        let s = Transform::Truncate(3)
            .apply(PrimitiveType::String, Some(&Value::String("ßeta!".into())));
        assert_eq!(s.unwrap(), Some(Value::String("ßet".into())));
    }

    #[test]
    fn transforms_check_their_source_type() {
        assert!(Transform::Hour.result_type(PrimitiveType::Date).is_err());
        assert!(
            Transform::Bucket(4)
                .result_type(PrimitiveType::Double)
                .is_err()
        );
        assert_eq!(
            Transform::Day
                .result_type(PrimitiveType::TimestampTz)
                .unwrap(),
            PrimitiveType::Date
        );
        assert!(
            Transform::Year
                .apply(PrimitiveType::Date, Some(&Value::String("x".into())))
                .is_err()
        );
    }

    #[test]
    fn spelling_round_trips() {
        for t in [
            "identity",
            "year",
            "month",
            "day",
            "hour",
            "bucket[16]",
            "truncate[4]",
        ] {
            assert_eq!(t.parse::<Transform>().unwrap().to_string(), t);
        }
        assert!("bucket[0]".parse::<Transform>().is_err());
        assert!("bucket".parse::<Transform>().is_err());
    }
}
