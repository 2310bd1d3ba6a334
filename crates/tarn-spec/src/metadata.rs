//! Table metadata: the full state of a table at one version, as stored in that version's
//! file `metadata/<20-digit version>.json`.

use std::collections::{BTreeMap, HashSet};

use crate::error::{Result, SpecError};
use crate::ids::{FieldId, SchemaId, SpecId, Version};
use crate::partition::{PartitionField, PartitionSpec};
use crate::schema::{Field, Schema};
use crate::snapshot::{Changes, Operation, Snapshot, Summary};
use crate::types::Type;
use crate::value::Value;
use crate::wire;

/// The newest format version this crate reads and writes (it reads every older one).
pub const FORMAT_VERSION: u32 = 4;

/// The format version that adds deletion vectors to manifests (merge-on-read row changes).
/// A table moves to it with its first commit that deletes rows by vector, so that readers
/// that would not apply the vectors refuse the table instead of returning deleted rows.
pub const DELETION_VECTORS_FORMAT_VERSION: u32 = 2;

/// The format version from which a version file's snapshot log holds only the most recent
/// snapshots ([`RECENT_SNAPSHOTS`]); older ones are in older version files. A table moves to it
/// with the commit that first drops an entry, so that writers that would look for concurrent
/// commits in the log alone refuse the table instead of missing a conflict.
pub const BOUNDED_LOG_FORMAT_VERSION: u32 = 3;

/// The format version from which manifests, manifest lists and removed-files objects may be
/// Arrow IPC files compressed as a whole in one LZ4 frame (named `*.arrow.lz4`). A table
/// moves to it with the commit that first writes one, so that readers that would take it
/// for a corrupt manifest refuse the table instead.
pub const COMPRESSED_OBJECTS_FORMAT_VERSION: u32 = 4;

/// How many snapshots a version file keeps in its log: the bytes a commit writes do not grow
/// with the table's history.
pub const RECENT_SNAPSHOTS: usize = 50;

/// The state of a table at one version. Always valid: constructed only through
/// [`TableMetadata::create`], [`TableMetadata::from_json`] and [`TableMetadata::commit`].
#[derive(Debug, Clone, PartialEq)]
pub struct TableMetadata {
    format_version: u32,
    table_uuid: String,
    last_updated_ms: i64,
    last_column_id: FieldId,
    last_partition_id: FieldId,
    schemas: Vec<Schema>,
    current_schema_id: SchemaId,
    specs: Vec<PartitionSpec>,
    default_spec_id: SpecId,
    properties: BTreeMap<String, String>,
    snapshots: Vec<Snapshot>,
}

/// A change to table metadata carried by a commit.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataUpdate {
    /// Add a schema and make it current. Its id is assigned by the commit.
    SetSchema(Vec<Field>),
    /// Add a partition spec and make it the default. Its id is assigned by the commit.
    SetPartitionSpec(Vec<PartitionField>),
    /// Make a schema the table has (an earlier one) current again.
    SetCurrentSchema(SchemaId),
    /// Make a partition spec the table has (an earlier one) the default again.
    SetDefaultSpec(SpecId),
    SetProperties(BTreeMap<String, String>),
    /// Raise the table's format version to at least this one (never lowers it).
    UpgradeFormatVersion(u32),
    RemoveProperties(Vec<String>),
}

/// The snapshot part of a commit: everything but the version number, which the commit
/// assigns.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSnapshot {
    pub timestamp_ms: i64,
    pub operation: Operation,
    pub manifest_list: Option<String>,
    pub summary: Summary,
    pub changes: Changes,
    pub commit_id: Option<String>,
}

