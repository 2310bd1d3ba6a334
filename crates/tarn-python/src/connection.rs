//! `tarn.connect(warehouse)`: SQL on a warehouse, as the shell runs it.

use std::collections::BTreeMap;

use pyo3::prelude::*;
use tarn_datafusion::TarnContext;

use crate::stream::RecordBatchStream;
use crate::{block_on, df_to_py};

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
    let ctx = block_on(py, TarnContext::open_with(&warehouse, &options)).map_err(df_to_py)?;
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
                let df = ctx.execute(statement).await?;
                if i == last {
                    result = Some(df.execute_stream().await?);
                } else {
                    df.collect().await?;
                }
            }
            Ok(result.expect("the last statement ran"))
        })
        .map_err(df_to_py)?;
        Ok(RecordBatchStream::new(stream, readahead))
    }

    fn __repr__(&self) -> String {
        format!("Connection({:?})", self.warehouse)
    }
}
