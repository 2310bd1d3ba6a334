//! The scan of a table version that expired while its statement was being planned.
//!
//! Snapshot expiry can remove a version (and the objects only it referenced) between the
//! moment a statement loads it and the moment the statement's scan reads its manifests.
//! Logical planning and commits run again on the newest version when that happens; the scan
//! is planned in between, by DataFusion's physical planner, which cannot. So a scan whose
//! manifests are gone with its version plans as this node, which fails with that error when
//! it runs: inside a DELETE, UPDATE or MERGE, where the commit runs the statement again on
//! the newest version, as it does for a version that expires while the statement runs. A
//! query fails with the same error it would have failed with while planning.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};

/// A scan that fails, when it runs, with the error its planning met.
#[derive(Debug)]
pub(crate) struct ExpiredScanExec {
    error: Arc<DataFusionError>,
    properties: Arc<PlanProperties>,
}

impl ExpiredScanExec {
    pub(crate) fn new(schema: SchemaRef, error: DataFusionError) -> Self {
        ExpiredScanExec {
            error: Arc::new(error),
            properties: Arc::new(PlanProperties::new(
                EquivalenceProperties::new(schema),
                Partitioning::UnknownPartitioning(1),
                EmissionType::Incremental,
                Boundedness::Bounded,
            )),
        }
    }
}

impl DisplayAs for ExpiredScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TarnExpiredScanExec: {}", self.error)
    }
}

impl ExecutionPlan for ExpiredScanExec {
    fn name(&self) -> &str {
        "TarnExpiredScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        Err(DataFusionError::Shared(self.error.clone()))
    }
}