impl TableMetadata {
    /// Version 0 of a new table: no data, the given schema (id 0) and spec (id 0).
    pub fn create(
        table_uuid: impl Into<String>,
        fields: Vec<Field>,
        partition_fields: Vec<PartitionField>,
        properties: BTreeMap<String, String>,
        timestamp_ms: i64,
    ) -> Result<Self> {
        let schema = Schema::new(SchemaId(0), fields)?;
        let spec = PartitionSpec::new(SpecId(0), partition_fields, &schema)?;
        let metadata = TableMetadata {
            format_version: 1,
            table_uuid: table_uuid.into(),
            last_updated_ms: timestamp_ms,
            last_column_id: schema.highest_field_id(),
            last_partition_id: spec.highest_field_id(),
            current_schema_id: SchemaId(0),
            schemas: vec![schema],
            default_spec_id: SpecId(0),
            specs: vec![spec],
            properties,
            snapshots: vec![Snapshot {
                version: Version(0),
                timestamp_ms,
                operation: Operation::Create,
                schema_id: SchemaId(0),
                manifest_list: None,
                summary: Summary::default(),
                changes: Changes::default(),
                commit_id: None,
            }],
        };
        metadata.validate()?;
        Ok(metadata)
    }

    /// The metadata of the next version: `updates` applied, then `snapshot` appended to the
    /// log as version `self.version() + 1`.
    pub fn commit(&self, updates: &[MetadataUpdate], snapshot: NewSnapshot) -> Result<Self> {
        let mut next = self.applied(updates)?;
        next.last_updated_ms = snapshot.timestamp_ms;
        next.snapshots.push(Snapshot {
            version: self.version().next(),
            timestamp_ms: snapshot.timestamp_ms,
            operation: snapshot.operation,
            schema_id: next.current_schema_id,
            manifest_list: snapshot.manifest_list,
            summary: snapshot.summary,
            changes: snapshot.changes,
            commit_id: snapshot.commit_id,
        });
        if next.snapshots.len() > RECENT_SNAPSHOTS {
            let excess = next.snapshots.len() - RECENT_SNAPSHOTS;
            next.snapshots.drain(..excess);
            next.format_version = next.format_version.max(BOUNDED_LOG_FORMAT_VERSION);
        }
        next.validate()?;
        Ok(next)
    }

    /// This metadata with `updates` applied but no new snapshot: the schema, partition spec
    /// and properties the next version will have, which data written for it must match.
    pub fn with_updates(&self, updates: &[MetadataUpdate]) -> Result<Self> {
        let next = self.applied(updates)?;
        next.validate()?;
        Ok(next)
    }

    fn applied(&self, updates: &[MetadataUpdate]) -> Result<Self> {
        let mut next = self.clone();
        for update in updates {
            next.apply(update)?;
        }
        Ok(next)
    }

