//! Views that read their tables as they are when a statement reads the view.
//!
//! DataFusion's `ViewTable` keeps the plan it was created with, and in it the table
//! providers of that moment. A tarn table's provider is one version of the table, so such a
//! view would read the version it was created on for the rest of the session. A
//! [`LiveView`] keeps the same plan, but each time a statement reads it, binds the tarn
//! tables in it (metadata tables too) again by name, as the statement binds its own: the
//! newest version, or the version a time-travel name pins. A prepared statement keeps a plan
//! the same way, and [`bind_again`] does the same for each `EXECUTE`.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::view::ViewTable;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::common::{Column, TableReference};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{
    Expr, LogicalPlan, LogicalPlanBuilder, TableProviderFilterPushDown, TableSource, TableType,
};
use datafusion::physical_plan::ExecutionPlan;

use crate::metadata_tables::MetadataProvider;
use crate::provider::TarnTable;

/// A view whose tarn tables are bound again whenever it is read.
#[derive(Debug)]
pub(crate) struct LiveView {
    plan: LogicalPlan,
    schema: SchemaRef,
}

impl LiveView {
    pub fn new(view: &ViewTable) -> Self {
        LiveView {
            plan: view.logical_plan().clone(),
            schema: view.schema(),
        }
    }
}

/// What keeps a plan to run later, for errors.
#[derive(Clone, Copy)]
pub(crate) enum Kept {
    View,
    Prepared,
}

impl Kept {
    fn name(self) -> &'static str {
        match self {
            Kept::View => "view",
            Kept::Prepared => "prepared statement",
        }
    }

    fn remedy(self) -> &'static str {
        match self {
            Kept::View => "create the view again (CREATE OR REPLACE VIEW)",
            Kept::Prepared => "prepare it again (DEALLOCATE, then PREPARE)",
        }
    }
}

/// `plan` with every tarn table in it loaded again, by the name it was read by, in `state`.
pub(crate) async fn bind_again(
    plan: &LogicalPlan,
    state: &SessionState,
    kept: Kept,
) -> Result<LogicalPlan> {
    let mut names: Vec<TableReference> = Vec::new();
    plan.apply_with_subqueries(|node| {
        let read = match node {
            LogicalPlan::TableScan(scan) => Some((&scan.table_name, &scan.source)),
            // The table a prepared DELETE, UPDATE, MERGE or INSERT writes.
            LogicalPlan::Dml(dml) => Some((&dml.table_name, &dml.target)),
            _ => None,
        };
        if let Some((name, source)) = read
            && is_tarn(source)
            && !names.contains(name)
        {
            names.push(name.clone());
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    if names.is_empty() {
        return Ok(plan.clone());
    }
    let options = state.config_options();
    // One source per table, shared by its scans and a write's target: row-level DML finds
    // the scan of the table it changes by that identity.
    let mut fresh: HashMap<TableReference, Arc<dyn TableSource>> = HashMap::new();
    for name in names {
        let resolved = name.clone().resolve(
            &options.catalog.default_catalog,
            &options.catalog.default_schema,
        );
        let gone = || {
            DataFusionError::Plan(format!(
                "the {} reads table '{name}', which no longer exists; {}",
                kept.name(),
                kept.remedy()
            ))
        };
        let schema = state
            .catalog_list()
            .catalog(&resolved.catalog)
            .and_then(|c| c.schema(&resolved.schema))
            .ok_or_else(gone)?;
        let provider = schema.table(&resolved.table).await?.ok_or_else(gone)?;
        fresh.insert(name, provider_as_source(provider));
    }
    plan.clone()
        .transform_up_with_subqueries(|node| match node {
            LogicalPlan::Dml(mut dml) => {
                let Some(source) = fresh.get(&dml.table_name) else {
                    return Ok(Transformed::no(LogicalPlan::Dml(dml)));
                };
                if source.schema().fields() != dml.target.schema().fields() {
                    return Err(DataFusionError::Plan(format!(
                        "the columns of table '{}', which a {} writes, changed after it was \
                         made; {}",
                        dml.table_name,
                        kept.name(),
                        kept.remedy()
                    )));
                }
                dml.target = source.clone();
                Ok(Transformed::yes(LogicalPlan::Dml(dml)))
            }
            LogicalPlan::TableScan(mut scan) => {
                let Some(source) = fresh.get(&scan.table_name) else {
                    return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
                };
                // The columns the plan reads must be where they were (columns added since
                // are left out); any other change needs the plan made again.
                let (before, now) = (scan.source.schema(), source.schema());
                let read = scan
                    .projection
                    .clone()
                    .unwrap_or_else(|| (0..before.fields().len()).collect());
                if !read
                    .iter()
                    .all(|&i| now.fields().get(i) == before.fields().get(i))
                {
                    return Err(DataFusionError::Plan(format!(
                        "columns of table '{}' that a {} reads changed after it was made; {}",
                        scan.table_name,
                        kept.name(),
                        kept.remedy()
                    )));
                }
                scan.projection = Some(read);
                scan.source = source.clone();
                Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
            }
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
}

/// Whether a scan reads a tarn table or one of its metadata tables: the sources a view binds
/// again.
fn is_tarn(source: &Arc<dyn TableSource>) -> bool {
    source_as_provider(source).is_ok_and(|p| p.is::<TarnTable>() || p.is::<MetadataProvider>())
}

#[async_trait]
impl TableProvider for LiveView {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Exact; filters.len()])
    }

    /// A view holds no rows of its own (DataFusion would say "Insert into not implemented
    /// for this table").
    async fn insert_into(
        &self,
        _state: &dyn Session,
        _input: Arc<dyn ExecutionPlan>,
        _insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Err(DataFusionError::Plan(
            "a view cannot be written to; INSERT into the table it reads".into(),
        ))
    }

    /// As DataFusion's `ViewTable::scan`, over the plan bound afresh.
    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let session = state
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| DataFusionError::Internal("a view read outside a session".into()))?;
        let plan = bind_again(&self.plan, session, Kept::View).await?;
        let schema = plan.schema().clone();
        let mut builder = LogicalPlanBuilder::from(plan);
        if let Some(filter) = filters.iter().cloned().reduce(Expr::and) {
            builder = builder.filter(filter)?;
        }
        if let Some(projection) = projection
            && *projection != (0..schema.fields().len()).collect::<Vec<_>>()
        {
            let columns = projection
                .iter()
                .map(|i| Expr::Column(Column::from(schema.qualified_field(*i))));
            builder = builder.project(columns)?;
        }
        if let Some(limit) = limit {
            builder = builder.limit(0, Some(limit))?;
        }
        state.create_physical_plan(&builder.build()?).await
    }
}
