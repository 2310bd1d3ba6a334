//! `tarn.Table`: one table at one version.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::common::{TableReference, plan_err};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use datafusion_ffi::proto::logical_extension_codec::FFI_LogicalExtensionCodec;
use datafusion_ffi::table_provider::FFI_TableProvider;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyTuple};
use tarn_core::{Env, TableLocation};
use tarn_datafusion::error::to_df;
use tarn_datafusion::{AsOf, Shard, TarnTable};

use crate::foreign::ForeignTable;
use crate::stream::{RecordBatchStream, plain_schema, schema_capsule};
use crate::{block_on, runtime, to_py};

/// A [`Shard`] as Python sees it: `(path, (first row group, end) or None, rows)`.
type PyShard = (String, Option<(usize, usize)>, u64);

/// The DataFusion major version whose FFI this build speaks.
const DATAFUSION_MAJOR: u64 = 55;

/// A tarn table at a version: its newest when `version` is `None`.
///
/// Readable as Arrow (`pyarrow.table(t)`, `t.scan(...)`), registrable in a datafusion-python
/// session (`ctx.register_table("t", t)`), and picklable: a copy opens the same table at
/// the same version where it is unpickled. A process forked after the table was opened
/// should open it again (or unpickle a copy): the object-store client, with its pooled
/// connections to S3, belongs to the process that opened it. `TarnDataset` does so itself.
#[pyclass(module = "tarn._tarn", frozen)]
pub struct Table {
    uri: String,
    storage_options: BTreeMap<String, String>,
    /// The version asked for; `None` follows the newest.
    pinned: Option<u64>,
    table: TarnTable,
    /// The runtime the table's object store is registered in.
    runtime: Arc<RuntimeEnv>,
}

#[pymethods]
impl Table {
    #[new]
    #[pyo3(signature = (uri, version = None, storage_options = None))]
    fn new(
        py: Python<'_>,
        uri: String,
        version: Option<u64>,
        storage_options: Option<BTreeMap<String, String>>,
    ) -> PyResult<Self> {
        let storage_options = storage_options.unwrap_or_default();
        let (table, runtime) = block_on(py, open(&uri, version, &storage_options))?;
        Ok(Table {
            uri,
            storage_options,
            pinned: version,
            table,
            runtime,
        })
    }

    /// The table's location, as given.
    #[getter]
    fn uri(&self) -> &str {
        &self.uri
    }

    /// The version this object reads: the one asked for, or the newest when it was opened.
    #[getter]
    fn version(&self) -> u64 {
        self.table.version().0
    }

    /// The table's schema, as an Arrow C schema capsule (`pyarrow.schema(t)`).
    fn __arrow_c_schema__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        schema_capsule(py, &plain_schema(&self.table.schema()))
    }

    /// The whole table as an Arrow C stream capsule (`pyarrow.table(t)`).
    #[pyo3(signature = (requested_schema = None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        self.scan(py, None, None, None, 2)?
            .__arrow_c_stream__(py, requested_schema)
    }

    /// The rows matching `filter` (a SQL expression over the table's columns), with only
    /// `columns`, as a stream read `readahead` batches ahead. The filter prunes files and
    /// row groups by their statistics before any data is read.
    #[pyo3(signature = (columns = None, filter = None, batch_size = None, readahead = 2))]
    fn scan(
        &self,
        py: Python<'_>,
        columns: Option<Vec<String>>,
        filter: Option<String>,
        batch_size: Option<usize>,
        readahead: usize,
    ) -> PyResult<RecordBatchStream> {
        self.scan_of(
            py,
            self.table.clone(),
            columns,
            filter,
            batch_size,
            readahead,
        )
    }

    /// The rows matching `filter`, with only `columns`, as one `pyarrow.Table`.
    #[pyo3(signature = (columns = None, filter = None))]
    fn to_arrow<'py>(
        &self,
        py: Python<'py>,
        columns: Option<Vec<String>>,
        filter: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let stream = Bound::new(py, self.scan(py, columns, filter, None, 2)?)?;
        py.import("pyarrow")?.call_method1("table", (stream,))
    }

    /// The table's data as shards for readers that split it among themselves: a tuple
    /// `(path, row_groups, rows)` per data file, or, with `split_row_groups`, per row
    /// group (`row_groups` is then `(start, end)`). `rows` leaves out deleted rows.
    #[pyo3(signature = (split_row_groups = false))]
    fn shards(&self, py: Python<'_>, split_row_groups: bool) -> PyResult<Vec<PyShard>> {
        let shards = block_on(py, self.table.shards(split_row_groups))?;
        Ok(shards
            .into_iter()
            .map(|s| (s.path, s.row_groups.map(|r| (r.start, r.end)), s.rows))
            .collect())
    }

    /// Like `scan`, over only the given shards (as `shards` returns them), in the order
    /// the files are listed.
    #[pyo3(signature = (shards, columns = None, filter = None, batch_size = None, readahead = 2))]
    fn scan_shards(
        &self,
        py: Python<'_>,
        shards: Vec<PyShard>,
        columns: Option<Vec<String>>,
        filter: Option<String>,
        batch_size: Option<usize>,
        readahead: usize,
    ) -> PyResult<RecordBatchStream> {
        let shards: Vec<Shard> = shards
            .into_iter()
            .map(|(path, row_groups, rows)| Shard {
                path,
                row_groups: row_groups.map(|(start, end)| start..end),
                rows,
            })
            .collect();
        let table = self.table.with_shards(&shards);
        self.scan_of(py, table, columns, filter, batch_size, readahead)
    }

    /// The table as a datafusion-python table provider (`SessionContext.register_table`).
    #[pyo3(signature = (session = None))]
    fn __datafusion_table_provider__<'py>(
        &self,
        py: Python<'py>,
        session: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        check_datafusion_version(py)?;
        let session = session.ok_or_else(|| {
            to_py("datafusion-python passed no session; tarn needs datafusion 55")
        })?;
        let codec = logical_codec(&session)?;
        let provider = Arc::new(ForeignTable::new(
            self.table.clone(),
            self.pinned.is_some(),
            self.runtime.clone(),
        ));
        let provider = FFI_TableProvider::new_with_ffi_codec(
            provider,
            true,
            Some(runtime().handle().clone()),
            codec,
        );
        PyCapsule::new_with_value(py, provider, c"datafusion_table_provider")
    }

    /// Pickled as what opens it again: the location, the version it reads and the store
    /// options.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let this = slf.get();
        (
            py.get_type::<Table>(),
            (
                this.uri.clone(),
                this.version(),
                this.storage_options.clone(),
            ),
        )
            .into_pyobject(py)
    }

    fn __repr__(&self) -> String {
        format!("Table({:?}, version={})", self.uri, self.version())
    }
}

