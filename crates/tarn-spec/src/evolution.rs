//! Schema and partition evolution: which changes a table may take, checked against its
//! metadata before anything is written.
//!
//! Columns are identified by field id, never by name, so a change only ever edits the
//! current schema: a new column gets an id above every id the table has used (a dropped
//! column's id is never reused), a rename keeps the id, and a widened column keeps its id
//! while old files keep their physical type.

use crate::error::{Result, SpecError};
use crate::ids::FieldId;
use crate::metadata::TableMetadata;
use crate::partition::PartitionField;
use crate::schema::Field;
use crate::transform::Transform;
use crate::types::PrimitiveType;
use crate::value::Value;

/// One change to a table's columns.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaChange {
    /// A new column, after the existing ones. Rows already stored read `default` (NULL
    /// when `None`); a NOT NULL column needs a default.
    AddColumn {
        name: String,
        field_type: PrimitiveType,
        required: bool,
        default: Option<Value>,
        doc: Option<String>,
    },
    /// SET DEFAULT (`Some`) or DROP DEFAULT (`None`): the value INSERTs write when they do
    /// not give one. Rows already stored are unchanged.
    SetDefault {
        name: String,
        default: Option<Value>,
    },
    DropColumn {
        name: String,
    },
    RenameColumn {
        from: String,
        to: String,
    },
    /// A safe widening: int to long, float to double, a decimal to a larger precision.
    SetType {
        name: String,
        field_type: PrimitiveType,
    },
    /// SET NOT NULL (`true`) or DROP NOT NULL (`false`). Setting it is only valid if no
    /// stored value is NULL, which the caller checks against the data.
    SetRequired {
        name: String,
        required: bool,
    },
}

impl SchemaChange {
    /// Whether the change is only valid for the data it was checked against.
    pub fn depends_on_data(&self) -> bool {
        matches!(self, SchemaChange::SetRequired { required: true, .. })
    }
}

fn refused(message: impl Into<String>) -> SpecError {
    SpecError::Refused(message.into())
}

impl TableMetadata {
    /// The fields of the current schema with `changes` applied in order, or why a change
    /// is refused.
    pub fn evolve_schema(&self, changes: &[SchemaChange]) -> Result<Vec<Field>> {
        let mut fields = self.current_schema().fields().to_vec();
        let mut next_id = self.last_column_id().get();
        let index_of = |fields: &[Field], name: &str| -> Result<usize> {
            fields
                .iter()
                .position(|f| f.name == name)
                .or_else(|| {
                    fields
                        .iter()
                        .position(|f| f.name.eq_ignore_ascii_case(name))
                })
                .ok_or_else(|| refused(format!("column '{name}' does not exist")))
        };
        let name_is_free = |fields: &[Field], name: &str, except: Option<usize>| -> Result<()> {
            match fields
                .iter()
                .position(|f| f.name.eq_ignore_ascii_case(name))
            {
                Some(i) if Some(i) != except => Err(refused(format!(
                    "column '{}' already exists",
                    fields[i].name
                ))),
                _ => Ok(()),
            }
        };
        for change in changes {
            match change {
                SchemaChange::AddColumn {
                    name,
                    field_type,
                    required,
                    default,
                    doc,
                } => {
                    name_is_free(&fields, name, None)?;
                    check_default(name, *field_type, default.as_ref())?;
                    if *required && default.is_none() {
                        return Err(refused(format!(
                            "cannot add '{name}' as NOT NULL without a default: rows already \
                             stored have no value for it; give it a DEFAULT, or add it as \
                             nullable, fill it with UPDATE, then SET NOT NULL"
                        )));
                    }
                    next_id += 1;
                    fields.push(Field {
                        required: *required,
                        doc: doc.clone(),
                        initial_default: default.clone(),
                        write_default: default.clone(),
                        ..Field::optional(next_id, name.clone(), *field_type)
                    });
                }
                SchemaChange::SetDefault { name, default } => {
                    let i = index_of(&fields, name)?;
                    check_default(&fields[i].name, fields[i].field_type, default.as_ref())?;
                    fields[i].write_default = default.clone();
                }
                SchemaChange::DropColumn { name } => {
                    let i = index_of(&fields, name)?;
                    if fields.len() == 1 {
                        return Err(refused(format!(
                            "cannot drop '{}', the only column of the table",
                            fields[i].name
                        )));
                    }
                    if let Some(pf) = self.partitioned_by(fields[i].id) {
                        return Err(refused(format!(
                            "cannot drop '{}': the table is partitioned by {}; change the \
                             partitioning first (ALTER TABLE ... SET PARTITIONED BY)",
                            fields[i].name,
                            describe(pf, &fields[i].name)
                        )));
                    }
                    fields.remove(i);
                }
                SchemaChange::RenameColumn { from, to } => {
                    let i = index_of(&fields, from)?;
                    if to.is_empty() {
                        return Err(refused("a column name cannot be empty"));
                    }
                    name_is_free(&fields, to, Some(i))?;
                    fields[i].name = to.clone();
                }
                SchemaChange::SetType { name, field_type } => {
                    let i = index_of(&fields, name)?;
                    let field = &fields[i];
                    if field.field_type == *field_type {
                        continue;
                    }
                    if !field.field_type.can_widen_to(*field_type) {
                        return Err(refused(format!(
                            "cannot change column '{}' from {} to {}: only widening is \
                             allowed (int to long, float to double, decimal(P,S) to \
                             decimal(P2,S) with P2 > P)",
                            field.name, field.field_type, field_type
                        )));
                    }
                    if self.any_spec_uses(field.id) {
                        return Err(refused(format!(
                            "cannot change the type of '{}': partition values of the table \
                             are derived from it",
                            field.name
                        )));
                    }
                    let from = fields[i].field_type;
                    let widen =
                        |v: &Option<Value>| v.as_ref().and_then(|v| v.widen(from, *field_type));
                    fields[i].initial_default = widen(&fields[i].initial_default);
                    fields[i].write_default = widen(&fields[i].write_default);
                    fields[i].field_type = *field_type;
                }
                SchemaChange::SetRequired { name, required } => {
                    let i = index_of(&fields, name)?;
                    fields[i].required = *required;
                }
            }
        }
        Ok(fields)
    }

