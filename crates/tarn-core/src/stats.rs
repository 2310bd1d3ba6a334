//! Per-column statistics of a data file, collected once by the writer and stored typed.
//!
//! Bounds are *sound*: every non-null value of the column lies in `[min, max]`. Strings and
//! binaries longer than [`TRUNCATE_LENGTH`] are cut: the lower bound to a prefix, the upper
//! bound to a prefix whose last character is incremented (dropped when it cannot be). Float
//! bounds are left unknown when the column holds NaN.

use std::cmp::Ordering;

use arrow::array::{Array, AsArray, UInt64Array};
use arrow::compute;
use arrow::datatypes::*;
use tarn_spec::Value;

/// Characters (strings) or bytes (binaries) kept in a bound.
pub const TRUNCATE_LENGTH: usize = 16;

/// Statistics of one column in one data file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColumnStats {
    /// Lower bound of the non-null values; `None` when unknown or there are none.
    pub min: Option<Value>,
    /// Upper bound of the non-null values; `None` when unknown or there are none.
    pub max: Option<Value>,
    /// Number of nulls; `None` when unknown.
    pub null_count: Option<u64>,
}

/// Accumulates [`ColumnStats`] over the batches written to one file.
#[derive(Debug, Default, Clone)]
pub(crate) struct StatsCollector {
    min: Option<Value>,
    max: Option<Value>,
    nulls: u64,
    /// A NaN was seen, so float bounds are unknown.
    poisoned: bool,
}

impl StatsCollector {
    pub fn update(&mut self, array: &dyn Array) {
        self.nulls += array.null_count() as u64;
        if array.null_count() == array.len() {
            return;
        }
        let (min, max) = match array_min_max(array) {
            MinMax::Known(min, max) => (min, max),
            MinMax::Unknown => {
                self.poisoned = true;
                return;
            }
        };
        if self
            .min
            .as_ref()
            .is_none_or(|m| min.compare(m) == Some(Ordering::Less))
        {
            self.min = Some(min);
        }
        if self
            .max
            .as_ref()
            .is_none_or(|m| max.compare(m) == Some(Ordering::Greater))
        {
            self.max = Some(max);
        }
    }

    /// The smallest non-null value seen (untruncated); `None` if unknown or none.
    pub fn min(&self) -> Option<Value> {
        if self.poisoned {
            None
        } else {
            self.min.clone()
        }
    }

    /// The largest non-null value seen (untruncated); `None` if unknown or none.
    pub fn max(&self) -> Option<Value> {
        if self.poisoned {
            None
        } else {
            self.max.clone()
        }
    }

    pub fn finish(&self) -> ColumnStats {
        if self.poisoned {
            return ColumnStats {
                min: None,
                max: None,
                null_count: Some(self.nulls),
            };
        }
        ColumnStats {
            min: self.min.clone().map(truncate_lower),
            max: self.max.clone().and_then(truncate_upper),
            null_count: Some(self.nulls),
        }
    }
}

/// [`ColumnStats`] of a file from the statistics its Parquet writer recorded per row group:
/// `mins`, `maxes` and `nulls` hold one entry per row group (NULL where the writer recorded
/// none), `rows` the row groups' row counts. The bounds are unknown when a row group holding
/// values has none; the null count is unknown when one is missing.
///
/// Not for float columns: Parquet leaves NaN out of its bounds, where tarn's bounds must
/// cover every value ([`StatsCollector`] makes them unknown).
pub(crate) fn from_row_groups(
    mins: &dyn Array,
    maxes: &dyn Array,
    nulls: &UInt64Array,
    rows: &[u64],
) -> ColumnStats {
    let null_count = (nulls.null_count() == 0).then(|| nulls.values().iter().sum());
    let bounded = (0..rows.len()).all(|g| {
        nulls.is_valid(g) && (nulls.value(g) == rows[g] || mins.is_valid(g) && maxes.is_valid(g))
    });
    let (min, max) = match (bounded, array_min_max(mins), array_min_max(maxes)) {
        (true, MinMax::Known(min, _), MinMax::Known(_, max)) => (Some(min), Some(max)),
        _ => (None, None),
    };
    ColumnStats {
        min: min.map(truncate_lower),
        max: max.and_then(truncate_upper),
        null_count,
    }
}

enum MinMax {
    Known(Value, Value),
    Unknown,
}

