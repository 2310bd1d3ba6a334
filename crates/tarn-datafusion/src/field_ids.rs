//! Binding a table's columns to each data file's columns by field id.
//!
//! DataFusion's default adapter matches a file's columns by name, which reads the wrong data
//! after a rename, or after a column is dropped and another of the same name added. tarn
//! files carry field ids in their Parquet schema, so the adapter here rewrites every column
//! reference of a scan's projection and predicate to the file column with the same id:
//! under the file's own name, cast when the column was widened since, and the column's
//! initial default (NULL if it has none) when the file predates the column. Statistics pruning inside the file (row groups,
//! pages) then reads the statistics of the right column, since it looks them up by the
//! rewritten name.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, ListArray, MapArray, RecordBatch, StructArray,
};
use datafusion::arrow::compute::{can_cast_types, cast};
use datafusion::arrow::datatypes::{DataType, FieldRef, SchemaRef};
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::expressions::{CastExpr, Column, Literal};
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use datafusion::physical_expr_adapter::{PhysicalExprAdapter, PhysicalExprAdapterFactory};
use tarn_core::arrow_convert::field_id_of;
use tarn_spec::{Field, FieldId, Schema, Type};

use crate::convert::to_scalar;

/// Creates a [`FieldIdAdapter`] per file for scans of a table whose schema is `schema`.
#[derive(Debug)]
pub struct FieldIdAdapterFactory {
    /// Each column of the logical file schema, by name.
    columns: Arc<HashMap<String, Field>>,
}

impl FieldIdAdapterFactory {
    pub fn new(schema: &Schema) -> Self {
        FieldIdAdapterFactory {
            columns: Arc::new(
                schema
                    .fields()
                    .iter()
                    .map(|f| (f.name.clone(), f.clone()))
                    .collect(),
            ),
        }
    }
}

/// What a file that predates `field` reads for it: its initial default, or NULL.
fn missing_value(field: &Field, ty: &DataType) -> Result<ScalarValue> {
    match field.primitive() {
        Some(p) => to_scalar(p, field.initial_default.as_ref()).cast_to(ty),
        None => ScalarValue::try_from(ty),
    }
}

impl PhysicalExprAdapterFactory for FieldIdAdapterFactory {
    fn create(
        &self,
        logical_file_schema: SchemaRef,
        physical_file_schema: SchemaRef,
    ) -> Result<Arc<dyn PhysicalExprAdapter>> {
        let by_id: HashMap<FieldId, usize> = physical_file_schema
            .fields()
            .iter()
            .enumerate()
            .filter_map(|(i, f)| field_id_of(f).map(|id| (id, i)))
            .collect();
        let bindings = logical_file_schema
            .fields()
            .iter()
            .map(|f| match self.columns.get(f.name()) {
                Some(column) => match by_id.get(&column.id) {
                    Some(&index) => Ok(Binding::File(index)),
                    None => Ok(Binding::Missing(missing_value(column, f.data_type())?)),
                },
                None => Ok(Binding::Untouched),
            })
            .collect::<Result<_>>()?;
        Ok(Arc::new(FieldIdAdapter {
            logical: logical_file_schema,
            physical: physical_file_schema,
            columns: self.columns.clone(),
            bindings,
        }))
    }
}

/// Where a column of the logical file schema is in one file.
#[derive(Debug, Clone)]
enum Binding {
    /// The file column at this index has the column's field id.
    File(usize),
    /// The file was written before the column existed: it reads this value.
    Missing(ScalarValue),
    /// Not a table column (a partition or virtual column): left as it is.
    Untouched,
}

/// Rewrites column references of the logical file schema to one file's columns.
#[derive(Debug)]
pub struct FieldIdAdapter {
    logical: SchemaRef,
    physical: SchemaRef,
    columns: Arc<HashMap<String, Field>>,
    bindings: Vec<Binding>,
}

impl FieldIdAdapter {
    fn bind(&self, column: &Column) -> Result<Transformed<Arc<dyn PhysicalExpr>>> {
        let index = column.index();
        let logical = match self.logical.fields().get(index) {
            Some(f) if f.name() == column.name() => f,
            _ => return Ok(self.by_name(column)),
        };
        match &self.bindings[index] {
            Binding::Untouched => Ok(self.by_name(column)),
            Binding::Missing(value) => Ok(Transformed::yes(Arc::new(Literal::new(
                value.cast_to(logical.data_type())?,
            )))),
            Binding::File(file_index) => {
                let file_index = *file_index;
                let physical = self.physical.field(file_index);
                let bound = Arc::new(Column::new(physical.name(), file_index));
                if physical.data_type() == logical.data_type() {
                    return Ok(Transformed::yes(bound));
                }
                if let Some(field) = self.columns.get(logical.name())
                    && !field.field_type.is_primitive()
                {
                    return Ok(Transformed::yes(Arc::new(NestedById::new(
                        bound,
                        field.clone(),
                        logical.data_type().clone(),
                    ))));
                }
                if !can_cast_types(physical.data_type(), logical.data_type()) {
                    return exec_err!(
                        "column '{}' is {} in a data file but {} in the table; the table's \
                         schema history allows only widening",
                        logical.name(),
                        physical.data_type(),
                        logical.data_type()
                    );
                }
                Ok(Transformed::yes(Arc::new(CastExpr::new(
                    bound,
                    logical.data_type().clone(),
                    None,
                ))))
            }
        }
    }
}

