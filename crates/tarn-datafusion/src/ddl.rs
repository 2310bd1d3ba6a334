//! DDL on tarn tables: CREATE TABLE [AS], DROP TABLE, CREATE/DROP SCHEMA.
//!
//! ```sql
//! CREATE TABLE [IF NOT EXISTS] ns.t (col type [NOT NULL], ...)
//!   [PARTITIONED BY (day(ts), bucket(16, id), region)]
//!   [WITH ('write.target-file-size-bytes' = '67108864')]
//!   [AS SELECT ...]
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, StringArray};
use datafusion::arrow::datatypes::{DataType, Schema as ArrowSchema};
use datafusion::common::tree_node::TreeNode;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{ColumnarValue, Expr, Volatility};
use datafusion::prelude::DataFrame;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    ColumnOption, CreateTable, CreateTableLikeDefaults, CreateTableLikeKind, CreateTableOptions,
    Expr as SqlExpr, ExprWithAlias, FunctionArg, FunctionArgExpr, FunctionArguments, Ident,
    ObjectName, ObjectType, SchemaName, SelectItem, SetExpr, ShowCreateObject, ShowStatementFilter,
    ShowStatementFilterPosition, ShowStatementOptions, SqlOption, Statement, Value as SqlValue,
};
use tarn_core::TableDefinition;
use tarn_spec::{
    FIRST_PARTITION_FIELD_ID, Field, FieldId, PartitionField, PrimitiveType, Transform, Value,
};

use crate::commit::{TABLE_METADATA_KEY, VERSION_METADATA_KEY};
use crate::context::{TarnContext, quote};
use crate::convert::{from_scalar, sql_column_type, sql_literal, sql_type, string_literal};
use crate::error::to_df;
use crate::names::normalize;
use crate::names::{QualifiedName, parts};

/// The table definition of a CREATE TABLE with a column list. Column defaults are constant
/// expressions, folded now with `state`'s functions.
pub fn definition(
    create: &CreateTable,
    partition_by: &[SqlExpr],
    state: &SessionState,
) -> Result<TableDefinition> {
    if create.columns.is_empty() {
        return Err(DataFusionError::Plan(
            "a table needs at least one column: CREATE TABLE t (id BIGINT, ...)".into(),
        ));
    }
    distinct_names(
        create.columns.iter().map(|c| normalize(&c.name)),
        "CREATE TABLE lists",
        "a column name once",
    )?;
    let mut fields = Vec::with_capacity(create.columns.len());
    for (i, column) in create.columns.iter().enumerate() {
        let mut field = Field::optional(
            i as i32 + 1,
            normalize(&column.name),
            sql_type(&column.data_type)?,
        );
        for option in &column.options {
            match &option.option {
                ColumnOption::NotNull => field.required = true,
                ColumnOption::Null => field.required = false,
                ColumnOption::Comment(c) => field.doc = Some(c.clone()),
                ColumnOption::Default(expr) => {
                    let Some(ty) = field.primitive() else {
                        return Err(DataFusionError::Plan(format!(
                            "column '{}' is a {}: only columns of primitive types take a \
                             DEFAULT",
                            field.name, field.field_type
                        )));
                    };
                    let value = constant_default(state, expr, ty, &field.name)?;
                    // The table is new: no stored row needs an initial default.
                    field.write_default = value;
                }
                other => {
                    return Err(DataFusionError::NotImplemented(format!(
                        "column option '{other}' on '{}' is not supported by tarn tables",
                        field.name
                    )));
                }
            }
        }
        if field.name.is_empty() {
            return Err(DataFusionError::Plan(format!(
                "CREATE TABLE's column {} has an empty name; give each column a name",
                i + 1
            )));
        }
        fields_are_named(&field)?;
        fields.push(field);
    }
    tarn_spec::assign_field_ids(&mut fields);
    if !create.constraints.is_empty() {
        return Err(DataFusionError::NotImplemented(
            "table constraints are not supported by tarn tables".into(),
        ));
    }
    let partition_fields = partition_fields(partition_by, &fields)?;
    Ok(TableDefinition {
        fields,
        partition_fields,
        properties: properties(&create.table_options)?,
    })
}

