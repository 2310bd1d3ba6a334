//! ALTER TABLE on tarn tables: schema, partitioning, properties and name.
//!
//! ```sql
//! ALTER TABLE t ADD COLUMN c type [DEFAULT constant] [NOT NULL] [COMMENT '...'];
//! ALTER TABLE t DROP COLUMN c;
//! ALTER TABLE t RENAME COLUMN a TO b;
//! ALTER TABLE t ALTER COLUMN c TYPE bigint;          -- widening only
//! ALTER TABLE t ALTER COLUMN c SET NOT NULL;         -- only if no NULL is stored
//! ALTER TABLE t ALTER COLUMN c DROP NOT NULL;
//! ALTER TABLE t ALTER COLUMN c SET DEFAULT constant;  -- or DROP DEFAULT
//! ALTER TABLE t SET TBLPROPERTIES ('k' = 'v');       -- or SET ('k' = 'v')
//! ALTER TABLE t UNSET TBLPROPERTIES [IF EXISTS] ('k');
//! ALTER TABLE t SET PARTITIONED BY (day(ts), bucket(16, id));
//! ALTER TABLE t RESET PARTITIONED BY;
//! ALTER TABLE t RENAME TO u;
//! COMMENT ON COLUMN t.c IS '...';                   -- or IS NULL
//! COMMENT ON TABLE t IS '...';                      -- the property 'comment'
//! ```
//!
//! Every statement but RENAME TO commits exactly one version, whatever number of changes
//! it lists; a refused change commits nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::common::Column;
use datafusion::dataframe::DataFrame;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::sql::sqlparser::ast::{
    AlterColumnOperation, AlterTable, AlterTableOperation, ColumnOption, Expr as SqlExpr,
    RenameTableNameKind,
};
use tarn_core::{Change, Table};
use tarn_spec::{MetadataUpdate, SchemaChange};

use crate::context::TarnContext;
use crate::convert::sql_type;
use crate::ddl;
use crate::error::{spec_to_df, to_df};
use crate::names::{QualifiedName, normalize};
use crate::provider::TarnTable;

/// ALTER TABLE forms sqlparser does not know, read by tarn's own parser.
#[derive(Debug, Clone)]
pub enum TarnAlter {
    /// `SET PARTITIONED BY (...)`: the partitioning of data written from now on.
    SetPartitionedBy(Vec<SqlExpr>),
    /// `RESET PARTITIONED BY`: data written from now on is unpartitioned.
    ResetPartitionedBy,
    /// `UNSET TBLPROPERTIES [IF EXISTS] ('k', ...)`.
    UnsetProperties { keys: Vec<String>, if_exists: bool },
    /// `COMMENT ON TABLE t IS '...'` (the table property `comment`) and `COMMENT ON COLUMN
    /// t.c IS '...'`; `IS NULL` removes the comment.
    Comment {
        column: Option<String>,
        comment: Option<String>,
    },
}

/// The table property that holds a table's comment, as Iceberg and Spark keep it.
const COMMENT_PROPERTY: &str = "comment";

/// What one ALTER TABLE statement asks for.
#[derive(Default)]
struct Plan {
    schema: Vec<SchemaChange>,
    set_properties: BTreeMap<String, String>,
    unset_properties: Vec<String>,
    partitioning: Option<Vec<SqlExpr>>,
    rename: Option<QualifiedName>,
}

impl TarnContext {
    /// Runs an ALTER TABLE on a tarn table.
    pub(crate) async fn alter_table(
        &self,
        alter: &AlterTable,
        extension: Option<&TarnAlter>,
        name: &QualifiedName,
    ) -> Result<DataFrame> {
        let warehouse = self.warehouse();
        let table = match warehouse.load_table(&name.namespace, &name.table).await {
            Ok(t) => t,
            Err(tarn_core::Error::TableNotFound { .. }) if alter.if_exists => {
                return self.done().await;
            }
            Err(e) => return Err(to_df(e)),
        };
        let plan = self.read_operations(alter, extension, &table).await?;
        if let Some(to) = &plan.rename {
            return self.rename_table(name, to).await;
        }
        let mut updates = Vec::new();
        let mut fields = table.schema().fields().to_vec();
        if !plan.schema.is_empty() {
            fields = table
                .metadata()
                .evolve_schema(&plan.schema)
                .map_err(spec_to_df)?;
            self.check_not_null(&table, name, &plan.schema, &fields)
                .await?;
            updates.push(MetadataUpdate::SetSchema(fields.clone()));
        }
        if let Some(items) = &plan.partitioning {
            let partition_fields = ddl::partition_fields(items, &fields)?;
            updates.push(MetadataUpdate::SetPartitionSpec(
                table.metadata().evolve_partitioning(partition_fields),
            ));
        }
        if !plan.set_properties.is_empty() {
            ddl::refuse_internal_properties(plan.set_properties.keys())?;
            let mut merged = table.metadata().properties().clone();
            merged.extend(plan.set_properties.clone());
            tarn_core::properties::validate(&merged).map_err(to_df)?;
            updates.push(MetadataUpdate::SetProperties(plan.set_properties));
        }
        if !plan.unset_properties.is_empty() {
            ddl::refuse_internal_properties(plan.unset_properties.iter())?;
            updates.push(MetadataUpdate::RemoveProperties(plan.unset_properties));
        }
        if updates.is_empty() {
            return self.done().await;
        }
        let data_dependent = plan.schema.iter().any(SchemaChange::depends_on_data);
        table
            .commit(Change::Metadata {
                updates,
                data_dependent,
            })
            .await
            .map_err(to_df)?;
        self.done().await
    }

