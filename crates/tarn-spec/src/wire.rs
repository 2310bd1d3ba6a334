//! The JSON form of version files. Kept apart from the domain types so that the model can
//! change without changing bytes on storage, and so that every document is validated on its
//! way in.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::{FieldId, SchemaId, SpecId, Version};
use crate::snapshot::{Changes, Operation, Summary};
use crate::transform::Transform;
use crate::types::PrimitiveType;

/// Just enough of any version file to learn its format version.
#[derive(Deserialize)]
pub(crate) struct FormatProbe {
    #[serde(rename = "format-version")]
    pub format_version: u32,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct TableMetadataV1 {
    pub format_version: u32,
    pub table_uuid: String,
    pub last_updated_ms: i64,
    pub last_column_id: FieldId,
    pub last_partition_id: FieldId,
    pub current_schema_id: SchemaId,
    pub schemas: Vec<SchemaV1>,
    pub default_spec_id: SpecId,
    pub partition_specs: Vec<PartitionSpecV1>,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    pub snapshots: Vec<SnapshotV1>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct SchemaV1 {
    pub schema_id: SchemaId,
    pub fields: Vec<FieldV1>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FieldV1 {
    pub id: FieldId,
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: TypeV1,
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc: Option<String>,
    #[serde(
        rename = "initial-default",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub initial_default: Option<serde_json::Value>,
    #[serde(
        rename = "write-default",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub write_default: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct PartitionSpecV1 {
    pub spec_id: SpecId,
    pub fields: Vec<PartitionFieldV1>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct PartitionFieldV1 {
    pub source_id: FieldId,
    pub field_id: FieldId,
    pub name: String,
    pub transform: Transform,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct SnapshotV1 {
    pub version: Version,
    pub timestamp_ms: i64,
    pub operation: Operation,
    pub schema_id: SchemaId,
    pub manifest_list: Option<String>,
    pub summary: Summary,
    #[serde(default)]
    pub changes: Changes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_id: Option<String>,
}

/// A type: a primitive's spelling, or an object for a nested type (Iceberg's JSON form).
#[derive(Debug)]
pub(crate) enum TypeV1 {
    Primitive(PrimitiveType),
    Nested(Box<NestedV1>),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub(crate) enum NestedV1 {
    Struct {
        fields: Vec<FieldV1>,
    },
    #[serde(rename_all = "kebab-case")]
    List {
        element_id: FieldId,
        element: TypeV1,
        element_required: bool,
    },
    #[serde(rename_all = "kebab-case")]
    FixedSizeList {
        size: i32,
        element_id: FieldId,
        element: TypeV1,
        element_required: bool,
    },
    #[serde(rename_all = "kebab-case")]
    Map {
        key_id: FieldId,
        key: TypeV1,
        value_id: FieldId,
        value: TypeV1,
        value_required: bool,
    },
}

impl Serialize for TypeV1 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            TypeV1::Primitive(p) => p.serialize(serializer),
            TypeV1::Nested(n) => n.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for TypeV1 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(s) => {
                s.parse().map(TypeV1::Primitive).map_err(D::Error::custom)
            }
            other => NestedV1::deserialize(other)
                .map(|n| TypeV1::Nested(Box::new(n)))
                .map_err(D::Error::custom),
        }
    }
}