    /// Fields for a new default partition spec: fields equal to one of an earlier spec
    /// (same source column and transform) keep its partition field id, others get new
    /// ids, so a partition value means the same thing in every spec.
    pub fn evolve_partitioning(&self, fields: Vec<PartitionField>) -> Vec<PartitionField> {
        let mut next_id = self
            .last_partition_id()
            .get()
            .max(crate::FIRST_PARTITION_FIELD_ID - 1);
        fields
            .into_iter()
            .map(|mut field| {
                let earlier = self
                    .specs()
                    .iter()
                    .flat_map(|s| s.fields())
                    .find(|e| e.source_id == field.source_id && e.transform == field.transform);
                match earlier {
                    Some(e) => {
                        field.field_id = e.field_id;
                        field.name = e.name.clone();
                    }
                    None => {
                        next_id += 1;
                        field.field_id = FieldId(next_id);
                    }
                }
                field
            })
            .collect()
    }

    /// The default spec's partition field derived from column `id`, if any.
    fn partitioned_by(&self, id: FieldId) -> Option<&PartitionField> {
        self.default_spec()
            .fields()
            .iter()
            .find(|f| f.source_id == id)
    }

    fn any_spec_uses(&self, id: FieldId) -> bool {
        self.specs()
            .iter()
            .any(|s| s.fields().iter().any(|f| f.source_id == id))
    }
}

fn check_default(name: &str, ty: PrimitiveType, default: Option<&Value>) -> Result<()> {
    match default {
        Some(value) if !value.fits(ty) => {
            Err(refused(format!("the default of '{name}' is not a {ty}")))
        }
        _ => Ok(()),
    }
}