impl Table {
    fn scan_of(
        &self,
        py: Python<'_>,
        table: TarnTable,
        columns: Option<Vec<String>>,
        filter: Option<String>,
        batch_size: Option<usize>,
        readahead: usize,
    ) -> PyResult<RecordBatchStream> {
        let mut config = SessionConfig::new();
        if let Some(size) = batch_size {
            config = config.with_batch_size(size.max(1));
        }
        let ctx = SessionContext::new_with_config_rt(config, self.runtime.clone());
        // Registered under the table's own name, so errors name its columns as `name.column`.
        let name = TableReference::bare(table_name(&self.uri));
        let stream = block_on(py, async move {
            ctx.register_table(name.clone(), Arc::new(table))?;
            let mut df: DataFrame = ctx.table(name.clone()).await?;
            if let Some(filter) = filter {
                let predicate = ctx.parse_sql_expr(&filter, df.schema())?;
                df = df.filter(predicate)?;
            }
            if let Some(columns) = columns {
                let known: Vec<&str> = df
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                if let Some(missing) = columns.iter().find(|c| !known.contains(&c.as_str())) {
                    return plan_err!(
                        "table {name} has no column '{missing}'; its columns are {}",
                        known.join(", ")
                    );
                }
                let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
                df = df.select_columns(&columns)?;
            }
            df.execute_stream().await
        })?;
        Ok(RecordBatchStream::new(stream, readahead))
    }
}

/// The table at `uri` (at `version` if given), and a runtime with its store registered.
async fn open(
    uri: &str,
    version: Option<u64>,
    options: &BTreeMap<String, String>,
) -> datafusion::error::Result<(TarnTable, Arc<RuntimeEnv>)> {
    let root = tarn_core::storage::open_location_with(uri, options).map_err(to_df)?;
    let location = TableLocation::new(root.store.clone(), root.root.clone(), root.url.clone());
    let table = tarn_core::Table::load(location, Env::default())
        .await
        .map_err(to_df)?;
    let runtime = Arc::new(RuntimeEnv::default());
    let store_url = ObjectStoreUrl::parse("tarn://table")?;
    runtime.register_object_store(store_url.as_ref(), root.store);
    let mut table = TarnTable::new(table, table_name(uri), store_url);
    if let Some(version) = version {
        table = table.at_any(AsOf::Version(version)).await?;
    }
    Ok((table, runtime))
}

/// The name of the table at `uri`: the last segment of its location.
fn table_name(uri: &str) -> &str {
    uri.trim_end_matches('/').rsplit('/').next().unwrap_or(uri)
}

/// An error unless the `datafusion` module in this process speaks this build's FFI.
fn check_datafusion_version(py: Python<'_>) -> PyResult<()> {
    let version: String = py.import("datafusion")?.getattr("__version__")?.extract()?;
    let major = version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u64>().ok());
    if major != Some(DATAFUSION_MAJOR) {
        return Err(to_py(format!(
            "tarn tables need datafusion {DATAFUSION_MAJOR}.x in Python, found {version}: \
             pip install 'datafusion=={DATAFUSION_MAJOR}.*'"
        )));
    }
    Ok(())
}

/// The logical extension codec of a datafusion-python session.
fn logical_codec(session: &Bound<'_, PyAny>) -> PyResult<FFI_LogicalExtensionCodec> {
    const ATTR: &str = "__datafusion_logical_extension_codec__";
    let capsule = if session.hasattr(ATTR)? {
        session.getattr(ATTR)?.call0()?
    } else {
        session.clone()
    };
    let capsule = capsule.cast::<PyCapsule>().map_err(|_| {
        to_py("datafusion-python passed a session without a logical extension codec")
    })?;
    let name = c"datafusion_logical_extension_codec";
    let pointer = capsule.pointer_checked(Some(name))?;
    // SAFETY: a capsule of that name holds an FFI_LogicalExtensionCodec, which outlives
    // this borrow (the capsule is alive); it is cloned out.
    let codec = unsafe { pointer.cast::<FFI_LogicalExtensionCodec>().as_ref() };
    Ok(codec.clone())
}