    async fn read_operations(
        &self,
        alter: &AlterTable,
        extension: Option<&TarnAlter>,
        table: &Table,
    ) -> Result<Plan> {
        let schema = table.schema();
        let mut plan = Plan::default();
        for operation in &alter.operations {
            match operation {
                AlterTableOperation::AddColumn {
                    if_not_exists,
                    column_def,
                    column_position: None,
                    ..
                } => {
                    let name = normalize(&column_def.name);
                    let field_type = sql_type(&column_def.data_type)?;
                    let mut doc = None;
                    let mut required = false;
                    let mut default = None;
                    for option in &column_def.options {
                        match &option.option {
                            ColumnOption::Null => required = false,
                            ColumnOption::NotNull => required = true,
                            ColumnOption::Comment(c) => doc = Some(c.clone()),
                            ColumnOption::Default(expr) => {
                                default = self.default_value(expr, &field_type, &name)?;
                            }
                            other => {
                                return Err(DataFusionError::NotImplemented(format!(
                                    "column option '{other}' in ADD COLUMN is not supported \
                                     by tarn tables"
                                )));
                            }
                        }
                    }
                    if *if_not_exists && schema.field_by_path(&name).is_some() {
                        continue;
                    }
                    plan.schema.push(SchemaChange::AddColumn {
                        name,
                        field_type,
                        required,
                        default,
                        doc,
                    });
                }
                AlterTableOperation::DropColumn {
                    column_names,
                    if_exists,
                    ..
                } => {
                    for column in column_names {
                        let name = normalize(column);
                        if *if_exists && schema.field_by_path(&name).is_none() {
                            continue;
                        }
                        plan.schema.push(SchemaChange::DropColumn { name });
                    }
                }
                AlterTableOperation::RenameColumn {
                    old_column_name,
                    new_column_name,
                } => plan.schema.push(SchemaChange::RenameColumn {
                    from: normalize(old_column_name),
                    to: normalize(new_column_name),
                }),
                AlterTableOperation::AlterColumn { column_name, op } => {
                    let name = normalize(column_name);
                    plan.schema.push(match op {
                        AlterColumnOperation::SetNotNull => SchemaChange::SetRequired {
                            name,
                            required: true,
                        },
                        AlterColumnOperation::DropNotNull => SchemaChange::SetRequired {
                            name,
                            required: false,
                        },
                        AlterColumnOperation::SetDefault { value } => {
                            let field = schema.field_by_path(&name).ok_or_else(|| {
                                DataFusionError::Plan(format!("column '{name}' does not exist"))
                            })?;
                            let default = self.default_value(value, &field.field_type, &name)?;
                            SchemaChange::SetDefault { name, default }
                        }
                        AlterColumnOperation::DropDefault => SchemaChange::SetDefault {
                            name,
                            default: None,
                        },
                        AlterColumnOperation::SetDataType {
                            data_type,
                            using: None,
                            ..
                        } => SchemaChange::SetType {
                            field_type: sql_type(data_type)?.as_primitive().ok_or_else(|| {
                                DataFusionError::Plan(format!(
                                    "cannot change '{name}' to {data_type}: a column's type \
                                     changes only by widening a primitive; add, drop or \
                                     widen the fields of a struct one by one"
                                ))
                            })?,
                            name,
                        },
                        other => {
                            return Err(DataFusionError::NotImplemented(format!(
                                "ALTER COLUMN ... {other} is not supported by tarn tables"
                            )));
                        }
                    });
                }
                AlterTableOperation::SetTblProperties {
                    table_properties: options,
                }
                | AlterTableOperation::SetOptionsParens { options } => {
                    plan.set_properties.extend(ddl::options(options)?);
                }
                AlterTableOperation::RenameTable { table_name } => {
                    let (RenameTableNameKind::To(to) | RenameTableNameKind::As(to)) = table_name;
                    let to = self.qualify(to)?;
                    if to.catalog != self.catalog_name() {
                        return Err(DataFusionError::Plan(format!(
                            "cannot move a tarn table to catalog '{}'",
                            to.catalog
                        )));
                    }
                    plan.rename = Some(to);
                }
                other => {
                    return Err(DataFusionError::NotImplemented(format!(
                        "ALTER TABLE ... {other} is not supported by tarn tables"
                    )));
                }
            }
        }
        match extension {
            None => {}
            Some(TarnAlter::SetPartitionedBy(items)) => plan.partitioning = Some(items.clone()),
            Some(TarnAlter::ResetPartitionedBy) => plan.partitioning = Some(Vec::new()),
            Some(TarnAlter::Comment {
                column: Some(column),
                comment,
            }) => plan.schema.push(SchemaChange::SetComment {
                name: column.clone(),
                comment: comment.clone(),
            }),
            Some(TarnAlter::Comment {
                column: None,
                comment: Some(comment),
            }) => {
                plan.set_properties
                    .insert(COMMENT_PROPERTY.to_string(), comment.clone());
            }
            Some(TarnAlter::Comment {
                column: None,
                comment: None,
            }) if table.metadata().properties().contains_key(COMMENT_PROPERTY) => {
                plan.unset_properties.push(COMMENT_PROPERTY.to_string());
            }
            Some(TarnAlter::Comment { column: None, .. }) => {}
            Some(TarnAlter::UnsetProperties { keys, if_exists }) => {
                for key in keys {
                    if table.metadata().properties().contains_key(key) {
                        plan.unset_properties.push(key.clone());
                    } else if !if_exists {
                        return Err(DataFusionError::Plan(format!(
                            "table property '{key}' is not set; use UNSET TBLPROPERTIES IF \
                             EXISTS to ignore missing ones"
                        )));
                    }
                }
            }
        }
        let changes = alter.operations.len() + usize::from(extension.is_some());
        if plan.rename.is_some() && changes > 1 {
            return Err(DataFusionError::Plan(
                "RENAME TO cannot be combined with other changes in one ALTER TABLE".into(),
            ));
        }
        Ok(plan)
    }