fn describe(field: &PartitionField, column: &str) -> String {
    match field.transform {
        Transform::Identity => column.to_string(),
        Transform::Bucket(n) => format!("bucket({n}, {column})"),
        Transform::Truncate(w) => format!("truncate({w}, {column})"),
        other => format!("{other}({column})"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ids::SpecId;
    use crate::metadata::MetadataUpdate;
    use crate::snapshot::{Changes, Operation, Summary};
    use crate::{NewSnapshot, PartitionSpec};

    fn table() -> TableMetadata {
        TableMetadata::create(
            "uuid",
            vec![
                Field::required(1, "id", PrimitiveType::Int),
                Field::optional(2, "ts", PrimitiveType::Timestamp),
                Field::optional(3, "v", PrimitiveType::Float),
            ],
            vec![PartitionField {
                source_id: FieldId(2),
                field_id: FieldId(1000),
                name: "ts_month".into(),
                transform: Transform::Month,
            }],
            BTreeMap::new(),
            0,
        )
        .unwrap()
    }

    fn commit(t: &TableMetadata, update: MetadataUpdate) -> TableMetadata {
        t.commit(
            &[update],
            NewSnapshot {
                timestamp_ms: 1,
                operation: Operation::SchemaChange,
                manifest_list: None,
                summary: Summary::default(),
                changes: Changes::default(),
                commit_id: None,
            },
        )
        .unwrap()
    }

    fn add(name: &str) -> SchemaChange {
        SchemaChange::AddColumn {
            name: name.into(),
            field_type: PrimitiveType::Long,
            required: false,
            default: None,
            doc: None,
        }
    }

    fn drop(name: &str) -> SchemaChange {
        SchemaChange::DropColumn { name: name.into() }
    }

    #[test]
    fn a_dropped_column_id_is_never_reused() {
        let t = table();
        let fields = t.evolve_schema(&[add("x")]).unwrap();
        assert_eq!(fields[3].id, FieldId(4));
        let t = commit(&t, MetadataUpdate::SetSchema(fields));
        let t = commit(
            &t,
            MetadataUpdate::SetSchema(t.evolve_schema(&[drop("x")]).unwrap()),
        );
        let fields = t.evolve_schema(&[add("x")]).unwrap();
        assert_eq!(fields[3].id, FieldId(5), "{fields:?}");
    }

    #[test]
    fn renames_keep_the_id_and_refuse_taken_names() {
        let t = table();
        let fields = t
            .evolve_schema(&[SchemaChange::RenameColumn {
                from: "V".into(),
                to: "value".into(),
            }])
            .unwrap();
        assert_eq!(
            (fields[2].id, fields[2].name.as_str()),
            (FieldId(3), "value")
        );
        let err = t
            .evolve_schema(&[SchemaChange::RenameColumn {
                from: "v".into(),
                to: "ID".into(),
            }])
            .unwrap_err();
        assert_eq!(err.to_string(), "column 'id' already exists");
        assert_eq!(
            t.evolve_schema(&[add("Ts")]).unwrap_err().to_string(),
            "column 'ts' already exists"
        );
    }

    #[test]
    fn only_widening_type_changes_are_allowed() {
        let t = table();
        let set = |name: &str, field_type| SchemaChange::SetType {
            name: name.into(),
            field_type,
        };
        let fields = t
            .evolve_schema(&[
                set("id", PrimitiveType::Long),
                set("v", PrimitiveType::Double),
            ])
            .unwrap();
        assert_eq!(fields[0].field_type, PrimitiveType::Long);
        assert_eq!(fields[2].field_type, PrimitiveType::Double);
        let err = t
            .evolve_schema(&[set("v", PrimitiveType::Int)])
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot change column 'v' from float to int")
        );
        let err = t
            .evolve_schema(&[set("ts", PrimitiveType::TimestampTz)])
            .unwrap_err();
        assert!(err.to_string().contains("only widening"), "{err}");
    }

    #[test]
    fn partition_source_columns_cannot_be_dropped() {
        let err = table().evolve_schema(&[drop("ts")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot drop 'ts': the table is partitioned by month(ts); change the partitioning \
             first (ALTER TABLE ... SET PARTITIONED BY)"
        );
    }

    #[test]
    fn a_repartitioned_field_keeps_its_id_and_new_fields_get_new_ids() {
        let t = table();
        let day = PartitionField {
            source_id: FieldId(2),
            field_id: FieldId(1000),
            name: "ts_day".into(),
            transform: Transform::Day,
        };
        let month = PartitionField {
            name: "whatever".into(),
            transform: Transform::Month,
            ..day.clone()
        };
        let evolved = t.evolve_partitioning(vec![day, month]);
        assert_eq!(evolved[0].field_id, FieldId(1001));
        assert_eq!(
            (evolved[1].field_id, evolved[1].name.as_str()),
            (FieldId(1000), "ts_month")
        );
        let t = commit(&t, MetadataUpdate::SetPartitionSpec(evolved));
        assert_eq!(t.default_spec().id(), SpecId(1));
        assert_eq!(t.specs().len(), 2);
        PartitionSpec::new(
            SpecId(9),
            t.default_spec().fields().to_vec(),
            t.current_schema(),
        )
        .unwrap();
    }
}
