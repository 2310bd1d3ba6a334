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

use datafusion::arrow::compute::can_cast_types;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{CastExpr, Column, Literal};
use datafusion::physical_expr_adapter::{PhysicalExprAdapter, PhysicalExprAdapterFactory};
use tarn_core::arrow_convert::field_id_of;
use tarn_spec::{FieldId, Schema};

use crate::convert::to_scalar;

/// Creates a [`FieldIdAdapter`] per file for scans of a table whose schema is `schema`.
#[derive(Debug)]
pub struct FieldIdAdapterFactory {
    /// Field id of each column of the logical file schema, by name.
    ids: HashMap<String, FieldId>,
    /// What files that predate a column read for it (its initial default, or NULL).
    missing: HashMap<FieldId, ScalarValue>,
}

impl FieldIdAdapterFactory {
    pub fn new(schema: &Schema) -> Self {
        FieldIdAdapterFactory {
            ids: schema
                .fields()
                .iter()
                .map(|f| (f.name.clone(), f.id))
                .collect(),
            missing: schema
                .fields()
                .iter()
                .map(|f| (f.id, to_scalar(f.field_type, f.initial_default.as_ref())))
                .collect(),
        }
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
            .map(|f| match self.ids.get(f.name()) {
                Some(id) => match by_id.get(id) {
                    Some(&index) => Binding::File(index),
                    None => Binding::Missing(self.missing[id].clone()),
                },
                None => Binding::Untouched,
            })
            .collect();
        Ok(Arc::new(FieldIdAdapter {
            logical: logical_file_schema,
            physical: physical_file_schema,
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

impl PhysicalExprAdapter for FieldIdAdapter {
    fn rewrite(&self, expr: Arc<dyn PhysicalExpr>) -> Result<Arc<dyn PhysicalExpr>> {
        expr.transform(|e| match e.downcast_ref::<Column>() {
            Some(column) => self.bind(column),
            None => Ok(Transformed::no(e)),
        })
        .data()
    }
}
