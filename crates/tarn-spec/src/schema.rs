//! Schemas: ordered lists of fields, each with a permanent field id.

use std::collections::HashSet;

use crate::error::{Result, SpecError};
use crate::ids::{FieldId, SchemaId};
use crate::types::{PrimitiveType, Type};
use crate::value::Value;

/// One column of a table, or one part of a nested column (a struct's field, a list's
/// element, a map's key or value).
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub id: FieldId,
    pub name: String,
    pub field_type: Type,
    /// `true` for NOT NULL columns.
    pub required: bool,
    pub doc: Option<String>,
    /// The column's value in rows written before it was added (read from files that lack
    /// it); `None` means NULL. Set when the column is added, never changed. Primitive
    /// fields only.
    pub initial_default: Option<Value>,
    /// The value written when an INSERT does not give one; `None` means NULL. Primitive
    /// fields only.
    pub write_default: Option<Value>,
}

impl Field {
    /// A nullable column.
    pub fn optional(id: i32, name: impl Into<String>, field_type: impl Into<Type>) -> Self {
        Field {
            id: FieldId(id),
            name: name.into(),
            field_type: field_type.into(),
            required: false,
            doc: None,
            initial_default: None,
            write_default: None,
        }
    }

    /// A NOT NULL column.
    pub fn required(id: i32, name: impl Into<String>, field_type: impl Into<Type>) -> Self {
        Field {
            required: true,
            ..Field::optional(id, name, field_type)
        }
    }

    /// The primitive type of this field, if it has one.
    pub fn primitive(&self) -> Option<PrimitiveType> {
        self.field_type.as_primitive()
    }

    /// This field and every field nested in it, parents first.
    pub fn walk(&self) -> Vec<&Field> {
        let mut out = vec![self];
        for child in self.field_type.children() {
            out.extend(child.walk());
        }
        out
    }
}

/// A primitive field that is a top-level column or reached from one through structs only,
/// as a path of child positions from the top-level column. Such a field has one value (or
/// NULL) per row, so statistics and partition transforms apply to it.
#[derive(Debug, Clone, Copy)]
pub struct Leaf<'a> {
    pub path: &'a [usize],
    pub field: &'a Field,
}

/// A table schema. Construct with [`Schema::new`], which validates it.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    id: SchemaId,
    fields: Vec<Field>,
    /// The positions of each primitive field reached through structs only, with its id.
    leaves: Vec<(Vec<usize>, FieldId)>,
}

impl Schema {
    /// A schema with the given fields. Field ids must be positive and unique at every
    /// depth; names must be non-empty and unique within their struct ignoring ASCII case
    /// (SQL folds unquoted names).
    pub fn new(id: SchemaId, fields: Vec<Field>) -> Result<Self> {
        let mut ids = HashSet::new();
        check_fields(id, &fields, &mut ids)?;
        let mut leaves = Vec::new();
        collect_leaves(&fields, &mut Vec::new(), &mut leaves);
        Ok(Schema { id, fields, leaves })
    }

    pub fn id(&self) -> SchemaId {
        self.id
    }

    /// The top-level columns.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// The field with this id, at any depth.
    pub fn field_by_id(&self, id: FieldId) -> Option<&Field> {
        fn find(field: &Field, id: FieldId) -> Option<&Field> {
            if field.id == id {
                return Some(field);
            }
            field
                .field_type
                .children()
                .into_iter()
                .find_map(|part| find(part, id))
        }
        self.fields.iter().find_map(|f| find(f, id))
    }

    /// Every field at every depth, each top-level column followed by its parts.
    pub fn all_fields(&self) -> Vec<&Field> {
        self.fields.iter().flat_map(Field::walk).collect()
    }

    /// The primitive fields with one value per row (see [`Leaf`]), in column order.
    pub fn leaves(&self) -> Vec<Leaf<'_>> {
        self.leaves
            .iter()
            .map(|(path, _)| Leaf {
                path,
                field: self.field_at(path),
            })
            .collect()
    }

    /// The leaf with this id, if the field is one.
    pub fn leaf(&self, id: FieldId) -> Option<Leaf<'_>> {
        self.leaves
            .iter()
            .find(|(_, leaf)| *leaf == id)
            .map(|(path, _)| Leaf {
                path,
                field: self.field_at(path),
            })
    }

    /// The dotted name of a field reached through structs (`ctx.ts`), for messages and SQL.
    pub fn path_name(&self, id: FieldId) -> Option<String> {
        fn find(fields: &[Field], id: FieldId, prefix: &str) -> Option<String> {
            fields.iter().find_map(|f| {
                let name = if prefix.is_empty() {
                    f.name.clone()
                } else {
                    format!("{prefix}.{}", f.name)
                };
                if f.id == id {
                    return Some(name);
                }
                match &f.field_type {
                    Type::Struct(children) => find(children, id, &name),
                    _ => None,
                }
            })
        }
        find(&self.fields, id, "")
    }

    /// The field at a dotted path through structs (`ctx.ts`); each step is matched by
    /// exact name, then ignoring ASCII case. A top-level column whose own name has a dot
    /// is found first.
    pub fn field_by_path(&self, path: &str) -> Option<&Field> {
        if let Some(f) = self.field_by_name(path) {
            return Some(f);
        }
        let mut fields = self.fields.as_slice();
        let mut found = None;
        for step in path.split('.') {
            let f = by_name(fields, step)?;
            fields = match &f.field_type {
                Type::Struct(children) => children,
                _ => &[],
            };
            found = Some(f);
        }
        found
    }

    fn field_at(&self, path: &[usize]) -> &Field {
        let mut field = &self.fields[path[0]];
        for &i in &path[1..] {
            field = field.field_type.children()[i];
        }
        field
    }

    /// Looks a column up by exact name, then ignoring ASCII case.
    pub fn field_by_name(&self, name: &str) -> Option<&Field> {
        by_name(&self.fields, name)
    }

    /// The largest field id in this schema at any depth, 0 for an empty one.
    pub fn highest_field_id(&self) -> FieldId {
        FieldId(
            self.all_fields()
                .iter()
                .map(|f| f.id.get())
                .max()
                .unwrap_or(0),
        )
    }

    /// The same fields under another schema id.
    pub fn with_id(mut self, id: SchemaId) -> Self {
        self.id = id;
        self
    }
}