    fn apply(&mut self, update: &MetadataUpdate) -> Result<()> {
        match update {
            MetadataUpdate::SetSchema(fields) => {
                let id = SchemaId(
                    self.schemas
                        .iter()
                        .map(|s| s.id().get())
                        .max()
                        .unwrap_or(-1)
                        + 1,
                );
                let schema = Schema::new(id, fields.clone())?;
                self.last_column_id = self.last_column_id.max(schema.highest_field_id());
                self.schemas.push(schema);
                self.current_schema_id = id;
            }
            MetadataUpdate::SetPartitionSpec(fields) => {
                let id = SpecId(self.specs.iter().map(|s| s.id().get()).max().unwrap_or(-1) + 1);
                let spec = PartitionSpec::new(id, fields.clone(), self.current_schema())?;
                self.last_partition_id = self.last_partition_id.max(spec.highest_field_id());
                self.specs.push(spec);
                self.default_spec_id = id;
            }
            MetadataUpdate::SetCurrentSchema(id) => {
                if self.schema(*id).is_none() {
                    return Err(SpecError::invalid(format!("the table has no schema {id}")));
                }
                self.current_schema_id = *id;
            }
            MetadataUpdate::SetDefaultSpec(id) => {
                if self.spec(*id).is_none() {
                    return Err(SpecError::invalid(format!(
                        "the table has no partition spec {id}"
                    )));
                }
                self.default_spec_id = *id;
            }
            MetadataUpdate::SetProperties(props) => {
                self.properties
                    .extend(props.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            MetadataUpdate::RemoveProperties(keys) => {
                for key in keys {
                    self.properties.remove(key);
                }
            }
            MetadataUpdate::UpgradeFormatVersion(version) => {
                if *version > FORMAT_VERSION {
                    return Err(SpecError::UnsupportedFormatVersion {
                        found: *version,
                        supported: FORMAT_VERSION,
                    });
                }
                self.format_version = self.format_version.max(*version);
            }
        }
        Ok(())
    }

    /// The format version this metadata is written in (§11 of the format).
    pub fn format_version(&self) -> u32 {
        self.format_version
    }

    /// The version this metadata describes.
    pub fn version(&self) -> Version {
        self.current_snapshot().version
    }

    pub fn table_uuid(&self) -> &str {
        &self.table_uuid
    }

    pub fn last_updated_ms(&self) -> i64 {
        self.last_updated_ms
    }

    /// The highest column field id ever assigned; new columns get ids above it.
    pub fn last_column_id(&self) -> FieldId {
        self.last_column_id
    }

    /// The highest partition field id ever assigned.
    pub fn last_partition_id(&self) -> FieldId {
        self.last_partition_id
    }

    pub fn schemas(&self) -> &[Schema] {
        &self.schemas
    }

    pub fn current_schema(&self) -> &Schema {
        self.schema(self.current_schema_id)
            .expect("validated: current schema exists")
    }

    pub fn schema(&self, id: SchemaId) -> Option<&Schema> {
        self.schemas.iter().find(|s| s.id() == id)
    }

    pub fn specs(&self) -> &[PartitionSpec] {
        &self.specs
    }

    pub fn default_spec(&self) -> &PartitionSpec {
        self.spec(self.default_spec_id)
            .expect("validated: default spec exists")
    }

    pub fn spec(&self, id: SpecId) -> Option<&PartitionSpec> {
        self.specs.iter().find(|s| s.id() == id)
    }

    pub fn properties(&self) -> &BTreeMap<String, String> {
        &self.properties
    }

    /// The recent snapshot log, oldest first; the last entry is the current snapshot. It holds
    /// at most [`RECENT_SNAPSHOTS`] entries; the snapshots before its first one are in the
    /// version files before it.
    pub fn snapshots(&self) -> &[Snapshot] {
        &self.snapshots
    }

    pub fn current_snapshot(&self) -> &Snapshot {
        self.snapshots
            .last()
            .expect("validated: the log is never empty")
    }

    /// The snapshot of `version`, if the recent log holds it.
    pub fn snapshot(&self, version: Version) -> Option<&Snapshot> {
        let first = self.snapshots.first()?.version.get();
        let index = version.get().checked_sub(first)?;
        self.snapshots.get(usize::try_from(index).ok()?)
    }

    /// The newest snapshot committed at or before `timestamp_ms`, if the recent log can tell:
    /// `None` when the time is before its first entry.
    pub fn snapshot_at(&self, timestamp_ms: i64) -> Option<&Snapshot> {
        let n = self
            .snapshots
            .partition_point(|s| s.timestamp_ms <= timestamp_ms);
        n.checked_sub(1).map(|i| &self.snapshots[i])
    }

    /// Checks every rule of the format that one document can break.
    fn validate(&self) -> Result<()> {
        let mut versions = self.snapshots.iter().map(|s| s.version.get());
        let first = versions.next().ok_or_else(|| {
            SpecError::invalid(
                "the snapshot log is empty; it must hold at least the current snapshot",
            )
        })?;
        for (expected, v) in (first + 1..).zip(versions) {
            if v != expected {
                return Err(SpecError::invalid(format!(
                    "snapshot log is not contiguous: version {expected} expected, found {v}"
                )));
            }
        }
        unique(self.schemas.iter().map(|s| s.id().get()), "schema id")?;
        unique(self.specs.iter().map(|s| s.id().get()), "partition spec id")?;
        let current_schema = self.schema(self.current_schema_id).ok_or_else(|| {
            SpecError::invalid(format!(
                "current-schema-id {} names no schema",
                self.current_schema_id
            ))
        })?;
        let default_spec = self.spec(self.default_spec_id).ok_or_else(|| {
            SpecError::invalid(format!(
                "default-spec-id {} names no partition spec",
                self.default_spec_id
            ))
        })?;
        // The default spec must be applicable to the schema new data is written with.
        PartitionSpec::new(
            default_spec.id(),
            default_spec.fields().to_vec(),
            current_schema,
        )?;
        for schema in &self.schemas {
            if schema.highest_field_id() > self.last_column_id {
                return Err(SpecError::invalid(format!(
                    "schema {} uses field id {}, above last-column-id {}",
                    schema.id(),
                    schema.highest_field_id(),
                    self.last_column_id
                )));
            }
        }
        for spec in &self.specs {
            if !spec.is_unpartitioned() && spec.highest_field_id() > self.last_partition_id {
                return Err(SpecError::invalid(format!(
                    "partition spec {} uses partition field id {}, above last-partition-id {}",
                    spec.id(),
                    spec.highest_field_id(),
                    self.last_partition_id
                )));
            }
        }
        for snapshot in &self.snapshots {
            if self.schema(snapshot.schema_id).is_none() {
                return Err(SpecError::invalid(format!(
                    "snapshot {} refers to schema {}, which the table does not have",
                    snapshot.version, snapshot.schema_id
                )));
            }
            if snapshot.manifest_list.is_none() && snapshot.summary.total_files > 0 {
                return Err(SpecError::invalid(format!(
                    "snapshot {} counts {} data files but has no manifest list",
                    snapshot.version, snapshot.summary.total_files
                )));
            }
        }
        Ok(())
    }

    /// Serializes to the version-file JSON.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_wire()).expect("metadata serializes: all keys are strings")
    }

    /// Parses and validates a version file. A format version above [`FORMAT_VERSION`] is
    /// refused: the table was written by a newer tarn.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let probe: wire::FormatProbe =
            serde_json::from_slice(bytes).map_err(|e| SpecError::Malformed(e.to_string()))?;
        if probe.format_version == 0 {
            return Err(SpecError::invalid(
                "format-version 0 does not exist; it starts at 1",
            ));
        }
        if probe.format_version > FORMAT_VERSION {
            return Err(SpecError::UnsupportedFormatVersion {
                found: probe.format_version,
                supported: FORMAT_VERSION,
            });
        }
        let doc: wire::TableMetadataV1 =
            serde_json::from_slice(bytes).map_err(|e| SpecError::Malformed(e.to_string()))?;
        Self::from_wire(doc)
    }