    /// A constant SQL expression (a DEFAULT) as a value of type `ty`; `None` for NULL.
    fn default_value(
        &self,
        expr: &SqlExpr,
        ty: &tarn_spec::Type,
        column: &str,
    ) -> Result<Option<tarn_spec::Value>> {
        let Some(ty) = ty.as_primitive() else {
            return Err(DataFusionError::Plan(format!(
                "column '{column}' is a {ty}: only columns of primitive types take a DEFAULT"
            )));
        };
        ddl::constant_default(&self.session_context().state(), expr, ty, column)
    }

    /// SET NOT NULL holds only if no stored value is NULL: counted on the version the
    /// change is based on (the commit conflicts with any data change committed since).
    async fn check_not_null(
        &self,
        table: &Table,
        name: &QualifiedName,
        changes: &[SchemaChange],
        evolved: &[tarn_spec::Field],
    ) -> Result<()> {
        for change in changes {
            let SchemaChange::SetRequired {
                name: column,
                required: true,
            } = change
            else {
                continue;
            };
            let Some(field) = evolved.iter().find(|f| f.name.eq_ignore_ascii_case(column)) else {
                continue;
            };
            let nulls = match table.schema().field_by_id(field.id) {
                // A column added by this statement: every stored row reads its default.
                None if field.initial_default.is_some() => 0,
                None => table.snapshot().summary.total_rows as i64,
                Some(stored) => {
                    let provider = TarnTable::new(
                        table.clone(),
                        name.short(),
                        self.catalog().store_url().clone(),
                    );
                    let column = Expr::Column(Column::new_unqualified(&stored.name));
                    self.session_context()
                        .read_table(Arc::new(provider))?
                        .filter(column.is_null())?
                        .count()
                        .await? as i64
                }
            };
            if nulls > 0 {
                return Err(DataFusionError::Plan(format!(
                    "cannot SET NOT NULL on '{}': {nulls} stored {} NULL in it; \
                     UPDATE or DELETE {} first",
                    field.name,
                    if nulls == 1 { "row has" } else { "rows have" },
                    if nulls == 1 { "it" } else { "them" },
                )));
            }
        }
        Ok(())
    }

    async fn rename_table(&self, from: &QualifiedName, to: &QualifiedName) -> Result<DataFrame> {
        self.catalog().require_namespace(&to.namespace).await?;
        self.warehouse()
            .rename_table(&from.namespace, &from.table, &to.namespace, &to.table)
            .await
            .map_err(to_df)?;
        if let Some(schema) = self.catalog().tarn_schema(&from.namespace) {
            schema.note_dropped(&from.table);
        }
        if let Some(schema) = self.catalog().tarn_schema(&to.namespace) {
            schema.note_created(&to.table);
        }
        self.done().await
    }
}
