//! tarn for Python: tables at a version for datafusion-python (through `datafusion-ffi`),
//! SQL on a warehouse, and Arrow streams by the PyCapsule interface. The Python package
//! (`python/tarn`) builds its PyTorch dataset on [`Table::shards`] and
//! [`Table::scan_shards`].

mod connection;
mod foreign;
mod stream;
mod table;

use std::future::Future;
use std::sync::{Mutex, PoisonError};

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    tarn,
    TarnError,
    PyException,
    "An error from tarn: bad SQL, a missing table or version, a failed read or commit."
);

/// Any error as a [`TarnError`] with its message.
pub(crate) fn to_py(error: impl std::fmt::Display) -> PyErr {
    TarnError::new_err(error.to_string())
}

/// A DataFusion error as a [`TarnError`], with the message the shell prints.
pub(crate) fn df_to_py(error: datafusion::error::DataFusionError) -> PyErr {
    TarnError::new_err(tarn_datafusion::error::message_of(&error))
}

/// The runtime every table's I/O and every stream's readahead runs on, for the process.
///
/// A process forked from one that had started it (a DataLoader worker under `fork`) gets a
/// runtime of its own: the parent's worker threads do not exist in the child, so anything
/// run on the parent's runtime would wait forever.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: Mutex<Option<(u32, &'static tokio::runtime::Runtime)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    match *slot {
        Some((owner, runtime)) if owner == pid => runtime,
        _ => {
            // One runtime per process, for the life of the process.
            let runtime: &'static _ = Box::leak(Box::new(
                tokio::runtime::Builder::new_multi_thread()
                    .thread_name("tarn")
                    .enable_all()
                    .build()
                    .expect("a Tokio runtime"),
            ));
            *slot = Some((pid, runtime));
            runtime
        }
    }
}

/// How often a running statement looks for Ctrl-C.
const SIGNAL_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// Runs `future` to completion on [`runtime`] with the GIL released, so Python threads go
/// on. Ctrl-C (a signal whose Python handler raises) stops it: the future is dropped, which
/// stops its query and its writers, and the handler's `KeyboardInterrupt` is raised. A
/// commit either landed before that or did not happen; files written for a commit that did
/// not happen are orphans for `remove_orphan_files`.
pub(crate) fn block_on<F, T>(py: Python<'_>, future: F) -> PyResult<T>
where
    F: Future<Output = datafusion::error::Result<T>> + Send,
    T: Send,
{
    py.detach(|| {
        runtime().block_on(async {
            let mut future = std::pin::pin!(future);
            let mut polls = tokio::time::interval(SIGNAL_POLL);
            polls.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            polls.tick().await;
            loop {
                tokio::select! {
                    done = &mut future => return done.map_err(df_to_py),
                    _ = polls.tick() => Python::attach(|py| py.check_signals())?,
                }
            }
        })
    })
}

#[pymodule]
fn _tarn(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("TarnError", m.py().get_type::<TarnError>())?;
    m.add_class::<table::Table>()?;
    m.add_class::<stream::RecordBatchStream>()?;
    m.add_class::<connection::Connection>()?;
    m.add_function(wrap_pyfunction!(connection::connect, m)?)?;
    Ok(())
}