/// Fields for a CTAS: the query's columns, all nullable (as in Delta and Iceberg).
pub fn fields_of(schema: &ArrowSchema) -> Result<Vec<Field>> {
    distinct_names(
        schema.fields().iter().map(|f| f.name().clone()),
        "the query gives",
        "its columns names of their own with AS (SELECT a.id AS a_id, b.id AS b_id ...)",
    )?;
    let mut fields = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if f.name().is_empty() {
                return Err(DataFusionError::Plan(format!(
                    "the query's column {} has no name; name it with AS",
                    i + 1
                )));
            }
            let ty = tarn_core::arrow_convert::tarn_type(f.data_type(), &mut 0).map_err(|e| {
                let name = f.name();
                let fix = match f.data_type() {
                    DataType::Null => "it is an untyped NULL: give it a type, as in \
                                       CAST(NULL AS INT)"
                        .to_string(),
                    DataType::UInt64 => format!(
                        "tarn has no unsigned 64-bit integer; convert it in the query: \
                         CAST(\"{name}\" AS DECIMAL(20, 0)) holds every value, CAST(\"{name}\" \
                         AS BIGINT) those below 2^63"
                    ),
                    DataType::Time32(_) | DataType::Time64(_) => format!(
                        "tarn has no TIME type; convert it in the query, as in \
                         CAST(\"{name}\" AS VARCHAR)"
                    ),
                    DataType::Date64 => format!(
                        "convert it in the query: CAST(\"{name}\" AS TIMESTAMP), or AS DATE"
                    ),
                    DataType::Duration(_) | DataType::Interval(_) => format!(
                        "tarn has no INTERVAL type; convert it in the query, as in \
                         CAST(\"{name}\" AS VARCHAR)"
                    ),
                    _ => format!("convert it in the query ({e})"),
                };
                DataFusionError::Plan(format!(
                    "the query's column '{}' cannot be stored: {fix}",
                    f.name()
                ))
            })?;
            let field = Field::optional(0, f.name().clone(), ty);
            fields_are_named(&field)?;
            Ok(field)
        })
        .collect::<Result<Vec<_>>>()?;
    tarn_spec::assign_field_ids(&mut fields);
    Ok(fields)
}

/// Names each unnamed expression of a CTAS's columns as it is written (`id + 1`, `count(*)`,
/// `1`), as DuckDB and Spark do, instead of by DataFusion's display of the planned expression
/// (`t.id + Int64(1)`, `Int64(1)`), which becomes a column name for good. A plain column keeps
/// its name. A set operation takes its names from its first query, as DataFusion does.
fn name_expressions_as_written(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => {
            for item in &mut select.projection {
                if let SelectItem::UnnamedExpr(expr) = item
                    && !matches!(
                        expr,
                        SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_)
                    )
                {
                    let alias = Ident::with_quote('"', expr.to_string());
                    *item = SelectItem::ExprWithAlias {
                        expr: expr.clone(),
                        alias,
                    };
                }
            }
        }
        SetExpr::SetOperation { left, .. } => name_expressions_as_written(left),
        SetExpr::Query(query) => name_expressions_as_written(&mut query.body),
        _ => {}
    }
}

/// Refuses a struct field without a name inside `column` (the spec would refuse the schema,
/// in its own terms).
fn fields_are_named(column: &Field) -> Result<()> {
    if column.walk().iter().any(|f| f.name.is_empty()) {
        return Err(DataFusionError::Plan(format!(
            "a field of column '{}' has an empty name; give each struct field a name",
            column.name
        )));
    }
    Ok(())
}

/// Refuses a column name given twice (names are matched without case, as tarn resolves
/// them): `"{what} '{name}' twice; give {fix}"`.
fn distinct_names(names: impl Iterator<Item = String>, what: &str, fix: &str) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for name in names {
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(DataFusionError::Plan(format!(
                "{what} '{name}' twice; give {fix}"
            )));
        }
    }
    Ok(())
}

