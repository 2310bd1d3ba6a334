//! Routing the rows of a batch to partitions, a column at a time.
//!
//! ```text
//! batch ──transform kernels──▶ one key column per partition field
//!       ──RowConverter──────▶ one comparable byte key per row
//!       ──group by key──────▶ one permutation (`take` once) ──▶ a zero-copy slice per partition
//! ```
//!
//! Keys only group rows; the typed partition tuple of a group comes from
//! [`Transform::apply`] on the group's first row, and the kernels are built from the same
//! native functions as `apply`, so both always agree.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int32Array, PrimitiveArray, RecordBatch, Scalar};
use arrow::compute::concat;
use arrow::compute::kernels::cmp::not_distinct;
use arrow::compute::kernels::substring::{substring, substring_by_char};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType,
};
use arrow::row::{RowConverter, SortField};
use tarn_spec::{
    PartitionSpec, PrimitiveType, Schema, Transform, Value, bucket_hash_bytes, bucket_hash_decimal,
    bucket_hash_long, bucket_of, days_from_micros, hours_from_micros, months_from_days,
    truncate_integer, years_from_days,
};

use crate::arrow_convert::{leaf_array, value_at};
use crate::error::{Error, Result};

/// The rows of one partition within a batch.
pub(crate) struct Group {
    /// The partition's key bytes: equal keys are equal partition tuples.
    pub key: Vec<u8>,
    /// The rows, in their input order; [`Router::tuple`] of any of them is the partition.
    pub batch: RecordBatch,
}

struct Source {
    /// Where the source column is (see [`tarn_spec::Leaf`]).
    path: Vec<usize>,
    field_type: PrimitiveType,
    transform: Transform,
}

/// Splits batches of one table schema by one partition spec.
pub(crate) struct Router {
    sources: Vec<Source>,
    /// Built from the first batch's key columns, whose types every later batch shares.
    converter: Option<RowConverter>,
}