impl FieldIdAdapter {
    /// A column that is not a table column (a virtual column such as the row position),
    /// found by name among the file's columns as DataFusion's own adapter does.
    fn by_name(&self, column: &Column) -> Transformed<Arc<dyn PhysicalExpr>> {
        match self.physical.index_of(column.name()) {
            Ok(i) if i != column.index() => {
                Transformed::yes(Arc::new(Column::new(column.name(), i)))
            }
            _ => Transformed::no(Arc::new(column.clone())),
        }
    }
}

impl FieldIdAdapter {
    /// `get_field(column, 'a', 'b')` of a struct column, its names translated through the
    /// field ids to this file's names, so that the Parquet reader reads only that leaf's
    /// column chunks (and a renamed field still finds its data). `None` when the path goes
    /// through something other than structs, or names no field: the whole column is bound
    /// then, and the access evaluated on it.
    fn bind_field_access(
        &self,
        access: &ScalarFunctionExpr,
    ) -> Result<Option<Arc<dyn PhysicalExpr>>> {
        if access.name() != "get_field" {
            return Ok(None);
        }
        let args = access.args();
        let Some(column) = args[0].downcast_ref::<Column>() else {
            return Ok(None);
        };
        let (Some(Binding::File(file_index)), Some(field)) = (
            self.bindings.get(column.index()),
            self.columns.get(column.name()),
        ) else {
            return Ok(None);
        };
        if self
            .logical
            .fields()
            .get(column.index())
            .map(|f| f.name().as_str())
            != Some(column.name())
        {
            return Ok(None);
        }
        let mut names = Vec::with_capacity(args.len() - 1);
        for arg in &args[1..] {
            match arg.downcast_ref::<Literal>().map(|l| l.value()) {
                Some(ScalarValue::Utf8(Some(n)) | ScalarValue::Utf8View(Some(n))) => {
                    names.push(n.clone())
                }
                _ => return Ok(None),
            }
        }
        // The fields the path names, in the table and in the file.
        let mut table_field = field;
        let mut file_type = self.physical.field(*file_index).data_type().clone();
        let mut file_names = Vec::with_capacity(names.len());
        for name in &names {
            let Type::Struct(children) = &table_field.field_type else {
                return Ok(None);
            };
            let Some(child) = children.iter().find(|c| &c.name == name) else {
                return Ok(None);
            };
            let DataType::Struct(file_children) = &file_type else {
                return Ok(None);
            };
            match file_children
                .iter()
                .find(|f| field_id_of(f) == Some(child.id))
            {
                Some(f) => {
                    file_names.push(f.name().clone());
                    file_type = f.data_type().clone();
                }
                // The file predates this field.
                None => {
                    let ty = access.return_type();
                    return Ok(Some(Arc::new(Literal::new(missing_value(child, ty)?))));
                }
            }
            table_field = child;
        }
        let physical = self.physical.field(*file_index);
        let mut file_args: Vec<Arc<dyn PhysicalExpr>> =
            vec![Arc::new(Column::new(physical.name(), *file_index))];
        file_args.extend(
            file_names.into_iter().map(|n| {
                Arc::new(Literal::new(ScalarValue::Utf8(Some(n)))) as Arc<dyn PhysicalExpr>
            }),
        );
        let read: Arc<dyn PhysicalExpr> = Arc::new(ScalarFunctionExpr::try_new(
            Arc::new(access.fun().clone()),
            file_args,
            &self.physical,
            Arc::new(access.config_options().clone()),
        )?);
        let ty = access.return_type().clone();
        Ok(Some(if file_type == ty {
            read
        } else if table_field.field_type.is_primitive() {
            Arc::new(CastExpr::new(read, ty, None))
        } else {
            Arc::new(NestedById::new(read, table_field.clone(), ty))
        }))
    }
}

impl PhysicalExprAdapter for FieldIdAdapter {
    fn rewrite(&self, expr: Arc<dyn PhysicalExpr>) -> Result<Arc<dyn PhysicalExpr>> {
        expr.transform_down(|e| {
            if let Some(access) = e.downcast_ref::<ScalarFunctionExpr>()
                && let Some(bound) = self.bind_field_access(access)?
            {
                return Ok(Transformed::new(bound, true, TreeNodeRecursion::Jump));
            }
            match e.downcast_ref::<Column>() {
                // What a column is bound to holds the file's column: not to be bound again.
                Some(column) => {
                    let bound = self.bind(column)?;
                    Ok(Transformed::new(
                        bound.data,
                        bound.transformed,
                        TreeNodeRecursion::Jump,
                    ))
                }
                None => Ok(Transformed::no(e)),
            }
        })
        .data()
    }
}