fn array_min_max(array: &dyn Array) -> MinMax {
    macro_rules! prim {
        ($t:ty, $variant:ident) => {{
            let a = array.as_primitive::<$t>();
            match (compute::min(a), compute::max(a)) {
                (Some(min), Some(max)) => MinMax::Known(Value::$variant(min), Value::$variant(max)),
                _ => MinMax::Unknown,
            }
        }};
    }
    macro_rules! float {
        ($t:ty, $variant:ident) => {{
            let a = array.as_primitive::<$t>();
            // Arrow orders NaN above every number, so a NaN max means a NaN is present.
            match (compute::min(a), compute::max(a)) {
                (Some(min), Some(max)) if !max.is_nan() && !min.is_nan() => {
                    MinMax::Known(Value::$variant(min), Value::$variant(max))
                }
                _ => MinMax::Unknown,
            }
        }};
    }
    match array.data_type() {
        DataType::Boolean => {
            let a = array.as_boolean();
            match (compute::min_boolean(a), compute::max_boolean(a)) {
                (Some(min), Some(max)) => MinMax::Known(Value::Boolean(min), Value::Boolean(max)),
                _ => MinMax::Unknown,
            }
        }
        DataType::Int32 => prim!(Int32Type, Int),
        DataType::Int64 => prim!(Int64Type, Long),
        DataType::Date32 => prim!(Date32Type, Int),
        DataType::Timestamp(TimeUnit::Microsecond, _) => prim!(TimestampMicrosecondType, Long),
        DataType::Decimal128(_, _) => prim!(Decimal128Type, Decimal),
        DataType::Float32 => float!(Float32Type, Float),
        DataType::Float64 => float!(Float64Type, Double),
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            match (compute::min_string(a), compute::max_string(a)) {
                (Some(min), Some(max)) => {
                    MinMax::Known(Value::String(min.into()), Value::String(max.into()))
                }
                _ => MinMax::Unknown,
            }
        }
        DataType::Binary => {
            let a = array.as_binary::<i32>();
            match (compute::min_binary(a), compute::max_binary(a)) {
                (Some(min), Some(max)) => {
                    MinMax::Known(Value::Binary(min.into()), Value::Binary(max.into()))
                }
                _ => MinMax::Unknown,
            }
        }
        _ => MinMax::Unknown,
    }
}

/// A lower bound no longer than [`TRUNCATE_LENGTH`]: a prefix sorts before the value.
pub fn truncate_lower(value: Value) -> Value {
    match value {
        Value::String(s) if s.chars().count() > TRUNCATE_LENGTH => {
            Value::String(s.chars().take(TRUNCATE_LENGTH).collect())
        }
        Value::Binary(b) if b.len() > TRUNCATE_LENGTH => {
            Value::Binary(b[..TRUNCATE_LENGTH].to_vec())
        }
        v => v,
    }
}

/// An upper bound no longer than [`TRUNCATE_LENGTH`], or `None` when no short bound exists
/// (every kept character is already the largest).
pub fn truncate_upper(value: Value) -> Option<Value> {
    match value {
        Value::String(s) if s.chars().count() > TRUNCATE_LENGTH => {
            let mut chars: Vec<char> = s.chars().take(TRUNCATE_LENGTH).collect();
            while let Some(last) = chars.pop() {
                if let Some(next) = next_char(last) {
                    chars.push(next);
                    return Some(Value::String(chars.into_iter().collect()));
                }
            }
            None
        }
        Value::Binary(b) if b.len() > TRUNCATE_LENGTH => {
            let mut bytes = b[..TRUNCATE_LENGTH].to_vec();
            while let Some(last) = bytes.pop() {
                if last < u8::MAX {
                    bytes.push(last + 1);
                    return Some(Value::Binary(bytes));
                }
            }
            None
        }
        v => Some(v),
    }
}

fn next_char(c: char) -> Option<char> {
    let mut code = u32::from(c) + 1;
    while code <= u32::from(char::MAX) {
        if let Some(next) = char::from_u32(code) {
            return Some(next);
        }
        code += 1; // skip the surrogate range
    }
    None
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, StringArray};

    use super::*;

    #[test]
    fn long_strings_get_sound_truncated_bounds() {
        let long_a = "a".repeat(40);
        let long_z = format!("{}{}", "z".repeat(15), "zzzz");
        let array: Arc<dyn Array> = Arc::new(StringArray::from(vec![
            Some(long_a.as_str()),
            None,
            Some(long_z.as_str()),
        ]));
        let mut c = StatsCollector::default();
        c.update(array.as_ref());
        let stats = c.finish();
        let Some(Value::String(min)) = &stats.min else {
            panic!("no min")
        };
        let Some(Value::String(max)) = &stats.max else {
            panic!("no max")
        };
        assert!(min.as_str() <= long_a.as_str() && min.chars().count() == TRUNCATE_LENGTH);
        assert!(max.as_str() >= long_z.as_str() && max.chars().count() == TRUNCATE_LENGTH);
        assert_eq!(stats.null_count, Some(1));
    }

    #[test]
    fn upper_bound_carries_past_max_characters() {
        let s = format!("ab{}", char::MAX.to_string().repeat(20));
        assert_eq!(
            truncate_upper(Value::String(s)),
            Some(Value::String("ac".into()))
        );
        let all_max = char::MAX.to_string().repeat(20);
        assert_eq!(truncate_upper(Value::String(all_max)), None);
        assert_eq!(truncate_upper(Value::Binary(vec![0xff; 20])), None);
    }

    #[test]
    fn nan_makes_float_bounds_unknown() {
        let mut c = StatsCollector::default();
        c.update(&Float64Array::from(vec![1.0, 2.0]));
        c.update(&Float64Array::from(vec![f64::NAN]));
        let stats = c.finish();
        assert_eq!((stats.min, stats.max), (None, None));
    }

    #[test]
    fn bounds_merge_across_batches() {
        let mut c = StatsCollector::default();
        c.update(&arrow::array::Int64Array::from(vec![5, 7]));
        c.update(&arrow::array::Int64Array::from(vec![Some(-2), None]));
        let stats = c.finish();
        assert_eq!(stats.min, Some(Value::Long(-2)));
        assert_eq!(stats.max, Some(Value::Long(7)));
        assert_eq!(stats.null_count, Some(1));
    }
}
