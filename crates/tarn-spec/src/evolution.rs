//! Schema and partition evolution: which changes a table may take, checked against its
//! metadata before anything is written.
//!
//! Columns are identified by field id, never by name, so a change only ever edits the
//! current schema: a new column gets an id above every id the table has used (a dropped
//! column's id is never reused), a rename keeps the id, and a widened column keeps its id
//! while old files keep their physical type.

use std::collections::{BTreeMap, HashMap};

use crate::error::{Result, SpecError};
use crate::ids::FieldId;
use crate::metadata::{MetadataUpdate, TableMetadata};
use crate::partition::PartitionField;
use crate::schema::Field;
use crate::transform::Transform;
use crate::types::{PrimitiveType, Type};
use crate::value::Value;

/// One change to a table's columns.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaChange {
    /// A new column, after the existing ones. Rows already stored read `default` (NULL
    /// when `None`); a NOT NULL column needs a default.
    AddColumn {
        name: String,
        field_type: Type,
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
    /// A column's comment (its `doc`), or none.
    SetComment {
        name: String,
        comment: Option<String>,
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
    /// is refused. A name may be a dotted path to a field of a struct (`ctx.ts`): such a
    /// field is added, dropped, renamed or widened inside its struct, by field id like a
    /// column. A new field's nested parts get new ids too.
    pub fn evolve_schema(&self, changes: &[SchemaChange]) -> Result<Vec<Field>> {
        let mut fields = self.current_schema().fields().to_vec();
        let mut next_id = self.last_column_id().get();
        for change in changes {
            match change {
                SchemaChange::AddColumn {
                    name,
                    field_type,
                    required,
                    default,
                    doc,
                } => {
                    let (members, name) = members_for(&mut fields, name)?;
                    if name.is_empty() {
                        return Err(refused("a column name cannot be empty"));
                    }
                    if field_type
                        .children()
                        .iter()
                        .any(|part| part.walk().iter().any(|f| f.name.is_empty()))
                    {
                        return Err(refused(format!(
                            "a field of '{name}' has an empty name; give each struct field a name"
                        )));
                    }
                    name_is_free(members, name, None)?;
                    check_default(name, field_type, default.as_ref())?;
                    if *required && default.is_none() {
                        return Err(refused(format!(
                            "cannot add '{name}' as NOT NULL without a default: rows already \
                             stored have no value for it; give it a DEFAULT, or add it as \
                             nullable, fill it with UPDATE, then SET NOT NULL"
                        )));
                    }
                    next_id += 1;
                    let mut field = Field {
                        required: *required,
                        doc: doc.clone(),
                        initial_default: default.clone(),
                        write_default: default.clone(),
                        ..Field::optional(next_id, name, field_type.clone())
                    };
                    for part in field.field_type.children_mut() {
                        assign_ids(part, &mut next_id);
                    }
                    members.push(field);
                }
                SchemaChange::SetDefault { name, default } => {
                    let field = field_mut(&mut fields, name)?;
                    check_default(&field.name, &field.field_type, default.as_ref())?;
                    field.write_default = default.clone();
                }
                SchemaChange::DropColumn { name } => {
                    let nested = position(&fields, name).is_none() && name.contains('.');
                    let (members, i) = locate(&mut fields, name)?;
                    if members.len() == 1 {
                        let what = if nested {
                            "the only field of its struct"
                        } else {
                            "the only column of the table"
                        };
                        return Err(refused(format!(
                            "cannot drop '{}', {what}",
                            members[i].name
                        )));
                    }
                    if let Some((pf, source)) = members[i]
                        .walk()
                        .into_iter()
                        .find_map(|f| self.partitioned_by(f.id).map(|pf| (pf, f)))
                    {
                        return Err(refused(format!(
                            "cannot drop '{}': the table is partitioned by {}; change the \
                             partitioning first (ALTER TABLE ... SET PARTITIONED BY)",
                            members[i].name,
                            describe(pf, &source.name)
                        )));
                    }
                    members.remove(i);
                }
                SchemaChange::RenameColumn { from, to } => {
                    let (members, i) = locate(&mut fields, from)?;
                    // `RENAME COLUMN s.a TO b` and `... TO s.b` both rename the field of s.
                    let to = to.rsplit_once('.').map(|(_, last)| last).unwrap_or(to);
                    if to.is_empty() {
                        return Err(refused("a column name cannot be empty"));
                    }
                    name_is_free(members, to, Some(i))?;
                    members[i].name = to.to_string();
                }
                SchemaChange::SetType { name, field_type } => {
                    let field = field_mut(&mut fields, name)?;
                    let Some(from) = field.primitive() else {
                        return Err(refused(format!(
                            "cannot change the type of '{}', a {}: change the fields of a \
                             nested column one by one",
                            field.name, field.field_type
                        )));
                    };
                    if from == *field_type {
                        continue;
                    }
                    if !from.can_widen_to(*field_type) {
                        return Err(refused(format!(
                            "cannot change column '{}' from {} to {}: only widening is \
                             allowed (int to long, float to double, decimal(P,S) to \
                             decimal(P2,S) with P2 > P)",
                            field.name, from, field_type
                        )));
                    }
                    if self.any_spec_uses(field.id) {
                        return Err(refused(format!(
                            "cannot change the type of '{}': partition values of the table \
                             are derived from it",
                            field.name
                        )));
                    }
                    let widen =
                        |v: &Option<Value>| v.as_ref().and_then(|v| v.widen(from, *field_type));
                    field.initial_default = widen(&field.initial_default);
                    field.write_default = widen(&field.write_default);
                    field.field_type = Type::Primitive(*field_type);
                }
                SchemaChange::SetRequired { name, required } => {
                    field_mut(&mut fields, name)?.required = *required;
                }
                SchemaChange::SetComment { name, comment } => {
                    field_mut(&mut fields, name)?.doc = comment.clone();
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

    /// The updates that give this table a new definition (CREATE OR REPLACE TABLE), for a
    /// commit that also replaces every data file. `fields` and `partition_fields` are
    /// numbered as for a new table ([`crate::assign_field_ids`]). A column with an old
    /// column's name whose values it can hold (the same type and nested field names, NOT
    /// NULL only if the old one was) keeps that column's field ids, so the replaced rows
    /// still read under it (in the change feed); other columns get ids above every id the
    /// table used. The schema and the partition
    /// spec are set only when they differ from the current ones. `properties` replace the
    /// table's, except the ones `keep` names, which stay as they are.
    pub fn replacement(
        &self,
        fields: Vec<Field>,
        partition_fields: Vec<PartitionField>,
        properties: &BTreeMap<String, String>,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<MetadataUpdate>> {
        let current = self.current_schema();
        let mut next_id = self.last_column_id().get();
        // Each field id of the definition, as the replacement numbers it.
        let mut ids: HashMap<FieldId, FieldId> = HashMap::new();
        let mut renumbered = Vec::with_capacity(fields.len());
        for mut field in fields {
            let old = current
                .fields()
                .iter()
                .find(|old| old.name == field.name && holds_same_values(old, &field));
            match old {
                Some(old) => copy_ids(old, &mut field, &mut ids),
                None => fresh_ids(&mut field, &mut next_id, &mut ids),
            }
            renumbered.push(field);
        }
        let partition_fields = partition_fields
            .into_iter()
            .map(|field| match ids.get(&field.source_id) {
                Some(&source_id) => Ok(PartitionField { source_id, ..field }),
                None => Err(refused(format!(
                    "partition field '{}' is derived from field id {}, which the new columns do not have",
                    field.name, field.source_id
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        let partition_fields = self.evolve_partitioning(partition_fields);

        let mut updates = Vec::new();
        if renumbered != current.fields() {
            updates.push(MetadataUpdate::SetSchema(renumbered));
        }
        if partition_fields != self.default_spec().fields() {
            updates.push(MetadataUpdate::SetPartitionSpec(partition_fields));
        }
        updates.extend(self.replace_properties(properties, keep));
        Ok(updates)
    }

    /// The updates that make the table's properties `properties`, but for those `keep`
    /// names, which stay as they are.
    pub fn replace_properties(
        &self,
        properties: &BTreeMap<String, String>,
        keep: impl Fn(&str) -> bool,
    ) -> Vec<MetadataUpdate> {
        let old = self.properties();
        let mut updates = Vec::new();
        let removed: Vec<String> = (old.keys())
            .filter(|key| !keep(key) && !properties.contains_key(*key))
            .cloned()
            .collect();
        if !removed.is_empty() {
            updates.push(MetadataUpdate::RemoveProperties(removed));
        }
        let set: BTreeMap<String, String> = (properties.iter())
            .filter(|(key, value)| !keep(key) && old.get(*key) != Some(*value))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        if !set.is_empty() {
            updates.push(MetadataUpdate::SetProperties(set));
        }
        updates
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

/// Whether the values of field `old` are values of field `new`: the same type and nested
/// field names at every depth (field ids, comments and defaults aside), and NULLs only
/// where `new` takes them.
fn holds_same_values(old: &Field, new: &Field) -> bool {
    let same_type = match (&old.field_type, &new.field_type) {
        (Type::Primitive(x), Type::Primitive(y)) => x == y,
        (Type::FixedList { size: x, .. }, Type::FixedList { size: y, .. }) => x == y,
        (x, y) => std::mem::discriminant(x) == std::mem::discriminant(y),
    };
    let (olds, news) = (old.field_type.children(), new.field_type.children());
    same_type
        && (old.required || !new.required)
        && olds.len() == news.len()
        && (olds.iter().zip(news)).all(|(o, n)| o.name == n.name && holds_same_values(o, n))
}

/// Gives `field` (holding the same values as `old`) the ids of `old` at every depth, noting each.
fn copy_ids(old: &Field, field: &mut Field, ids: &mut HashMap<FieldId, FieldId>) {
    ids.insert(field.id, old.id);
    field.id = old.id;
    let olds = old.field_type.children();
    for (old, part) in olds.into_iter().zip(field.field_type.children_mut()) {
        copy_ids(old, part, ids);
    }
}

/// Gives `field` and its nested fields new ids after `next_id`, noting each.
fn fresh_ids(field: &mut Field, next_id: &mut i32, ids: &mut HashMap<FieldId, FieldId>) {
    *next_id += 1;
    ids.insert(field.id, FieldId(*next_id));
    field.id = FieldId(*next_id);
    for part in field.field_type.children_mut() {
        fresh_ids(part, next_id, ids);
    }
}

fn check_default(name: &str, ty: &Type, default: Option<&Value>) -> Result<()> {
    match default {
        Some(value) if !ty.as_primitive().is_some_and(|p| value.fits(p)) => Err(refused(format!(
            "the default of '{name}' is not a {ty}; only primitive columns take defaults"
        ))),
        _ => Ok(()),
    }
}

/// Gives `field` and its parts ids above `next_id`, parents first.
fn assign_ids(field: &mut Field, next_id: &mut i32) {
    *next_id += 1;
    field.id = FieldId(*next_id);
    for part in field.field_type.children_mut() {
        assign_ids(part, next_id);
    }
}

fn position(fields: &[Field], name: &str) -> Option<usize> {
    fields.iter().position(|f| f.name == name).or_else(|| {
        fields
            .iter()
            .position(|f| f.name.eq_ignore_ascii_case(name))
    })
}

fn name_is_free(fields: &[Field], name: &str, except: Option<usize>) -> Result<()> {
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
}

/// The fields of the struct that `path` names a member of (the top level for a plain
/// name), and the member's own name. A top-level column whose name has a dot is taken
/// as that column.
fn members_for<'a, 'p>(
    fields: &'a mut Vec<Field>,
    path: &'p str,
) -> Result<(&'a mut Vec<Field>, &'p str)> {
    if position(fields, path).is_some() {
        return Ok((fields, path));
    }
    let Some((parents, name)) = path.rsplit_once('.') else {
        return Ok((fields, path));
    };
    let mut members = fields;
    for step in parents.split('.') {
        let i = position(members, step)
            .ok_or_else(|| refused(format!("column '{parents}' does not exist")))?;
        members = match &mut members[i].field_type {
            Type::Struct(children) => children,
            other => {
                return Err(refused(format!(
                    "'{parents}' is a {other}, not a struct: only struct fields are named by                      a dotted path"
                )));
            }
        };
    }
    Ok((members, name))
}

/// The struct fields `path` is a member of, and its position there.
fn locate<'a>(fields: &'a mut Vec<Field>, path: &str) -> Result<(&'a mut Vec<Field>, usize)> {
    let (members, name) = members_for(fields, path)?;
    let i = position(members, name)
        .ok_or_else(|| refused(format!("column '{path}' does not exist")))?;
    Ok((members, i))
}

fn field_mut<'a>(fields: &'a mut Vec<Field>, path: &str) -> Result<&'a mut Field> {
    let (members, i) = locate(fields, path)?;
    Ok(&mut members[i])
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
            field_type: PrimitiveType::Long.into(),
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

    /// The field ids, at every depth, of `t` replaced by `fields` and `spec`.
    fn replaced_ids(t: &TableMetadata, fields: Vec<Field>, spec: Vec<PartitionField>) -> Vec<i32> {
        let updates = t.replacement(fields, spec, &BTreeMap::new(), |_| false);
        let next = t.with_updates(&updates.unwrap()).unwrap();
        let schema = next.current_schema();
        schema.all_fields().iter().map(|f| f.id.get()).collect()
    }

    #[test]
    fn a_replacement_keeps_the_ids_of_columns_it_keeps_and_numbers_the_others_anew() {
        let t = table();
        // id INT NOT NULL kept, ts now a DATE (another shape), v dropped, w new.
        let fields = vec![
            Field::required(1, "id", PrimitiveType::Int),
            Field::optional(2, "ts", PrimitiveType::Date),
            Field::optional(3, "w", PrimitiveType::Long),
        ];
        let by_ts_day = PartitionField {
            source_id: FieldId(2),
            field_id: FieldId(1000),
            name: "ts_day".into(),
            transform: Transform::Day,
        };
        let properties = BTreeMap::from([("owner".to_string(), "me".to_string())]);
        let updates = t
            .replacement(fields, vec![by_ts_day], &properties, |_| false)
            .unwrap();
        let next = t.with_updates(&updates).unwrap();
        let ids: Vec<(&str, i32)> = (next.current_schema().fields().iter())
            .map(|f| (f.name.as_str(), f.id.get()))
            .collect();
        assert_eq!(ids, [("id", 1), ("ts", 4), ("w", 5)]);
        assert_eq!(next.last_column_id(), FieldId(5));
        let spec = next.default_spec();
        assert_eq!(spec.id(), SpecId(1));
        assert_eq!(
            (spec.fields()[0].source_id, spec.fields()[0].field_id),
            (FieldId(4), FieldId(1001))
        );
        assert_eq!(next.properties(), &properties);
    }

    #[test]
    fn the_same_definition_replaces_nothing_but_the_properties_it_does_not_keep() {
        let t = commit(
            &table(),
            MetadataUpdate::SetProperties(BTreeMap::from([
                ("tarn.app-seq.job".to_string(), "7".to_string()),
                ("owner".to_string(), "me".to_string()),
            ])),
        );
        let fields = t.current_schema().fields().to_vec();
        let spec = t.default_spec().fields().to_vec();
        let updates = t
            .replacement(fields, spec, &BTreeMap::new(), |key| {
                key.starts_with("tarn.")
            })
            .unwrap();
        assert_eq!(
            updates,
            [MetadataUpdate::RemoveProperties(vec!["owner".to_string()])]
        );
    }

    #[test]
    fn a_nested_column_is_kept_only_with_the_same_field_names() {
        let t = commit(
            &table(),
            MetadataUpdate::SetSchema(vec![
                Field::required(1, "id", PrimitiveType::Int),
                Field::optional(2, "ts", PrimitiveType::Timestamp),
                Field::optional(
                    4,
                    "s",
                    Type::Struct(vec![Field::optional(5, "a", PrimitiveType::Int)]),
                ),
            ]),
        );
        let nested = |name: &str| {
            vec![
                Field::required(1, "id", PrimitiveType::Int),
                Field::optional(2, "ts", PrimitiveType::Timestamp),
                Field::optional(
                    3,
                    "s",
                    Type::Struct(vec![Field::optional(4, name, PrimitiveType::Int)]),
                ),
            ]
        };
        let ids = |fields: Vec<Field>| replaced_ids(&t, fields, vec![]);
        assert_eq!(ids(nested("a")), [1, 2, 4, 5]);
        assert_eq!(ids(nested("b")), [1, 2, 6, 7]);
    }

    #[test]
    fn a_column_keeps_its_id_when_it_takes_nulls_it_did_not_but_not_the_other_way() {
        let t = table();
        let ids = |id_required: bool, v_required: bool| {
            let fields = vec![
                Field {
                    required: id_required,
                    ..Field::optional(1, "id", PrimitiveType::Int)
                },
                Field::optional(2, "ts", PrimitiveType::Timestamp),
                Field {
                    required: v_required,
                    ..Field::optional(3, "v", PrimitiveType::Float)
                },
            ];
            replaced_ids(&t, fields, t.default_spec().fields().to_vec())
        };
        assert_eq!(ids(true, false), [1, 2, 3]);
        assert_eq!(ids(false, false), [1, 2, 3]);
        assert_eq!(ids(false, true), [1, 2, 4]);
    }

    #[test]
    fn an_earlier_schema_and_spec_become_current_again_and_unknown_ones_are_refused() {
        let t = table();
        let mut fields = t.current_schema().fields().to_vec();
        fields.push(Field::optional(4, "w", PrimitiveType::Long));
        let t = commit(&t, MetadataUpdate::SetSchema(fields));
        let t = commit(&t, MetadataUpdate::SetPartitionSpec(vec![]));
        let back = t
            .with_updates(&[
                MetadataUpdate::SetCurrentSchema(crate::ids::SchemaId(0)),
                MetadataUpdate::SetDefaultSpec(SpecId(0)),
            ])
            .unwrap();
        assert_eq!(back.current_schema().fields().len(), 3);
        assert_eq!(back.default_spec().fields().len(), 1);
        assert_eq!(back.schemas().len(), 2, "nothing is added");
        assert!(
            t.with_updates(&[MetadataUpdate::SetCurrentSchema(crate::ids::SchemaId(7))])
                .is_err()
        );
        assert!(
            t.with_updates(&[MetadataUpdate::SetDefaultSpec(SpecId(7))])
                .is_err()
        );
    }
}
