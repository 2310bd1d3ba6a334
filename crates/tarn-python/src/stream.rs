//! Query results as Arrow C streams, read ahead on the runtime.

use std::sync::{Arc, Mutex};

use arrow::ffi_stream::FFI_ArrowArrayStream;
use arrow::record_batch::{RecordBatch, RecordBatchReader};

use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;
use tarn_datafusion::error::message_of;
use tokio::sync::mpsc;

use crate::{runtime, to_py};

/// Record batches of one result, in order, readable once through the Arrow PyCapsule
/// stream interface: `pyarrow.RecordBatchReader.from_stream(s)`, `pyarrow.table(s)`,
/// polars and DuckDB take it as it is.
#[pyclass(module = "tarn._tarn", frozen)]
pub struct RecordBatchStream {
    schema: SchemaRef,
    batches: Mutex<Option<Batches>>,
}

impl RecordBatchStream {
    /// Reads `stream` on the runtime, up to `readahead` batches ahead of the reader
    /// (at least one). Dropping the reader stops the query.
    pub(crate) fn new(stream: SendableRecordBatchStream, readahead: usize) -> Self {
        let schema = plain_schema(&stream.schema());
        let (tx, rx) = mpsc::channel(readahead.max(1));
        let plain = schema.clone();
        runtime().spawn(async move {
            let mut stream = stream;
            while let Some(batch) = stream.next().await {
                let batch = batch
                    .map_err(|e| ArrowError::ExternalError(message_of(&e).into()))
                    .and_then(|b| to_plain(b, &plain));
                let failed = batch.is_err();
                // The reader is gone: stop reading.
                if tx.send(batch).await.is_err() || failed {
                    break;
                }
            }
        });
        RecordBatchStream {
            batches: Mutex::new(Some(Batches {
                schema: schema.clone(),
                rx,
            })),
            schema,
        }
    }
}

#[pymethods]
impl RecordBatchStream {
    /// The stream as an Arrow C stream capsule; a stream can be read once.
    #[pyo3(signature = (requested_schema = None))]
    pub(crate) fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        // The schema is the result's; a consumer casts if it asked for another.
        let _ = requested_schema;
        let batches = self
            .batches
            .lock()
            .map_err(to_py)?
            .take()
            .ok_or_else(|| to_py("this stream was read already; run the query again"))?;
        let stream = FFI_ArrowArrayStream::new(Box::new(batches));
        PyCapsule::new_with_value(py, stream, c"arrow_array_stream")
    }

    /// The rest of the stream as one `pyarrow.Table`.
    fn to_arrow<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        slf.py().import("pyarrow")?.call_method1("table", (slf,))
    }

    /// The schema of the batches, as an Arrow C schema capsule.
    fn __arrow_c_schema__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        schema_capsule(py, &self.schema)
    }

    fn __repr__(&self) -> String {
        let read = self.batches.lock().map(|b| b.is_none()).unwrap_or(true);
        let columns: Vec<_> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        format!(
            "RecordBatchStream(columns={columns:?}{})",
            if read { ", read" } else { "" }
        )
    }
}

/// `schema` with string and binary views as plain strings and binaries: DataFusion reads
/// into views, which many Python consumers (NumPy, pandas, pyarrow's compute kernels)
/// cannot take yet.
pub(crate) fn plain_schema(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8View => Arc::new(f.as_ref().clone().with_data_type(DataType::Utf8)),
            DataType::BinaryView => Arc::new(f.as_ref().clone().with_data_type(DataType::Binary)),
            _ => f.clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `batch` in `schema` ([`plain_schema`] of its own).
fn to_plain(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if batch.schema().as_ref() == schema.as_ref() {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| arrow::compute::cast(column, field.data_type()))
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
}

/// `schema` as an Arrow C schema capsule.
pub(crate) fn schema_capsule<'py>(
    py: Python<'py>,
    schema: &SchemaRef,
) -> PyResult<Bound<'py, PyCapsule>> {
    let schema = arrow::ffi::FFI_ArrowSchema::try_from(schema.as_ref()).map_err(to_py)?;
    PyCapsule::new_with_value(py, schema, c"arrow_schema")
}

/// The reader side of a [`RecordBatchStream`]: blocks its (non-runtime) thread for the
/// next batch.
struct Batches {
    schema: SchemaRef,
    rx: mpsc::Receiver<Result<RecordBatch, ArrowError>>,
}

impl Iterator for Batches {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rx.blocking_recv()
    }
}

impl RecordBatchReader for Batches {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}
