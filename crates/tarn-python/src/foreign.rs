//! A tarn table for a foreign DataFusion session (datafusion-python, through
//! `datafusion-ffi`).
//!
//! Plans cross the boundary, but the session's runtime does not: the task context a
//! foreign session hands to `execute` has a default runtime, without the table's object
//! store. So every plan this provider makes runs under the table's own runtime.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Statistics;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr, PlanProperties,
};
use tarn_datafusion::TarnTable;
use tarn_datafusion::error::to_df;

/// A tarn table for a foreign session: the version it was opened at when pinned, else
/// the newest version at each statement.
#[derive(Debug)]
pub(crate) struct ForeignTable {
    table: TarnTable,
    pinned: bool,
    runtime: Arc<RuntimeEnv>,
}

impl ForeignTable {
    pub(crate) fn new(table: TarnTable, pinned: bool, runtime: Arc<RuntimeEnv>) -> Self {
        ForeignTable {
            table,
            pinned,
            runtime,
        }
    }

    /// The table a statement reads or writes: its newest version unless pinned.
    async fn current(&self) -> Result<TarnTable> {
        if self.pinned {
            return Ok(self.table.clone());
        }
        let newest = self.table.table().reload().await.map_err(to_df)?;
        let newest = TarnTable::new(newest, self.table.name(), self.table.store_url().clone());
        // The session planned against the schema the table had when it was registered.
        if newest.schema() != self.table.schema() {
            return Err(DataFusionError::Plan(format!(
                "the schema of table {} changed after it was registered; register \
                 tarn.Table(...) again",
                self.table.name()
            )));
        }
        Ok(newest)
    }

    fn own_runtime(&self, plan: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
        Arc::new(OwnRuntimeExec {
            input: plan,
            runtime: self.runtime.clone(),
        })
    }
}

#[async_trait]
impl TableProvider for ForeignTable {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.table.get_column_default(column)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.table.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.table.statistics()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let table = self.current().await?;
        let plan = table.scan(state, projection, filters, limit).await?;
        Ok(self.own_runtime(plan))
    }

    async fn insert_into(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let table = self.current().await?;
        let plan = table.insert_into(state, input, insert_op).await?;
        Ok(self.own_runtime(plan))
    }
}

/// Runs `input` with `runtime` in place of the runtime of the task context it is given.
#[derive(Debug)]
struct OwnRuntimeExec {
    input: Arc<dyn ExecutionPlan>,
    runtime: Arc<RuntimeEnv>,
}

impl DisplayAs for OwnRuntimeExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "TarnOwnRuntimeExec")
    }
}

impl ExecutionPlan for OwnRuntimeExec {
    fn name(&self) -> &str {
        "TarnOwnRuntimeExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(OwnRuntimeExec {
            input: children.swap_remove(0),
            runtime: self.runtime.clone(),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let context = TaskContext::new(
            context.task_id(),
            context.session_id(),
            context.session_config().clone(),
            context.scalar_functions().clone(),
            context.higher_order_functions().clone(),
            context.aggregate_functions().clone(),
            context.window_functions().clone(),
            self.runtime.clone(),
        );
        self.input.execute(partition, Arc::new(context))
    }
}