/// `PARTITIONED BY` items: `col`, `year|month|day|hour(col)`, `bucket(N, col)`,
/// `truncate(W, col)`.
pub fn partition_fields(items: &[SqlExpr], fields: &[Field]) -> Result<Vec<PartitionField>> {
    // A column, or a field of a struct column by its dotted path (`ctx.ts`).
    let schema = tarn_spec::Schema::new(tarn_spec::SchemaId(0), fields.to_vec())
        .map_err(crate::error::spec_to_df)?;
    let column = |name: &str| -> Result<Field> {
        schema.field_by_path(name).cloned().ok_or_else(|| {
            DataFusionError::Plan(format!(
                "PARTITIONED BY names column '{name}', which the table does not have"
            ))
        })
    };
    let path = |item: &SqlExpr| -> Option<String> {
        match item {
            SqlExpr::Identifier(ident) => Some(normalize(ident)),
            SqlExpr::CompoundIdentifier(idents) => {
                Some(idents.iter().map(normalize).collect::<Vec<_>>().join("."))
            }
            _ => None,
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field_id = FieldId(FIRST_PARTITION_FIELD_ID + i as i32);
        let (source, transform) = match item {
            SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_) => (
                column(&path(item).expect("a column name"))?,
                Transform::Identity,
            ),
            SqlExpr::Function(f) => {
                let name = f.name.to_string().to_ascii_lowercase();
                let args = match &f.args {
                    FunctionArguments::List(list) => list.args.iter().collect::<Vec<_>>(),
                    _ => Vec::new(),
                };
                // `bucket(N, col)` and `truncate(W, col)`: the number first; the others
                // take the column alone.
                let (number, col) = match args.as_slice() {
                    [FunctionArg::Unnamed(FunctionArgExpr::Expr(e))] => (None, path(e)),
                    [
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::Value(v))),
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)),
                    ] => match &v.value {
                        SqlValue::Number(n, _) => (n.parse::<u32>().ok(), path(e)),
                        _ => (None, None),
                    },
                    _ => (None, None),
                };
                let bad = || {
                    DataFusionError::Plan(format!(
                        "cannot partition by '{item}'; use a column, year(col), month(col), day(col), \
                         hour(col), bucket(N, col) or truncate(W, col)"
                    ))
                };
                let col = col.ok_or_else(bad)?;
                let transform = match (name.as_str(), number) {
                    ("year" | "years", None) => Transform::Year,
                    ("month" | "months", None) => Transform::Month,
                    ("day" | "days", None) => Transform::Day,
                    ("hour" | "hours", None) => Transform::Hour,
                    ("bucket", Some(n)) if n > 0 => Transform::Bucket(n),
                    ("truncate", Some(w)) if w > 0 => Transform::Truncate(w),
                    _ => return Err(bad()),
                };
                (column(&col)?, transform)
            }
            other => {
                return Err(DataFusionError::Plan(format!(
                    "cannot partition by '{other}'; use a column or a transform such as day(ts) or bucket(16, id)"
                )));
            }
        };
        // A struct field's partition field is named by its path: `ctx_ts_day`.
        let base = schema
            .path_name(source.id)
            .unwrap_or_else(|| source.name.clone())
            .replace('.', "_");
        let name = match transform {
            Transform::Identity => base,
            Transform::Year => format!("{base}_year"),
            Transform::Month => format!("{base}_month"),
            Transform::Day => format!("{base}_day"),
            Transform::Hour => format!("{base}_hour"),
            Transform::Bucket(_) => format!("{base}_bucket"),
            Transform::Truncate(_) => format!("{base}_trunc"),
        };
        out.push(PartitionField {
            source_id: source.id,
            field_id,
            name,
            transform,
        });
    }
    Ok(out)
}

/// Refuses keys of properties that only tarn sets (see
/// [`tarn_core::properties::set_by_tarn`]): RENAME TO and DROP TABLE, and exactly-once commits
/// (an application's last sequence number). Such properties are state of one table, not
/// part of its definition.
pub(crate) fn refuse_internal_properties<'a>(
    keys: impl IntoIterator<Item = &'a String>,
) -> Result<()> {
    for key in keys {
        if tarn_core::properties::set_by_tarn(key) {
            return Err(DataFusionError::Plan(format!(
                "table property '{key}' is set by tarn itself; it cannot be set or removed"
            )));
        }
    }
    Ok(())
}

/// Table properties from `WITH (...)` or `TBLPROPERTIES (...)`.
pub fn properties(table_options: &CreateTableOptions) -> Result<BTreeMap<String, String>> {
    let list = match table_options {
        CreateTableOptions::None => return Ok(BTreeMap::new()),
        CreateTableOptions::With(o)
        | CreateTableOptions::TableProperties(o)
        | CreateTableOptions::Options(o)
        | CreateTableOptions::Plain(o) => o,
    };
    let properties = options(list)?;
    refuse_internal_properties(properties.keys())?;
    Ok(properties)
}

/// `'key' = 'value'` pairs, as in `WITH (...)` or `SET TBLPROPERTIES (...)`.
pub fn options(list: &[SqlOption]) -> Result<BTreeMap<String, String>> {
    list.iter()
        .map(|option| match option {
            SqlOption::KeyValue { key, value } => Ok((key.value.clone(), literal_text(value))),
            other => Err(DataFusionError::Plan(format!(
                "table option '{other}' is not a 'key' = 'value' pair"
            ))),
        })
        .collect()
}

