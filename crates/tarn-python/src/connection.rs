//! `tarn.connect(warehouse)`: SQL on a warehouse, as the shell runs it.

use std::collections::BTreeMap;

use std::sync::Arc;

use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::Statement;
use pyo3::prelude::*;
use tarn_datafusion::{ParsedStatement, TarnContext};

use crate::block_on;
use crate::stream::RecordBatchStream;

/// A session on a warehouse: every statement the `tarn` shell runs, results as Arrow.
#[pyclass(module = "tarn._tarn", frozen)]
pub struct Connection {
    ctx: TarnContext,
    warehouse: String,
}

/// Opens the warehouse at `warehouse` (a path or a URL; `storage_options` configure its
/// object store as the shell's options do).
#[pyfunction]
#[pyo3(signature = (warehouse, storage_options = None))]
pub fn connect(
    py: Python<'_>,
    warehouse: String,
    storage_options: Option<BTreeMap<String, String>>,
) -> PyResult<Connection> {
    let options = storage_options.unwrap_or_default();
    let ctx = block_on(py, TarnContext::open_with(&warehouse, &options))?;
    Ok(Connection { ctx, warehouse })
}

#[pymethods]
impl Connection {
    /// Runs `query` (one statement or several separated by `;`) and returns the result of
    /// the last as a stream, read `readahead` batches ahead. Statements before it run to
    /// completion first; DDL and DML commit before this returns.
    #[pyo3(signature = (query, readahead = 2))]
    fn sql(&self, py: Python<'_>, query: &str, readahead: usize) -> PyResult<RecordBatchStream> {
        let ctx = self.ctx.clone();
        let stream = block_on(py, async move {
            let statements = ctx.parse(query)?;
            let Some(last) = statements.len().checked_sub(1) else {
                return Err(datafusion::error::DataFusionError::Plan(
                    "no SQL statement given".into(),
                ));
            };
            let mut result = None;
            for (i, statement) in statements.into_iter().enumerate() {
                let query = is_query(&statement);
                let df = ctx.execute(statement).await?;
                if i < last {
                    df.collect().await?;
                } else if query {
                    result = Some(df.execute_stream().await?);
                } else {
                    // Anything else (DML, DDL, EXPLAIN) has run when this returns.
                    let schema = Arc::new(df.schema().as_arrow().clone());
                    let batches = df.collect().await?;
                    let stream = futures::stream::iter(batches.into_iter().map(Ok));
                    result = Some(Box::pin(RecordBatchStreamAdapter::new(schema, stream)) as _);
                }
            }
            Ok(result.expect("the last statement ran"))
        })?;
        Ok(RecordBatchStream::new(stream, readahead))
    }

    fn __repr__(&self) -> String {
        format!("Connection({:?})", self.warehouse)
    }
}

/// Whether `statement` is a query, whose rows are streamed as they are read.
fn is_query(statement: &ParsedStatement) -> bool {
    matches!(statement.statement(), DFStatement::Statement(s) if matches!(**s, Statement::Query(_)))
}
