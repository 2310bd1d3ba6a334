//! `TarnSink`: INSERT and INSERT OVERWRITE write data files and commit once, when the plan
//! executes (never during planning, so EXPLAIN writes nothing).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::sink::DataSink;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use futures::StreamExt;
use tarn_core::{Change, OverwriteScope, Table};

use crate::error::to_df;

/// Table property choosing what INSERT OVERWRITE replaces: `static` (the whole table, the
/// default) or `dynamic` (only the partitions the new rows fall in).
pub const OVERWRITE_MODE_PROPERTY: &str = "write.overwrite-mode";

/// What INSERT OVERWRITE replaces under these table properties.
pub(crate) fn overwrite_scope(
    properties: &std::collections::BTreeMap<String, String>,
) -> Result<OverwriteScope> {
    match properties.get(OVERWRITE_MODE_PROPERTY).map(String::as_str) {
        None | Some("static") => Ok(OverwriteScope::Table),
        Some("dynamic") => Ok(OverwriteScope::Partitions),
        Some(other) => Err(DataFusionError::Plan(format!(
            "table property {OVERWRITE_MODE_PROPERTY} is '{other}'; it must be 'static' or 'dynamic'"
        ))),
    }
}

#[derive(Debug)]
pub struct TarnSink {
    table: Table,
    name: String,
    schema: SchemaRef,
    op: InsertOp,
    scope: OverwriteScope,
}

impl TarnSink {
    pub fn new(table: Table, name: String, schema: SchemaRef, op: InsertOp) -> Result<Self> {
        if op == InsertOp::Replace {
            return Err(DataFusionError::NotImplemented(
                "REPLACE INTO is not supported on tarn tables; use MERGE INTO".into(),
            ));
        }
        let scope = overwrite_scope(table.metadata().properties())?;
        Ok(TarnSink {
            table,
            name,
            schema,
            op,
            scope,
        })
    }
}

impl DisplayAs for TarnSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            InsertOp::Append => "append",
            InsertOp::Overwrite => "overwrite",
            InsertOp::Replace => "replace",
        };
        write!(f, "TarnSink: table={} op={op}", self.name)
    }
}

#[async_trait]
impl DataSink for TarnSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        mut data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let mut writer = self.table.writer().map_err(to_df)?;
        let mut rows = 0u64;
        while let Some(batch) = data.next().await {
            let batch = batch?;
            rows += batch.num_rows() as u64;
            writer.write(&batch).await.map_err(to_df)?;
        }
        let files = writer.finish().await.map_err(to_df)?;
        // An INSERT of no rows changes nothing and commits no version (as a DELETE that
        // matches nothing); an OVERWRITE with no rows still replaces the data.
        if rows == 0 && self.op != InsertOp::Overwrite {
            return Ok(0);
        }
        let change = match self.op {
            InsertOp::Overwrite => Change::Overwrite {
                files,
                scope: self.scope,
            },
            _ => Change::Append { files },
        };
        let extra = BTreeMap::from([("statement".to_string(), "insert".to_string())]);
        self.table
            .commit_with_summary(change, extra)
            .await
            .map_err(to_df)?;
        Ok(rows)
    }
}