    fn to_wire(&self) -> wire::TableMetadataV1 {
        wire::TableMetadataV1 {
            format_version: self.format_version,
            table_uuid: self.table_uuid.clone(),
            last_updated_ms: self.last_updated_ms,
            last_column_id: self.last_column_id,
            last_partition_id: self.last_partition_id,
            current_schema_id: self.current_schema_id,
            schemas: self
                .schemas
                .iter()
                .map(|s| wire::SchemaV1 {
                    schema_id: s.id(),
                    fields: s.fields().iter().map(field_to_wire).collect(),
                })
                .collect(),
            default_spec_id: self.default_spec_id,
            partition_specs: self
                .specs
                .iter()
                .map(|s| wire::PartitionSpecV1 {
                    spec_id: s.id(),
                    fields: s
                        .fields()
                        .iter()
                        .map(|f| wire::PartitionFieldV1 {
                            source_id: f.source_id,
                            field_id: f.field_id,
                            name: f.name.clone(),
                            transform: f.transform,
                        })
                        .collect(),
                })
                .collect(),
            properties: self.properties.clone(),
            snapshots: self
                .snapshots
                .iter()
                .map(|s| wire::SnapshotV1 {
                    version: s.version,
                    timestamp_ms: s.timestamp_ms,
                    operation: s.operation,
                    schema_id: s.schema_id,
                    manifest_list: s.manifest_list.clone(),
                    summary: s.summary.clone(),
                    changes: s.changes.clone(),
                    commit_id: s.commit_id.clone(),
                })
                .collect(),
        }
    }

