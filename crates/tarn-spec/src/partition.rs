//! Partition specs: which transforms of which columns split a table's data files.

use std::collections::HashSet;

use crate::error::{Result, SpecError};
use crate::ids::{FieldId, SpecId};
use crate::schema::Schema;
use crate::transform::Transform;
use crate::types::PrimitiveType;
use crate::value::Value;

/// Partition field ids start here, apart from column field ids.
pub const FIRST_PARTITION_FIELD_ID: i32 = 1000;

/// One partition field: `transform(source column)`, named `name`.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionField {
    pub source_id: FieldId,
    pub field_id: FieldId,
    pub name: String,
    pub transform: Transform,
}

/// A partition spec. An unpartitioned table has a spec with no fields.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionSpec {
    id: SpecId,
    fields: Vec<PartitionField>,
    /// The type of each field's values, derived from the schema the spec was checked against.
    types: Vec<PrimitiveType>,
}

impl PartitionSpec {
    /// The spec of an unpartitioned table.
    pub fn unpartitioned(id: SpecId) -> Self {
        PartitionSpec {
            id,
            fields: Vec::new(),
            types: Vec::new(),
        }
    }

    /// A spec checked against `schema`: every source column exists and its type takes the
    /// transform; partition field ids and names are unique.
    pub fn new(id: SpecId, fields: Vec<PartitionField>, schema: &Schema) -> Result<Self> {
        let mut ids = HashSet::new();
        let mut names = HashSet::new();
        let mut types = Vec::with_capacity(fields.len());
        for field in &fields {
            let source = schema.leaf(field.source_id).ok_or_else(|| {
                let reason = match schema.field_by_id(field.source_id) {
                    None => "which the schema does not have".to_string(),
                    Some(f) => format!(
                        "a {}, but a partition source is a primitive column or a primitive \
                         field of a struct column",
                        f.field_type
                    ),
                };
                SpecError::invalid(format!(
                    "partition spec {id}: field '{}' refers to column id {}, {reason}",
                    field.name, field.source_id
                ))
            })?;
            let source_type = source.field.primitive().expect("leaves are primitive");
            let result_type = field.transform.result_type(source_type).map_err(|e| {
                SpecError::invalid(format!("partition spec {id}: field '{}': {e}", field.name))
            })?;
            types.push(result_type);
            if !ids.insert(field.field_id) {
                return Err(SpecError::invalid(format!(
                    "partition spec {id}: partition field id {} is used more than once",
                    field.field_id
                )));
            }
            if !names.insert(field.name.to_ascii_lowercase()) {
                return Err(SpecError::invalid(format!(
                    "partition spec {id}: partition field name '{}' is used more than once",
                    field.name
                )));
            }
        }
        Ok(PartitionSpec { id, fields, types })
    }

    pub fn id(&self) -> SpecId {
        self.id
    }

    pub fn fields(&self) -> &[PartitionField] {
        &self.fields
    }

    pub fn is_unpartitioned(&self) -> bool {
        self.fields.is_empty()
    }

    /// The type of each field's values, in field order (from the schema the spec was
    /// checked against).
    pub fn types(&self) -> &[PrimitiveType] {
        &self.types
    }

    /// The type of each partition value, in field order.
    pub fn partition_types(&self, schema: &Schema) -> Result<Vec<PrimitiveType>> {
        self.fields
            .iter()
            .map(|f| {
                let source = schema.leaf(f.source_id).ok_or_else(|| {
                    SpecError::invalid(format!(
                        "partition field '{}' refers to column id {}, which the schema does \
                         not have as a primitive column",
                        f.name, f.source_id
                    ))
                })?;
                f.transform
                    .result_type(source.field.primitive().expect("leaves are primitive"))
            })
            .collect()
    }