/// A nested value read from a file, turned into the table's type by field id: struct
/// fields matched by id (renamed ones keep their data, ones the file predates read NULL),
/// widened primitives cast, names and nullability those of the table.
#[derive(Debug, Clone)]
pub struct NestedById {
    input: Arc<dyn PhysicalExpr>,
    field: Field,
    data_type: DataType,
}

impl NestedById {
    pub fn new(input: Arc<dyn PhysicalExpr>, field: Field, data_type: DataType) -> Self {
        NestedById {
            input,
            field,
            data_type,
        }
    }
}

impl PartialEq for NestedById {
    fn eq(&self, other: &Self) -> bool {
        self.input.as_ref() == other.input.as_ref()
            && self.field == other.field
            && self.data_type == other.data_type
    }
}

impl Eq for NestedById {}

impl std::hash::Hash for NestedById {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.input.hash(state);
        self.field.id.hash(state);
        self.data_type.hash(state);
    }
}

impl std::fmt::Display for NestedById {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "by_field_id({})", self.input)
    }
}

impl PhysicalExpr for NestedById {
    fn data_type(&self, _input_schema: &datafusion::arrow::datatypes::Schema) -> Result<DataType> {
        Ok(self.data_type.clone())
    }

    fn nullable(&self, input_schema: &datafusion::arrow::datatypes::Schema) -> Result<bool> {
        self.input.nullable(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        let array = self.input.evaluate(batch)?.into_array(batch.num_rows())?;
        Ok(ColumnarValue::Array(adapt(
            &array,
            &self.field,
            &self.data_type,
        )?))
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        Ok(Arc::new(NestedById {
            input: children[0].clone(),
            ..self.as_ref().clone()
        }))
    }

    fn fmt_sql(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.input.fmt_sql(f)
    }
}

/// `array`, as a file holds values of `field`, in the table's type `ty` (see [`NestedById`]).
fn adapt(array: &ArrayRef, field: &Field, ty: &DataType) -> Result<ArrayRef> {
    if array.data_type() == ty {
        return Ok(array.clone());
    }
    let child_type = |f: &FieldRef| f.data_type().clone();
    Ok(match (&field.field_type, ty) {
        (Type::Struct(parts), DataType::Struct(targets)) => {
            let Some(s) = array.as_struct_opt() else {
                return exec_err!("column '{}' is not a struct in a data file", field.name);
            };
            let DataType::Struct(file_fields) = s.data_type() else {
                unreachable!("a struct array has a struct type")
            };
            let columns = parts
                .iter()
                .zip(targets.iter())
                .map(|(part, target)| {
                    let found = file_fields
                        .iter()
                        .position(|f| field_id_of(f) == Some(part.id))
                        .or_else(|| {
                            // Written without field ids: by name.
                            file_fields
                                .iter()
                                .position(|f| field_id_of(f).is_none() && f.name() == &part.name)
                        });
                    match found {
                        Some(i) => adapt(s.column(i), part, &child_type(target)),
                        None => missing_value(part, target.data_type())?.to_array_of_size(s.len()),
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            Arc::new(StructArray::try_new(
                targets.clone(),
                columns,
                s.nulls().cloned(),
            )?)
        }
        (Type::List(element), DataType::List(target)) => {
            let Some(list) = array.as_list_opt::<i32>() else {
                return exec_err!("column '{}' is not a list in a data file", field.name);
            };
            let values = adapt(list.values(), element, target.data_type())?;
            Arc::new(ListArray::try_new(
                target.clone(),
                list.offsets().clone(),
                values,
                list.nulls().cloned(),
            )?)
        }
        (Type::FixedList { element, size }, DataType::FixedSizeList(target, _)) => {
            let Some(list) = array.as_fixed_size_list_opt() else {
                return exec_err!(
                    "column '{}' is not a fixed-size list in a data file",
                    field.name
                );
            };
            let values = adapt(list.values(), element, target.data_type())?;
            Arc::new(FixedSizeListArray::try_new(
                target.clone(),
                *size,
                values,
                list.nulls().cloned(),
            )?)
        }
        (Type::Map { key, value }, DataType::Map(entries, sorted)) => {
            let Some(map) = array.as_map_opt() else {
                return exec_err!("column '{}' is not a map in a data file", field.name);
            };
            let DataType::Struct(kv) = entries.data_type() else {
                return exec_err!("map entries are not a struct");
            };
            let keys = adapt(map.keys(), key, kv[0].data_type())?;
            let values = adapt(map.values(), value, kv[1].data_type())?;
            let entries_array = StructArray::try_new(kv.clone(), vec![keys, values], None)?;
            Arc::new(MapArray::try_new(
                entries.clone(),
                map.offsets().clone(),
                entries_array,
                map.nulls().cloned(),
                *sorted,
            )?)
        }
        (Type::Primitive(_), _) => cast(array, ty)?,
        (table, _) => {
            return exec_err!(
                "'{}' is {table} in the table but {} in a data file",
                field.name,
                array.data_type()
            );
        }
    })
}