    fn from_wire(doc: wire::TableMetadataV1) -> Result<Self> {
        let schemas = doc
            .schemas
            .into_iter()
            .map(|s| {
                let fields = s
                    .fields
                    .into_iter()
                    .map(|f| field_from_wire(s.schema_id, f))
                    .collect::<Result<Vec<_>>>()?;
                Schema::new(s.schema_id, fields)
            })
            .collect::<Result<Vec<_>>>()?;
        let specs = doc
            .partition_specs
            .into_iter()
            .map(|s| {
                let fields: Vec<PartitionField> = s
                    .fields
                    .into_iter()
                    .map(|f| PartitionField {
                        source_id: f.source_id,
                        field_id: f.field_id,
                        name: f.name,
                        transform: f.transform,
                    })
                    .collect();
                // Older specs may name columns a later schema dropped; each spec is checked
                // against the newest schema that has all its source columns.
                let schema = schemas
                    .iter()
                    .rev()
                    .find(|schema| {
                        fields
                            .iter()
                            .all(|f| schema.field_by_id(f.source_id).is_some())
                    })
                    .or(schemas.last())
                    .ok_or_else(|| SpecError::invalid("the table has no schema"))?;
                PartitionSpec::new(s.spec_id, fields, schema)
            })
            .collect::<Result<Vec<_>>>()?;
        let snapshots = doc
            .snapshots
            .into_iter()
            .map(|s| Snapshot {
                version: s.version,
                timestamp_ms: s.timestamp_ms,
                operation: s.operation,
                schema_id: s.schema_id,
                manifest_list: s.manifest_list,
                summary: s.summary,
                changes: s.changes,
                commit_id: s.commit_id,
            })
            .collect();
        let metadata = TableMetadata {
            format_version: doc.format_version,
            table_uuid: doc.table_uuid,
            last_updated_ms: doc.last_updated_ms,
            last_column_id: doc.last_column_id,
            last_partition_id: doc.last_partition_id,
            schemas,
            current_schema_id: doc.current_schema_id,
            specs,
            default_spec_id: doc.default_spec_id,
            properties: doc.properties,
            snapshots,
        };
        metadata.validate()?;
        Ok(metadata)
    }
}

fn unique(ids: impl Iterator<Item = i32>, what: &str) -> Result<()> {
    let mut seen = HashSet::new();
    for id in ids {
        if !seen.insert(id) {
            return Err(SpecError::invalid(format!(
                "{what} {id} is used more than once"
            )));
        }
    }
    Ok(())
}

fn field_to_wire(f: &Field) -> wire::FieldV1 {
    let default = |v: &Option<Value>| match (v, f.primitive()) {
        (Some(v), Some(p)) => Some(v.to_json(p)),
        _ => None,
    };
    wire::FieldV1 {
        id: f.id,
        name: f.name.clone(),
        field_type: type_to_wire(&f.field_type),
        required: f.required,
        doc: f.doc.clone(),
        initial_default: default(&f.initial_default),
        write_default: default(&f.write_default),
    }
}

fn type_to_wire(t: &Type) -> wire::TypeV1 {
    use wire::NestedV1;
    let nested = match t {
        Type::Primitive(p) => return wire::TypeV1::Primitive(*p),
        Type::Struct(fields) => NestedV1::Struct {
            fields: fields.iter().map(field_to_wire).collect(),
        },
        Type::List(e) => NestedV1::List {
            element_id: e.id,
            element: type_to_wire(&e.field_type),
            element_required: e.required,
        },
        Type::FixedList { element: e, size } => NestedV1::FixedSizeList {
            size: *size,
            element_id: e.id,
            element: type_to_wire(&e.field_type),
            element_required: e.required,
        },
        Type::Map { key, value } => NestedV1::Map {
            key_id: key.id,
            key: type_to_wire(&key.field_type),
            value_id: value.id,
            value: type_to_wire(&value.field_type),
            value_required: value.required,
        },
    };
    wire::TypeV1::Nested(Box::new(nested))
}

