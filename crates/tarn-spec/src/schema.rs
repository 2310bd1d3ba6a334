//! Schemas: ordered lists of fields, each with a permanent field id.

use std::collections::HashSet;

use crate::error::{Result, SpecError};
use crate::ids::{FieldId, SchemaId};
use crate::types::PrimitiveType;
use crate::value::Value;

/// One column of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub id: FieldId,
    pub name: String,
    pub field_type: PrimitiveType,
    /// `true` for NOT NULL columns.
    pub required: bool,
    pub doc: Option<String>,
    /// The column's value in rows written before it was added (read from files that lack
    /// it); `None` means NULL. Set when the column is added, never changed.
    pub initial_default: Option<Value>,
    /// The value written when an INSERT does not give one; `None` means NULL.
    pub write_default: Option<Value>,
}

impl Field {
    /// A nullable column.
    pub fn optional(id: i32, name: impl Into<String>, field_type: PrimitiveType) -> Self {
        Field {
            id: FieldId(id),
            name: name.into(),
            field_type,
            required: false,
            doc: None,
            initial_default: None,
            write_default: None,
        }
    }

    /// A NOT NULL column.
    pub fn required(id: i32, name: impl Into<String>, field_type: PrimitiveType) -> Self {
        Field {
            required: true,
            ..Field::optional(id, name, field_type)
        }
    }
}

/// A table schema. Construct with [`Schema::new`], which validates it.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    id: SchemaId,
    fields: Vec<Field>,
}

impl Schema {
    /// A schema with the given fields. Field ids must be positive and unique; names must be
    /// non-empty and unique ignoring ASCII case (SQL folds unquoted names).
    pub fn new(id: SchemaId, fields: Vec<Field>) -> Result<Self> {
        let mut ids = HashSet::new();
        let mut names = HashSet::new();
        for field in &fields {
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
                    && !value.fits(field.field_type)
                {
                    return Err(SpecError::invalid(format!(
                        "schema {id}: the {what} default of '{}' is not a {}",
                        field.name, field.field_type
                    )));
                }
            }
            if !names.insert(field.name.to_ascii_lowercase()) {
                return Err(SpecError::invalid(format!(
                    "schema {id}: column name '{}' is used more than once",
                    field.name
                )));
            }
        }
        Ok(Schema { id, fields })
    }

    pub fn id(&self) -> SchemaId {
        self.id
    }

    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    pub fn field_by_id(&self, id: FieldId) -> Option<&Field> {
        self.fields.iter().find(|f| f.id == id)
    }

    /// Looks a column up by exact name, then ignoring ASCII case.
    pub fn field_by_name(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name).or_else(|| {
            self.fields
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(name))
        })
    }

    /// The largest field id in this schema, 0 for an empty one.
    pub fn highest_field_id(&self) -> FieldId {
        FieldId(self.fields.iter().map(|f| f.id.get()).max().unwrap_or(0))
    }

    /// The same fields under another schema id.
    pub fn with_id(mut self, id: SchemaId) -> Self {
        self.id = id;
        self
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