impl Router {
    pub fn new(schema: &Schema, spec: &PartitionSpec) -> Result<Self> {
        let sources = spec
            .fields()
            .iter()
            .map(|pf| {
                let leaf = schema.leaf(pf.source_id).ok_or_else(|| {
                    Error::invalid(
                        "partition spec",
                        format!(
                            "source column {} of '{}' is not in the schema",
                            pf.source_id, pf.name
                        ),
                    )
                })?;
                Ok(Source {
                    path: leaf.path.to_vec(),
                    field_type: leaf.field.primitive().expect("leaves are primitive"),
                    transform: pf.transform,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Router {
            sources,
            converter: None,
        })
    }

    /// `batches` (in the table's schema, together not empty) split by partition, groups in
    /// the order their first rows appear, rows in input order.
    pub fn route(&mut self, batches: &[RecordBatch]) -> Result<Vec<Group>> {
        let Some(schema) = batches.first().map(|b| b.schema()) else {
            return Ok(Vec::new());
        };
        let whole = || match batches {
            [one] => Ok(one.clone()),
            many => arrow::compute::concat_batches(&schema, many)
                .map_err(|e| Error::arrow("gathering rows of one partition", e)),
        };
        if self.sources.is_empty() {
            return Ok(vec![Group {
                key: Vec::new(),
                batch: whole()?,
            }]);
        }
        // One key column per field for the whole chunk: converting it in one call, rather
        // than appending batch by batch, keeps the conversion linear (arrow-row checks every
        // offset of the rows built so far after each append in debug builds).
        let keys = self
            .sources
            .iter()
            .map(|s| {
                let parts = batches
                    .iter()
                    .map(|b| partition_keys(s.transform, &leaf_array(b, &s.path)?))
                    .collect::<Result<Vec<_>>>()?;
                match parts.as_slice() {
                    [one] => Ok(Arc::clone(one)),
                    many => concat(&many.iter().map(|a| a.as_ref()).collect::<Vec<_>>())
                        .map_err(|e| Error::arrow("routing rows to partitions", e)),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let converter = match &mut self.converter {
            Some(c) => c,
            None => self.converter.insert(
                RowConverter::new(
                    keys.iter()
                        .map(|k| SortField::new(k.data_type().clone()))
                        .collect(),
                )
                .map_err(|e| Error::arrow("routing rows to partitions", e))?,
            ),
        };
        let convert = |keys: &[ArrayRef]| {
            converter
                .convert_columns(keys)
                .map_err(|e| Error::arrow("routing rows to partitions", e))
        };
        if keys[0].is_empty() {
            return Ok(Vec::new());
        }

        // Most chunks of clustered data belong to one partition: check that first, a column
        // at a time, and convert only the first row's key.
        if keys.iter().all(is_constant) {
            let first: Vec<ArrayRef> = keys.iter().map(|k| k.slice(0, 1)).collect();
            return Ok(vec![Group {
                key: convert(&first)?.row(0).data().to_vec(),
                batch: whole()?,
            }]);
        }
        let rows = convert(&keys)?;

        // Group ids by first appearance, then a counting sort of the rows by group and one
        // interleave of the whole chunk in that order. `locations` says where each row of
        // the chunk is: (batch, row in batch).
        let locations: Vec<(usize, usize)> = batches
            .iter()
            .enumerate()
            .flat_map(|(b, batch)| (0..batch.num_rows()).map(move |r| (b, r)))
            .collect();
        let mut ids: HashMap<&[u8], u32, foldhash::fast::RandomState> = HashMap::default();
        let mut first_rows: Vec<usize> = Vec::new();
        let group_of: Vec<u32> = (0..rows.num_rows())
            .map(|i| {
                *ids.entry(rows.row(i).data()).or_insert_with(|| {
                    first_rows.push(i);
                    (first_rows.len() - 1) as u32
                })
            })
            .collect();
        let mut offsets = vec![0usize; first_rows.len() + 1];
        for g in &group_of {
            offsets[*g as usize + 1] += 1;
        }
        for g in 0..first_rows.len() {
            offsets[g + 1] += offsets[g];
        }
        let groups = |sorted: RecordBatch| {
            first_rows
                .iter()
                .enumerate()
                .map(|(g, &row)| Group {
                    key: rows.row(row).data().to_vec(),
                    batch: sorted.slice(offsets[g], offsets[g + 1] - offsets[g]),
                })
                .collect()
        };
        // A batch of clustered rows (a sorted write's) is already in partition order: the
        // groups are slices of it.
        if let [batch] = batches
            && group_of.is_sorted()
        {
            return Ok(groups(batch.clone()));
        }
        let mut next = offsets.clone();
        let mut order = vec![(0usize, 0usize); group_of.len()];
        for (row, g) in group_of.iter().enumerate() {
            order[next[*g as usize]] = locations[row];
            next[*g as usize] += 1;
        }
        let refs: Vec<&RecordBatch> = batches.iter().collect();
        let sorted = arrow::compute::interleave_record_batch(&refs, &order)
            .map_err(|e| Error::arrow("splitting rows by partition", e))?;
        Ok(groups(sorted))
    }

    /// The typed partition tuple of `row`.
    pub fn tuple(&self, batch: &RecordBatch, row: usize) -> Result<Vec<Option<Value>>> {
        self.sources
            .iter()
            .map(|s| {
                s.transform
                    .apply(
                        s.field_type,
                        value_at(leaf_array(batch, &s.path)?.as_ref(), row).as_ref(),
                    )
                    .map_err(Error::InvalidMetadata)
            })
            .collect()
    }
}

/// Whether every value of `keys` is the same, NULL included (NaN too, as one key). A type
/// the comparison kernel does not take counts as not constant: the caller then compares rows.
fn is_constant(keys: &ArrayRef) -> bool {
    let first = Scalar::new(keys.slice(0, 1));
    not_distinct(keys, &first).is_ok_and(|same| same.true_count() == keys.len())
}

/// The partition keys of a whole column: the transform of every value, NULL for NULL.
/// Only grouping reads these (a `day` key is an `Int32` column here, a `date` in the tuple).
/// String and binary views are keyed as the strings and binaries they hold.
pub fn partition_keys(transform: Transform, array: &ArrayRef) -> Result<ArrayRef> {
    let unviewed = match array.data_type() {
        DataType::Utf8View => Some(DataType::Utf8),
        DataType::BinaryView => Some(DataType::Binary),
        _ => None,
    };
    if let Some(to) = unviewed {
        let array = arrow::compute::cast(array, &to)
            .map_err(|e| Error::arrow("reading partition values", e))?;
        return partition_keys(transform, &array);
    }
    let unsupported = || {
        Error::invalid(
            "partition spec",
            format!(
                "transform {transform} does not apply to a column of Arrow type {}",
                array.data_type()
            ),
        )
    };
    let micros = || array.as_primitive::<TimestampMicrosecondType>();
    let out: ArrayRef = match (transform, array.data_type()) {
        (Transform::Identity, _) => array.clone(),
        (Transform::Year, DataType::Date32) => {
            days32(array.as_primitive::<Date32Type>(), years_from_days)
        }
        (Transform::Month, DataType::Date32) => {
            days32(array.as_primitive::<Date32Type>(), months_from_days)
        }
        (Transform::Day, DataType::Date32) => array.clone(),
        (Transform::Year, DataType::Timestamp(TimeUnit::Microsecond, _)) => {
            Arc::new(micros().unary::<_, Int32Type>(|v| years_from_days(days_from_micros(v))))
        }
        (Transform::Month, DataType::Timestamp(TimeUnit::Microsecond, _)) => {
            Arc::new(micros().unary::<_, Int32Type>(|v| months_from_days(days_from_micros(v))))
        }
        (Transform::Day, DataType::Timestamp(TimeUnit::Microsecond, _)) => {
            Arc::new(micros().unary::<_, Int32Type>(days_from_micros))
        }
        (Transform::Hour, DataType::Timestamp(TimeUnit::Microsecond, _)) => {
            Arc::new(micros().unary::<_, Int32Type>(hours_from_micros))
        }
        (Transform::Bucket(n), data_type) => {
            let hashes: Int32Array = match data_type {
                DataType::Int32 => array
                    .as_primitive::<Int32Type>()
                    .unary(|v| bucket_hash_long(i64::from(v))),
                DataType::Date32 => array
                    .as_primitive::<Date32Type>()
                    .unary(|v| bucket_hash_long(i64::from(v))),
                DataType::Int64 => array.as_primitive::<Int64Type>().unary(bucket_hash_long),
                DataType::Timestamp(TimeUnit::Microsecond, _) => micros().unary(bucket_hash_long),
                DataType::Decimal128(_, _) => array
                    .as_primitive::<Decimal128Type>()
                    .unary(bucket_hash_decimal),
                DataType::Utf8 => array
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.map(|s| bucket_hash_bytes(s.as_bytes())))
                    .collect(),
                DataType::Binary => array
                    .as_binary::<i32>()
                    .iter()
                    .map(|v| v.map(bucket_hash_bytes))
                    .collect(),
                _ => return Err(unsupported()),
            };
            Arc::new(hashes.unary::<_, Int32Type>(|h| bucket_of(h, n)))
        }
        (Transform::Truncate(w), DataType::Int32) => Arc::new(
            array
                .as_primitive::<Int32Type>()
                .unary::<_, Int32Type>(|v| truncate_integer(i128::from(v), w) as i32),
        ),
        (Transform::Truncate(w), DataType::Int64) => Arc::new(
            array
                .as_primitive::<Int64Type>()
                .unary::<_, Int64Type>(|v| truncate_integer(i128::from(v), w) as i64),
        ),
        (Transform::Truncate(w), DataType::Decimal128(_, _)) => Arc::new(
            array
                .as_primitive::<Decimal128Type>()
                .unary::<_, Decimal128Type>(|v| truncate_integer(v, w)),
        ),
        (Transform::Truncate(w), DataType::Utf8) => {
            substring_by_char(array.as_string::<i32>(), 0, Some(u64::from(w)))
                .map(|a| Arc::new(a) as ArrayRef)
                .map_err(|e| Error::arrow("truncating partition values", e))?
        }
        (Transform::Truncate(w), DataType::Binary) => substring(array, 0, Some(u64::from(w)))
            .map_err(|e| Error::arrow("truncating partition values", e))?,
        _ => return Err(unsupported()),
    };
    Ok(out)
}

fn days32(array: &PrimitiveArray<Date32Type>, f: fn(i32) -> i32) -> ArrayRef {
    Arc::new(array.unary::<_, Int32Type>(f))
}

#[cfg(test)]
mod tests {
    use arrow::array::{
        BinaryArray, BinaryViewArray, Date32Array, Decimal128Array, Int64Array, StringArray,
        StringViewArray, TimestampMicrosecondArray,
    };
    use tarn_spec::{Field, FieldId, PartitionField, SchemaId, SpecId};

    use super::*;
    use crate::arrow_convert::arrow_schema;

    /// Every kernel against `Transform::apply`, value by value, over awkward values:
    /// negatives, the epoch, far dates, NULL, empty and multi-byte strings, string and binary
    /// views.
    #[test]
    fn kernels_agree_with_apply() {
        let cases: Vec<(PrimitiveType, ArrayRef)> = vec![
            (
                PrimitiveType::Int,
                Arc::new(Int32Array::from(vec![
                    Some(0),
                    Some(-1),
                    Some(7),
                    None,
                    Some(i32::MIN),
                    Some(i32::MAX),
                ])),
            ),
            (
                PrimitiveType::Long,
                Arc::new(Int64Array::from(vec![
                    Some(0),
                    Some(-1),
                    Some(1 << 40),
                    None,
                    Some(i64::MIN),
                    Some(i64::MAX),
                ])),
            ),
            (
                PrimitiveType::Date,
                Arc::new(Date32Array::from(vec![
                    Some(0),
                    Some(-1),
                    Some(19_000),
                    None,
                    Some(-719_468),
                    Some(2_932_896),
                ])),
            ),
            (
                PrimitiveType::Timestamp,
                Arc::new(TimestampMicrosecondArray::from(vec![
                    Some(0),
                    Some(-1),
                    Some(1_700_000_000_123_456),
                    None,
                    Some(-86_400_000_001),
                ])),
            ),
            (
                PrimitiveType::Decimal {
                    precision: 38,
                    scale: 2,
                },
                Arc::new(
                    Decimal128Array::from(vec![
                        Some(0),
                        Some(-1),
                        Some(12_345),
                        None,
                        Some(-99_999_999_999_999_999_999_999_999_999_999_999_999),
                    ])
                    .with_precision_and_scale(38, 2)
                    .unwrap(),
                ),
            ),
            (
                PrimitiveType::String,
                Arc::new(StringArray::from(vec![
                    Some(""),
                    Some("a/b c%"),
                    Some("héllo wörld"),
                    None,
                    Some("日本語のテキスト"),
                ])),
            ),
            (
                PrimitiveType::String,
                Arc::new(StringViewArray::from(vec![
                    Some(""),
                    Some("a/b c%"),
                    None,
                    Some("a string longer than the twelve bytes a view holds inline"),
                ])),
            ),
            (
                PrimitiveType::Binary,
                Arc::new(BinaryViewArray::from(vec![
                    Some(&b""[..]),
                    None,
                    Some(&b"\x00\xff bytes longer than twelve"[..]),
                ])),
            ),
            (
                PrimitiveType::Binary,
                Arc::new(BinaryArray::from(vec![
                    Some(&b""[..]),
                    Some(&b"\x00\xff\x10abc"[..]),
                    None,
                ])),
            ),
        ];
        let transforms = [
            Transform::Identity,
            Transform::Year,
            Transform::Month,
            Transform::Day,
            Transform::Hour,
            Transform::Bucket(16),
            Transform::Bucket(1),
            Transform::Truncate(3),
            Transform::Truncate(1),
        ];
        let mut checked = 0;
        for (ty, array) in &cases {
            for transform in transforms {
                if transform.result_type(*ty).is_err() {
                    continue;
                }
                let keys = partition_keys(transform, array).unwrap();
                for row in 0..array.len() {
                    let expected = transform
                        .apply(*ty, value_at(array.as_ref(), row).as_ref())
                        .unwrap();
                    let got = value_at(keys.as_ref(), row);
                    assert_eq!(got, expected, "{transform} of {ty} row {row}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 150, "only {checked} values checked");
    }

    #[test]
    fn routes_rows_to_their_tuples() {
        let schema = Schema::new(
            SchemaId(0),
            vec![
                Field::optional(1, "ts", PrimitiveType::Timestamp),
                Field::optional(2, "id", PrimitiveType::Long),
            ],
        )
        .unwrap();
        let spec = PartitionSpec::new(
            SpecId(0),
            vec![
                PartitionField {
                    source_id: FieldId(1),
                    field_id: FieldId(1000),
                    name: "ts_day".into(),
                    transform: Transform::Day,
                },
                PartitionField {
                    source_id: FieldId(2),
                    field_id: FieldId(1001),
                    name: "id_bucket".into(),
                    transform: Transform::Bucket(4),
                },
            ],
            &schema,
        )
        .unwrap();
        let day = 86_400_000_000i64;
        let ts: Vec<Option<i64>> = (0..100)
            .map(|i| (i % 7 != 3).then_some((i % 3) * day + i))
            .collect();
        let id: Vec<Option<i64>> = (0..100).map(|i| (i % 11 != 5).then_some(i * 37)).collect();
        let batch = RecordBatch::try_new(
            arrow_schema(&schema),
            vec![
                Arc::new(TimestampMicrosecondArray::from(ts.clone())),
                Arc::new(Int64Array::from(id.clone())),
            ],
        )
        .unwrap();
        let mut router = Router::new(&schema, &spec).unwrap();
        let (a, b) = (batch.slice(0, 37), batch.slice(37, 63));
        let groups = router.route(&[a, b]).unwrap();
        let mut seen: Vec<Vec<Option<Value>>> = Vec::new();
        let mut rows = 0;
        for group in &groups {
            let tuple = router.tuple(&group.batch, 0).unwrap();
            assert!(
                !seen.contains(&tuple),
                "tuple {tuple:?} split into two groups"
            );
            seen.push(tuple.clone());
            for row in 0..group.batch.num_rows() {
                let expected = router.tuple(&group.batch, row).unwrap();
                assert_eq!(expected, tuple);
            }
            rows += group.batch.num_rows();
        }
        assert_eq!(rows, 100);
        assert!(groups.len() > 8, "{} groups", groups.len());
        // The first group is the first row's partition, rows kept in input order.
        let first = &groups[0].batch;
        let ids = first.column(1).as_primitive::<Int64Type>();
        assert_eq!(ids.value(0), 0);
        assert!(ids.values().windows(2).all(|w| w[0] < w[1]));

        // A batch already in partition order (a sorted write's) is cut into slices of itself,
        // not copied: the same groups, sharing the batch's buffers.
        let groups: Vec<RecordBatch> = groups.into_iter().map(|g| g.batch).collect();
        let sorted = arrow::compute::concat_batches(&groups[0].schema(), &groups).unwrap();
        let slices = router.route(std::slice::from_ref(&sorted)).unwrap();
        assert_eq!(slices.len(), groups.len());
        let ids = |batch: &RecordBatch| {
            batch
                .column(1)
                .as_primitive::<Int64Type>()
                .values()
                .as_ptr()
        };
        let mut at = ids(&sorted);
        for (slice, group) in slices.iter().zip(&groups) {
            assert_eq!(slice.batch, *group);
            assert_eq!(ids(&slice.batch), at, "a copy, not a slice");
            at = at.wrapping_add(group.num_rows());
        }
    }

    /// A chunk whose rows all fall in one partition is keyed without comparing rows; its key
    /// must be the one the same partition gets in a mixed chunk, or a writer would open a
    /// second file for it. NULL, '' and names with `/`, `%` and non-ASCII letters included.
    #[test]
    fn a_chunk_of_one_partition_keys_it_as_a_mixed_chunk_does() {
        let schema = Schema::new(
            SchemaId(0),
            vec![
                Field::optional(1, "k", PrimitiveType::String),
                Field::optional(2, "v", PrimitiveType::Long),
            ],
        )
        .unwrap();
        let spec = PartitionSpec::new(
            SpecId(0),
            vec![PartitionField {
                source_id: FieldId(1),
                field_id: FieldId(1000),
                name: "k".into(),
                transform: Transform::Identity,
            }],
            &schema,
        )
        .unwrap();
        let batch = |keys: Vec<Option<&str>>| {
            let values: Vec<i64> = (0..keys.len() as i64).collect();
            RecordBatch::try_new(
                arrow_schema(&schema),
                vec![
                    Arc::new(StringArray::from(keys)),
                    Arc::new(Int64Array::from(values)),
                ],
            )
            .unwrap()
        };
        let mut router = Router::new(&schema, &spec).unwrap();
        let mixed = router
            .route(&[
                batch(vec![Some("x"), Some("ä/b %"), None]),
                batch(vec![Some(""), Some("x")]),
            ])
            .unwrap();
        let keys: Vec<Vec<u8>> = mixed.iter().map(|g| g.key.clone()).collect();
        assert_eq!(keys.len(), 4, "x, ä/b %, NULL and ''");
        for (value, mixed_key) in [Some("ä/b %"), None, Some(""), Some("x")]
            .into_iter()
            .zip([&keys[1], &keys[2], &keys[3], &keys[0]])
        {
            let groups = router
                .route(&[batch(vec![value; 3]), batch(vec![value; 2])])
                .unwrap();
            assert_eq!(groups.len(), 1, "{value:?}");
            assert_eq!(&groups[0].key, mixed_key, "{value:?}");
            assert_eq!(groups[0].batch.num_rows(), 5);
            let tuple = router.tuple(&groups[0].batch, 0).unwrap();
            assert_eq!(tuple, vec![value.map(|v| Value::String(v.into()))]);
        }
    }
}