/// Numbers the fields of a new table: the columns 1 to n in order, then the parts of
/// nested columns from n + 1, each column's parts together and parents first. Returns the
/// highest id given.
pub fn assign_field_ids(fields: &mut [Field]) -> i32 {
    fn parts(field: &mut Field, next: &mut i32) {
        for part in field.field_type.children_mut() {
            *next += 1;
            part.id = FieldId(*next);
            parts(part, next);
        }
    }
    let mut next = 0;
    for field in fields.iter_mut() {
        next += 1;
        field.id = FieldId(next);
    }
    for field in fields.iter_mut() {
        parts(field, &mut next);
    }
    next
}

/// Looks a field up among `fields` by exact name, then ignoring ASCII case.
pub(crate) fn by_name<'a>(fields: &'a [Field], name: &str) -> Option<&'a Field> {
    fields
        .iter()
        .find(|f| f.name == name)
        .or_else(|| fields.iter().find(|f| f.name.eq_ignore_ascii_case(name)))
}

fn collect_leaves(fields: &[Field], path: &mut Vec<usize>, out: &mut Vec<(Vec<usize>, FieldId)>) {
    for (i, f) in fields.iter().enumerate() {
        path.push(i);
        match &f.field_type {
            Type::Primitive(_) => out.push((path.clone(), f.id)),
            Type::Struct(children) => collect_leaves(children, path, out),
            _ => {}
        }
        path.pop();
    }
}

/// Validates the fields of one struct (the top level included) and everything in them.
fn check_fields(id: SchemaId, fields: &[Field], ids: &mut HashSet<FieldId>) -> Result<()> {
    let mut names = HashSet::new();
    for field in fields {
        check_field(id, field, ids)?;
        if !names.insert(field.name.to_ascii_lowercase()) {
            return Err(SpecError::invalid(format!(
                "schema {id}: column name '{}' is used more than once",
                field.name
            )));
        }
    }
    Ok(())
}

fn check_field(id: SchemaId, field: &Field, ids: &mut HashSet<FieldId>) -> Result<()> {
    if field.id.get() <= 0 {
        return Err(SpecError::invalid(format!(
            "schema {id}: field '{}' has id {}; field ids must be positive",
            field.name, field.id
        )));
    }
    if !ids.insert(field.id) {
        return Err(SpecError::invalid(format!(
            "schema {id}: field id {} is used more than once",
            field.id
        )));
    }
    if field.name.is_empty() {
        return Err(SpecError::invalid(format!(
            "schema {id}: field {} has an empty name",
            field.id
        )));
    }
    for (what, default) in [
        ("initial", &field.initial_default),
        ("write", &field.write_default),
    ] {
        if let Some(value) = default
            && !field.primitive().is_some_and(|p| value.fits(p))
        {
            return Err(SpecError::invalid(format!(
                "schema {id}: the {what} default of '{}' is not a {}",
                field.name, field.field_type
            )));
        }
    }
    match &field.field_type {
        Type::Primitive(_) => Ok(()),
        Type::Struct(children) => {
            if children.is_empty() {
                return Err(SpecError::invalid(format!(
                    "schema {id}: struct '{}' has no fields",
                    field.name
                )));
            }
            check_fields(id, children, ids)
        }
        Type::FixedList { size, .. } if *size <= 0 => Err(SpecError::invalid(format!(
            "schema {id}: fixed-size list '{}' has size {size}; it must be positive",
            field.name
        ))),
        Type::List(element) | Type::FixedList { element, .. } => check_field(id, element, ids),
        Type::Map { key, value } => {
            if !key.required || !key.field_type.is_primitive() {
                return Err(SpecError::invalid(format!(
                    "schema {id}: the keys of map '{}' must be a required primitive type",
                    field.name
                )));
            }
            check_field(id, key, ids)?;
            check_field(id, value, ids)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_names_are_refused_case_insensitively() {
        let err = Schema::new(
            SchemaId(0),
            vec![
                Field::optional(1, "id", PrimitiveType::Long),
                Field::optional(2, "ID", PrimitiveType::Long),
            ],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid table metadata: schema 0: column name 'ID' is used more than once"
        );
    }

    #[test]
    fn lookups() {
        let s = Schema::new(
            SchemaId(0),
            vec![
                Field::optional(1, "Id", PrimitiveType::Long),
                Field::required(7, "x", PrimitiveType::Int),
            ],
        )
        .unwrap();
        assert_eq!(s.field_by_name("id").unwrap().id, FieldId(1));
        assert_eq!(s.highest_field_id(), FieldId(7));
        assert!(s.field_by_id(FieldId(7)).unwrap().required);
    }
}