fn literal_text(expr: &SqlExpr) -> String {
    match expr {
        SqlExpr::Value(v) => match &v.value {
            SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        SqlExpr::Identifier(i) => i.value.clone(),
        other => other.to_string(),
    }
}

/// The value of a column DEFAULT: a constant expression of the column's type, folded now.
/// `None` for NULL. Expressions that read columns, or whose value depends on when or how
/// often they run (`random()`, `now()`), are refused: a default is stored once, as a value.
pub(crate) fn constant_default(
    state: &SessionState,
    expr: &SqlExpr,
    ty: PrimitiveType,
    column: &str,
) -> Result<Option<Value>> {
    let written = crate::parse::as_written(expr);
    let refuse = |why: String| {
        DataFusionError::Plan(format!(
            "the DEFAULT of '{column}' must be a constant of its type {ty}: {why}"
        ))
    };
    let planned = state
        .create_logical_expr_from_sql_expr(
            ExprWithAlias {
                expr: expr.clone(),
                alias: None,
            },
            &DFSchema::empty(),
        )
        .map_err(|e| refuse(format!("'{written}' is not a constant expression ({e})")))?;
    let planned =
        crate::checked_arithmetic::coerced_and_checked(state, planned, &DFSchema::empty())
            .map_err(|e| refuse(format!("'{written}' is not a constant expression ({e})")))?;
    let changing = planned
        .exists(|e| {
            Ok(matches!(e, Expr::ScalarFunction(f)
                if f.func.signature().volatility != Volatility::Immutable))
        })
        .unwrap_or(true);
    if changing {
        return Err(refuse(format!(
            "'{written}' gives a different value each time it runs"
        )));
    }
    let physical = state.create_physical_expr(planned, &DFSchema::empty())?;
    let one_row = RecordBatch::try_new_with_options(
        Arc::new(ArrowSchema::empty()),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )?;
    let scalar = match physical.evaluate(&one_row)? {
        ColumnarValue::Scalar(s) => s,
        ColumnarValue::Array(a) => ScalarValue::try_from_array(&a, 0)?,
    };
    if scalar.is_null() {
        return Ok(None);
    }
    let target = tarn_core::arrow_convert::arrow_type(ty);
    let cast = scalar
        .cast_to(&target)
        .map_err(|e| refuse(format!("'{written}' cannot be stored as {ty} ({e})")))?;
    let finite = |s: &ScalarValue| match s {
        ScalarValue::Float32(Some(v)) => v.is_finite(),
        ScalarValue::Float64(Some(v)) => v.is_finite(),
        _ => true,
    };
    // A number that becomes infinite did not fit ('NaN' and 'Infinity' are meant).
    if scalar.data_type().is_numeric() && finite(&scalar) && !finite(&cast) {
        return Err(refuse(format!("'{written}' is out of range for {ty}")));
    }
    from_scalar(ty, &cast)
        .map(Some)
        .ok_or_else(|| refuse(format!("'{written}' cannot be stored as {ty}")))
}

impl TarnContext {
    /// Handles DDL on tarn objects; `None` for everything else.
    pub(crate) async fn ddl(
        &self,
        statement: &Statement,
        partition_by: &[SqlExpr],
    ) -> Result<Option<DataFrame>> {
        match statement {
            Statement::ShowCreate {
                obj_type: ShowCreateObject::Table,
                obj_name,
            } => self.show_create_table(obj_name).await,
            Statement::ShowSchemas { show_options, .. }
            | Statement::ShowDatabases { show_options, .. } => {
                self.show_namespaces(show_options).await.map(Some)
            }
            Statement::CreateTable(create) => {
                let name = self.qualify(&create.name)?;
                if name.catalog != self.catalog_name() {
                    return Ok(None);
                }
                let mut items = partition_by.to_vec();
                if let Some(expr) = &create.partition_by {
                    items.extend(flatten_tuple(expr));
                }
                self.create_table(create, &name, &items).await.map(Some)
            }
            Statement::CreateSchema {
                schema_name,
                if_not_exists,
                ..
            } => {
                let SchemaName::Simple(name) = schema_name else {
                    return Err(DataFusionError::NotImplemented(
                        "CREATE SCHEMA ... AUTHORIZATION".into(),
                    ));
                };
                let p = parts(name)?;
                let namespace = match p.as_slice() {
                    [ns] => ns.clone(),
                    [c, ns] if c == self.catalog_name() => ns.clone(),
                    _ => return Ok(None),
                };
                self.catalog()
                    .create_namespace(&namespace, *if_not_exists)
                    .await?;
                self.done().await.map(Some)
            }
            Statement::Drop {
                object_type: ObjectType::Table,
                if_exists,
                names,
                ..
            } => {
                for n in names {
                    let name = self.qualify(n)?;
                    if name.catalog != self.catalog_name() {
                        return Ok(None);
                    }
                    self.drop_table(&name, *if_exists).await?;
                }
                self.done().await.map(Some)
            }
            Statement::Drop {
                object_type: ObjectType::View,
                names,
                ..
            } => {
                // DataFusion drops views; a table's name is refused by what it is.
                for n in names {
                    let name = self.qualify(n)?;
                    if name.catalog != self.catalog_name() || self.is_view(&name) {
                        continue;
                    }
                    if let Ok(Some(_)) = self.catalog().load(&name.namespace, &name.table).await {
                        return Err(DataFusionError::Plan(format!(
                            "'{}.{}' is a table, not a view; drop it with DROP TABLE",
                            name.namespace, name.table
                        )));
                    }
                }
                Ok(None)
            }
            Statement::Drop {
                object_type: ObjectType::Schema,
                if_exists,
                names,
                cascade,
                ..
            } => {
                for n in names {
                    let p = parts(n)?;
                    let ns = p.last().cloned().unwrap_or_default();
                    if *cascade {
                        self.drop_tables_of(&ns).await?;
                    }
                    self.catalog().drop_namespace(&ns, *if_exists).await?;
                }
                self.done().await.map(Some)
            }
            _ => Ok(None),
        }
    }

    /// `SHOW SCHEMAS [LIKE 'pattern']` (or `SHOW DATABASES`, Spark's spelling): the
    /// namespaces of the warehouse, as the shell's `\dn` lists them.
    async fn show_namespaces(&self, options: &ShowStatementOptions) -> Result<DataFrame> {
        let unsupported = || {
            DataFusionError::Plan(format!(
                "SHOW SCHEMAS takes no options but LIKE 'pattern' or ILIKE 'pattern', not \
                 '{}'; information_schema.schemata holds the same names",
                options.to_string().trim()
            ))
        };
        let filter = match &options.filter_position {
            None => String::new(),
            Some(
                ShowStatementFilterPosition::Infix(filter)
                | ShowStatementFilterPosition::Suffix(filter),
            ) => match filter {
                ShowStatementFilter::Like(p) => {
                    format!(" AND schema_name LIKE {}", string_literal(p))
                }
                ShowStatementFilter::ILike(p) => {
                    format!(" AND schema_name ILIKE {}", string_literal(p))
                }
                _ => return Err(unsupported()),
            },
        };
        if options.show_in.is_some()
            || options.starts_with.is_some()
            || options.limit.is_some()
            || options.limit_from.is_some()
        {
            return Err(unsupported());
        }
        self.session_context()
            .sql(&format!(
                "SELECT schema_name AS namespace FROM information_schema.schemata \
                 WHERE catalog_name = {} AND schema_name <> 'information_schema'{filter} \
                 ORDER BY 1",
                string_literal(self.catalog_name())
            ))
            .await
    }

    /// `SHOW CREATE TABLE t` of a tarn table: DataFusion's columns, with the statement that
    /// makes a table like it (columns, defaults, comments, the current partition spec and the
    /// properties); `None` for any other table.
    async fn show_create_table(&self, name: &ObjectName) -> Result<Option<DataFrame>> {
        let name = self.qualify(name)?;
        if name.catalog != self.catalog_name() {
            return Ok(None);
        }
        let Some(table) = self.catalog().load(&name.namespace, &name.table).await? else {
            return Ok(None);
        };
        let definition = create_statement(&name, table.table().metadata());
        let column = |s: &str| Arc::new(StringArray::from(vec![s.to_string()])) as ArrayRef;
        let batch = RecordBatch::try_from_iter([
            ("table_catalog", column(&name.catalog)),
            ("table_schema", column(&name.namespace)),
            ("table_name", column(&name.table)),
            ("definition", column(&definition)),
        ])?;
        self.session_context().read_batch(batch).map(Some)
    }

    async fn create_table(
        &self,
        create: &datafusion::sql::sqlparser::ast::CreateTable,
        name: &QualifiedName,
        partition_by: &[SqlExpr],
    ) -> Result<DataFrame> {
        if create.or_replace && create.if_not_exists {
            return Err(DataFusionError::Plan(
                "CREATE OR REPLACE TABLE ... IF NOT EXISTS: the two contradict each other; \
                 write one of them"
                    .into(),
            ));
        }
        if let Some(like) = &create.like {
            return self
                .create_table_like(create, name, like, partition_by)
                .await;
        }
        self.catalog().require_namespace(&name.namespace).await?;
        let warehouse = self.catalog().warehouse();
        // The table a CREATE OR REPLACE replaces, loaded before its query is planned: should
        // the query read the table, a commit between the two makes the replacement conflict
        // rather than replace rows the query did not see.
        let replaced = match create.or_replace {
            true => self.catalog().load(&name.namespace, &name.table).await?,
            false => None,
        };
        let query = match &create.query {
            None => None,
            Some(query) => {
                let mut query = query.clone();
                name_expressions_as_written(&mut query.body);
                let plan = self
                    .session_context()
                    .state()
                    .statement_to_plan(DFStatement::Statement(Box::new(Statement::Query(query))))
                    .await?;
                Some(self.session_context().execute_logical_plan(plan).await?)
            }
        };
        let definition = match &query {
            None => {
                let mut definition =
                    definition(create, partition_by, &self.session_context().state())?;
                definition.properties = self.table_properties(definition.properties);
                definition
            }
            Some(df) => {
                if !create.columns.is_empty() {
                    return Err(DataFusionError::Plan("CREATE TABLE ... AS SELECT takes its columns from the query; drop the column list".into()));
                }
                let fields = fields_of(df.schema().as_arrow())?;
                let partition_fields = partition_fields(partition_by, &fields)?;
                tarn_core::TableDefinition {
                    fields,
                    partition_fields,
                    properties: self.table_properties(properties(&create.table_options)?),
                }
            }
        };
        if let Some(replaced) = replaced {
            return self
                .replace_table(name, replaced.table(), definition, query)
                .await;
        }
        let Some(df) = query else {
            match warehouse
                .create_table(&name.namespace, &name.table, definition)
                .await
            {
                Ok(_) => {}
                // The create is the existence check: put-if-absent of version 0.
                Err(tarn_core::Error::AlreadyExists { .. }) if create.if_not_exists => {}
                Err(e) => return Err(to_df(e)),
            }
            if let Some(schema) = self.catalog().tarn_schema(&name.namespace) {
                schema.note_created(&name.table);
            }
            return self.done().await;
        };
        // The table is staged: the commit of its rows creates it, so a statement that fails,
        // is cancelled or is killed before then leaves no table behind.
        let staged = match warehouse
            .stage_table(&name.namespace, &name.table, definition)
            .await
        {
            Ok(table) => table,
            Err(tarn_core::Error::AlreadyExists { .. }) if create.if_not_exists => {
                return self.done().await;
            }
            Err(e) => return Err(to_df(e)),
        };
        // Cancelled (the statement's future dropped, as Ctrl-C in the shell does) after its
        // commit created the table but before the rows committed: take the table back out,
        // as a failure does below.
        let mut uncreate = Uncreate {
            table: Some((warehouse.clone(), staged.clone())),
            schema: self
                .catalog()
                .tarn_schema(&name.namespace)
                .map(|schema| (schema, name.table.clone())),
            cleanups: self.cleanups.clone(),
        };
        let written = match self.write_new_table(name, staged.clone(), df).await {
            // No rows, so no commit: the table is created now, empty.
            Ok(batches) if !committed(&batches) => staged
                .create_staged()
                .await
                .map(|created| created_version(batches, &created))
                .map_err(to_df),
            written => written,
        };
        uncreate.table = None;
        let schema = self.catalog().tarn_schema(&name.namespace);
        match written {
            Ok(batches) => {
                if let Some(schema) = schema {
                    schema.note_created(&name.table);
                }
                Ok(self.session_context().read_batches(batches)?)
            }
            Err(e) => match take_back(warehouse, &staged).await {
                Ok(()) => Err(e),
                Err(cleanup) => Err(DataFusionError::Plan(format!(
                    "CREATE TABLE {} AS failed ({e}), and removing the half-created table \
                     failed too ({cleanup}); drop it with DROP TABLE",
                    name.short()
                ))),
            },
        }
    }

    /// `CREATE OR REPLACE TABLE t ...` of an existing table: one commit gives it the new
    /// definition and the query's rows (none without a query), keeping its history. A
    /// statement that fails, is cancelled or loses to a concurrent commit leaves the table
    /// as it was.
    async fn replace_table(
        &self,
        name: &QualifiedName,
        table: &tarn_core::Table,
        definition: tarn_core::TableDefinition,
        query: Option<DataFrame>,
    ) -> Result<DataFrame> {
        let replacement = table.replacement(definition).map_err(to_df)?;
        let no_rows = async {
            let summary = BTreeMap::from([(
                "statement".to_string(),
                crate::write::REPLACE_STATEMENT.to_string(),
            )]);
            let nothing = tarn_core::Change::Append { files: vec![] };
            (replacement.commit_with_summary(nothing, summary).await).map_err(to_df)
        };
        let Some(df) = query else {
            no_rows.await?;
            return self.done().await;
        };
        let batches = self.write_new_table(name, replacement.clone(), df).await?;
        let batches = match committed(&batches) {
            true => batches,
            false => created_version(batches, &no_rows.await?),
        };
        self.session_context().read_batches(batches)
    }

    /// Writes the rows of `df` into `table`, which CREATE [OR REPLACE] TABLE AS made for
    /// `name` (staged, or a replacement) and the write finds under that name.
    async fn write_new_table(
        &self,
        name: &QualifiedName,
        table: tarn_core::Table,
        df: DataFrame,
    ) -> Result<Vec<RecordBatch>> {
        let target = format!(
            "{}.{}.{}",
            quote(self.catalog_name()),
            quote(&name.namespace),
            quote(&name.table)
        );
        let write = df.write_table(&target, DataFrameWriteOptions::new());
        crate::catalog::with_staged(&name.namespace, &name.table, table, write).await
    }

    /// `CREATE TABLE [IF NOT EXISTS] t LIKE s`, or PostgreSQL's `(LIKE s)`: a new, empty
    /// table made by the statement SHOW CREATE TABLE gives for `s` (columns with their
    /// defaults and comments, partitioning, properties).
    async fn create_table_like(
        &self,
        create: &CreateTable,
        name: &QualifiedName,
        like: &CreateTableLikeKind,
        partition_by: &[SqlExpr],
    ) -> Result<DataFrame> {
        let (CreateTableLikeKind::Plain(like) | CreateTableLikeKind::Parenthesized(like)) = like;
        let alone = create.query.is_none()
            && create.columns.is_empty()
            && partition_by.is_empty()
            && matches!(create.table_options, CreateTableOptions::None)
            && like.defaults != Some(CreateTableLikeDefaults::Excluding);
        if !alone {
            return Err(DataFusionError::Plan(
                "CREATE TABLE ... LIKE copies the other table's columns (with their defaults), \
                 partitioning and properties, and takes nothing besides; change the new table \
                 with ALTER TABLE"
                    .into(),
            ));
        }
        let source = self.qualify(&like.name)?;
        let table = match source.catalog == self.catalog_name() {
            true => {
                self.catalog()
                    .load(&source.namespace, &source.table)
                    .await?
            }
            false => None,
        };
        let Some(table) = table else {
            return Err(DataFusionError::Plan(format!(
                "CREATE TABLE ... LIKE {}: no such tarn table",
                like.name
            )));
        };
        let mut statement = create_statement(name, table.table().metadata());
        if create.if_not_exists {
            statement = statement.replacen("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1);
        }
        if create.or_replace {
            statement = statement.replacen("CREATE TABLE", "CREATE OR REPLACE TABLE", 1);
        }
        Box::pin(self.sql(&statement)).await
    }

    /// Whether `name` is a view this session created.
    fn is_view(&self, name: &QualifiedName) -> bool {
        self.catalog()
            .tarn_schema(&name.namespace)
            .is_some_and(|schema| schema.is_view(&name.table))
    }

    /// `DROP SCHEMA ns CASCADE`: drops the namespace's tables one by one (each as DROP
    /// TABLE does), so that the namespace can go; if one fails, those dropped before it stay
    /// dropped. A namespace that does not exist holds nothing to drop.
    async fn drop_tables_of(&self, namespace: &str) -> Result<()> {
        let tables = match self.catalog().warehouse().list_tables(namespace).await {
            Ok(tables) => tables,
            Err(tarn_core::Error::NamespaceNotFound { .. }) => return Ok(()),
            Err(e) => return Err(to_df(e)),
        };
        for table in tables {
            let name = QualifiedName {
                catalog: self.catalog_name().to_string(),
                namespace: namespace.to_string(),
                table,
            };
            self.drop_table(&name, true).await?;
        }
        Ok(())
    }

    async fn drop_table(&self, name: &QualifiedName, if_exists: bool) -> Result<()> {
        if self.is_view(name) {
            return Err(DataFusionError::Plan(format!(
                "'{}.{}' is a view, not a table; drop it with DROP VIEW",
                name.namespace, name.table
            )));
        }
        let schema = self.catalog().tarn_schema(&name.namespace);
        if let Some(schema) = &schema
            && schema.is_external(&name.table)
        {
            use datafusion::catalog::SchemaProvider;
            schema.deregister_table(&name.table)?;
            return Ok(());
        }
        match self
            .catalog()
            .warehouse()
            .drop_table(&name.namespace, &name.table)
            .await
        {
            Ok(()) => {}
            Err(
                tarn_core::Error::TableNotFound { .. } | tarn_core::Error::NamespaceNotFound { .. },
            ) if if_exists => {}
            Err(e) => return Err(to_df(e)),
        }
        if let Some(schema) = schema {
            schema.note_dropped(&name.table);
        }
        Ok(())
    }
}

fn flatten_tuple(expr: &SqlExpr) -> Vec<SqlExpr> {
    match expr {
        SqlExpr::Tuple(items) => items.clone(),
        SqlExpr::Nested(inner) => flatten_tuple(inner),
        other => vec![other.clone()],
    }
}

/// A table CREATE TABLE AS staged, to take back (see [`take_back`]) if the statement is
/// cancelled after its commit created the table. The session finishes this before its next
/// statement.
struct Uncreate {
    table: Option<(tarn_core::Warehouse, tarn_core::Table)>,
    /// The session's listing of the namespace, and the table's name in it.
    schema: Option<(Arc<crate::catalog::TarnSchema>, String)>,
    cleanups: Arc<crate::commit::Cleanups>,
}

impl Drop for Uncreate {
    fn drop(&mut self) {
        if let Some((warehouse, staged)) = self.table.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let schema = self.schema.take();
            let cleanup = runtime.spawn(async move {
                if take_back(&warehouse, &staged).await.is_ok()
                    && let Some((schema, name)) = schema
                {
                    schema.note_dropped(&name);
                }
            });
            self.cleanups.push(cleanup);
        }
    }
}

/// Drops the table `staged` became if its commit created it (version 0) but the statement
/// did not finish: only if nothing was committed to it since, so a table made again under
/// the name, or written to by another session, stays, and this returns a conflict.
async fn take_back(
    warehouse: &tarn_core::Warehouse,
    staged: &tarn_core::Table,
) -> tarn_core::Result<()> {
    let now = staged.reload().await?;
    if now.is_staged() {
        return Ok(());
    }
    let created = match now.version() {
        tarn_spec::Version(0) => now,
        _ => now.at_version(tarn_spec::Version(0)).await?,
    };
    warehouse.drop_table_at(&created).await
}

/// Whether a write's result says it committed a version.
fn committed(batches: &[RecordBatch]) -> bool {
    batches
        .iter()
        .any(|batch| batch.schema().metadata().contains_key(VERSION_METADATA_KEY))
}

/// A CREATE [OR REPLACE] TABLE AS whose query returned no rows committed nothing through its
/// write: its count still names the version the table is now at (the create's, or the
/// replacement's), not "unchanged".
fn created_version(batches: Vec<RecordBatch>, created: &tarn_core::Table) -> Vec<RecordBatch> {
    batches
        .into_iter()
        .map(|batch| {
            let schema = batch.schema();
            if !schema.metadata().contains_key(TABLE_METADATA_KEY)
                || schema.metadata().contains_key(VERSION_METADATA_KEY)
            {
                return batch;
            }
            let mut metadata = schema.metadata().clone();
            metadata.insert(
                VERSION_METADATA_KEY.to_string(),
                created.version().get().to_string(),
            );
            let schema = Arc::new(schema.as_ref().clone().with_metadata(metadata));
            batch
                .with_schema(schema)
                .expect("only the metadata differs")
        })
        .collect()
}

/// The CREATE TABLE statement that makes a table like the one `metadata` describes.
fn create_statement(name: &QualifiedName, metadata: &tarn_spec::TableMetadata) -> String {
    let schema = metadata.current_schema();
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| {
            let mut column = format!("  {} {}", quote(&f.name), sql_column_type(&f.field_type));
            if f.required {
                column.push_str(" NOT NULL");
            }
            if let (Some(ty), Some(default)) = (f.primitive(), f.write_default.as_ref()) {
                column.push_str(&format!(" DEFAULT {}", sql_literal(ty, default)));
            }
            if let Some(doc) = &f.doc {
                column.push_str(&format!(" COMMENT {}", string_literal(doc)));
            }
            column
        })
        .collect();
    let mut statement = format!(
        "CREATE TABLE {}.{} (\n{}\n)",
        quote(&name.namespace),
        quote(&name.table),
        columns.join(",\n")
    );
    let items = partition_items(metadata);
    if !items.is_empty() {
        statement.push_str(&format!("\nPARTITIONED BY ({})", items.join(", ")));
    }
    let properties: Vec<String> = metadata
        .properties()
        .iter()
        .filter(|(k, _)| !tarn_core::properties::set_by_tarn(k))
        .map(|(k, v)| format!("{} = {}", string_literal(k), string_literal(v)))
        .collect();
    if !properties.is_empty() {
        statement.push_str(&format!("\nWITH ({})", properties.join(", ")));
    }
    statement
}

/// The items of the table's current partitioning as `PARTITIONED BY` takes them:
/// `bucket(4, "id")`, `day("ts")`, `"region"`.
pub(crate) fn partition_items(metadata: &tarn_spec::TableMetadata) -> Vec<String> {
    let schema = metadata.current_schema();
    (metadata.default_spec().fields().iter())
        .map(|pf| {
            let source = schema
                .path_name(pf.source_id)
                .map(|path| path.split('.').map(quote).collect::<Vec<_>>().join("."))
                .unwrap_or_default();
            match pf.transform {
                Transform::Identity => source,
                Transform::Bucket(n) => format!("bucket({n}, {source})"),
                Transform::Truncate(w) => format!("truncate({w}, {source})"),
                other => format!("{other}({source})"),
            }
        })
        .collect()
}