    /// The relative directory for a partition tuple, `name=value/...`; empty when
    /// unpartitioned. Names and values are percent-escaped outside `[A-Za-z0-9._-]`, and a
    /// long escaped value is cut and given a hash of the whole, so that every segment fits
    /// a file name. The directory only helps people find files: readers take partition
    /// values from the manifest, never from the path.
    pub fn partition_path(&self, values: &[Option<Value>]) -> String {
        self.fields
            .iter()
            .zip(&self.types)
            .zip(values)
            .map(|((f, ty), v)| {
                let rendered = f.transform.render(*ty, v.as_ref());
                format!(
                    "{}={}",
                    bounded(escape(&f.name)),
                    bounded(escape(&rendered))
                )
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// A key that tells partition tuples apart exactly (for conflict checks and grouping):
    /// the path form, except that a NULL value is the bare field name. The path itself
    /// writes NULL as `null`, the same as the string 'null', which is fine for a directory
    /// name but not for deciding whether two files share a partition.
    pub fn partition_key(&self, values: &[Option<Value>]) -> String {
        self.fields
            .iter()
            .zip(&self.types)
            .zip(values)
            .map(|((f, ty), v)| match v {
                None => escape(&f.name),
                Some(v) => {
                    let rendered = f.transform.render(*ty, Some(v));
                    format!("{}={}", escape(&f.name), escape(&rendered))
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// The highest partition field id, or one below the first when there is none.
    pub fn highest_field_id(&self) -> FieldId {
        FieldId(
            self.fields
                .iter()
                .map(|f| f.field_id.get())
                .max()
                .unwrap_or(FIRST_PARTITION_FIELD_ID - 1),
        )
    }
}

/// Escaped names and values longer than this are cut and suffixed with a hash.
const MAX_SEGMENT_PART: usize = 96;

/// An escaped name or value of at most [`MAX_SEGMENT_PART`] bytes: a long one keeps its
/// start (never cutting an escape sequence) and ends in `-` and a hash of all of it.
fn bounded(escaped: String) -> String {
    if escaped.len() <= MAX_SEGMENT_PART {
        return escaped;
    }
    let hash = fnv1a(escaped.as_bytes());
    let mut cut = MAX_SEGMENT_PART - 17;
    // Escaped text is ASCII; step back over a partial `%XX`.
    if let Some(pct) = escaped[cut.saturating_sub(2)..cut].find('%') {
        cut = cut - 2 + pct;
    }
    format!("{}-{hash:016x}", &escaped[..cut])
}

/// FNV-1a, 64 bits: a stable hash (the same in every build) for cut path segments.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SchemaId;
    use crate::schema::Field;

    fn schema() -> Schema {
        Schema::new(
            SchemaId(0),
            vec![
                Field::required(1, "id", PrimitiveType::Long),
                Field::optional(2, "ts", PrimitiveType::Timestamp),
                Field::optional(3, "region", PrimitiveType::String),
            ],
        )
        .unwrap()
    }

    #[test]
    fn paths_are_readable_and_escaped() {
        let spec = PartitionSpec::new(
            SpecId(0),
            vec![
                PartitionField {
                    source_id: FieldId(2),
                    field_id: FieldId(1000),
                    name: "ts_day".into(),
                    transform: Transform::Day,
                },
                PartitionField {
                    source_id: FieldId(3),
                    field_id: FieldId(1001),
                    name: "region".into(),
                    transform: Transform::Identity,
                },
            ],
            &schema(),
        )
        .unwrap();
        let path = spec.partition_path(&[
            Some(Value::Int(20_417)),
            Some(Value::String("eu west/1".into())),
        ]);
        assert_eq!(path, "ts_day=2025-11-25/region=eu%20west%2F1");
        assert_eq!(
            spec.partition_path(&[None, None]),
            "ts_day=null/region=null"
        );
        // Keys tell NULL from the string 'null'; paths need not.
        let null = spec.partition_key(&[None, None]);
        let string = spec.partition_key(&[None, Some(Value::String("null".into()))]);
        assert_eq!(null, "ts_day/region");
        assert_ne!(null, string);
    }

    #[test]
    fn long_values_are_cut_with_a_hash() {
        let spec = PartitionSpec::new(
            SpecId(0),
            vec![PartitionField {
                source_id: FieldId(3),
                field_id: FieldId(1000),
                name: "region".into(),
                transform: Transform::Identity,
            }],
            &schema(),
        )
        .unwrap();
        let long = |s: &str| spec.partition_path(&[Some(Value::String(s.into()))]);
        let a = long(&"ü".repeat(200));
        let b = long(&format!("{}x", "ü".repeat(200)));
        assert!(a.len() <= "region=".len() + MAX_SEGMENT_PART, "{a}");
        assert_ne!(
            a, b,
            "values that differ after the cut get different hashes"
        );
        // The cut never splits an escape sequence.
        let value = a.trim_start_matches("region=");
        let prefix = value.rsplit_once('-').unwrap().0;
        assert!(prefix.split('%').skip(1).all(|e| e.len() >= 2), "{a}");
        assert_eq!(long("short"), "region=short");
    }

    #[test]
    fn unknown_source_is_refused() {
        let err = PartitionSpec::new(
            SpecId(3),
            vec![PartitionField {
                source_id: FieldId(9),
                field_id: FieldId(1000),
                name: "x".into(),
                transform: Transform::Identity,
            }],
            &schema(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid table metadata: partition spec 3: field 'x' refers to column id 9, which the schema does not have"
        );
    }
}