fn field_from_wire(schema: SchemaId, f: wire::FieldV1) -> Result<Field> {
    let field_type = type_from_wire(schema, f.field_type)?;
    let default = |json: Option<serde_json::Value>, what: &str| {
        json.map(|j| {
            field_type
                .as_primitive()
                .and_then(|p| Value::from_json(p, &j))
                .ok_or_else(|| {
                    SpecError::invalid(format!(
                        "schema {schema}: the {what} of '{}' is {j}, not a {field_type}",
                        f.name
                    ))
                })
        })
        .transpose()
    };
    Ok(Field {
        initial_default: default(f.initial_default, "initial-default")?,
        write_default: default(f.write_default, "write-default")?,
        id: f.id,
        name: f.name,
        field_type,
        required: f.required,
        doc: f.doc,
    })
}

fn type_from_wire(schema: SchemaId, t: wire::TypeV1) -> Result<Type> {
    use crate::types::{ELEMENT_NAME, KEY_NAME, VALUE_NAME};
    use wire::NestedV1;
    let part = |id: FieldId, name: &str, t: wire::TypeV1, required: bool| -> Result<Box<Field>> {
        Ok(Box::new(Field {
            required,
            ..Field::optional(id.get(), name, type_from_wire(schema, t)?)
        }))
    };
    Ok(match t {
        wire::TypeV1::Primitive(p) => Type::Primitive(p),
        wire::TypeV1::Nested(n) => match *n {
            NestedV1::Struct { fields } => Type::Struct(
                fields
                    .into_iter()
                    .map(|f| field_from_wire(schema, f))
                    .collect::<Result<_>>()?,
            ),
            NestedV1::List {
                element_id,
                element,
                element_required,
            } => Type::List(part(element_id, ELEMENT_NAME, element, element_required)?),
            NestedV1::FixedSizeList {
                size,
                element_id,
                element,
                element_required,
            } => Type::FixedList {
                element: part(element_id, ELEMENT_NAME, element, element_required)?,
                size,
            },
            NestedV1::Map {
                key_id,
                key,
                value_id,
                value,
                value_required,
            } => Type::Map {
                key: part(key_id, KEY_NAME, key, true)?,
                value: part(value_id, VALUE_NAME, value, value_required)?,
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Field;
    use crate::types::PrimitiveType;

    fn commit(t: &TableMetadata, update: MetadataUpdate) -> Result<TableMetadata> {
        t.commit(
            &[update],
            NewSnapshot {
                timestamp_ms: 1,
                operation: Operation::Delete,
                manifest_list: None,
                summary: Summary::default(),
                changes: Changes::default(),
                commit_id: None,
            },
        )
    }

    #[test]
    fn the_format_version_only_goes_up_and_survives_a_round_trip() {
        let t = TableMetadata::create(
            "uuid",
            vec![Field::required(1, "id", PrimitiveType::Long)],
            Vec::new(),
            BTreeMap::new(),
            0,
        )
        .unwrap();
        assert_eq!(t.format_version(), 1);
        let up = commit(&t, MetadataUpdate::UpgradeFormatVersion(2)).unwrap();
        assert_eq!(up.format_version(), 2);
        let again = commit(&up, MetadataUpdate::UpgradeFormatVersion(1)).unwrap();
        assert_eq!(again.format_version(), 2, "never lowered");
        let read = TableMetadata::from_json(&again.to_json()).unwrap();
        assert_eq!(read.format_version(), 2);
        let err = commit(&t, MetadataUpdate::UpgradeFormatVersion(FORMAT_VERSION + 1));
        assert!(matches!(
            err,
            Err(SpecError::UnsupportedFormatVersion { .. })
        ));
    }
}
