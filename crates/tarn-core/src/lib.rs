//! tarn's storage engine: tables on any object store, versioned by put-if-absent commits.
//!
//! - [`Warehouse`]: namespaces and tables under one root URL.
//! - [`Table`]: one version of a table; time travel with [`Table::at_version`] and
//!   [`Table::at_timestamp`]; file planning with [`Table::plan_files`].
//! - [`DataFileWriter`]: Arrow batches to partitioned Parquet files with statistics.
//! - [`Change`] and [`Table::commit`]: optimistic transactions with the conflict matrix of
//!   [`transaction`].
//!
//! tarn-core speaks in data files, snapshots and Arrow arrays; it knows nothing of SQL.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> tarn_core::Result<()> {
//! use std::sync::Arc;
//! use arrow::array::{Int64Array, RecordBatch};
//! use arrow::datatypes::{DataType, Field as ArrowField, Schema as ArrowSchema};
//! use tarn_core::{TableDefinition, Warehouse};
//! use tarn_spec::{Field, PrimitiveType, Version};
//!
//! let warehouse = Warehouse::open("memory://doc-example")?;
//! warehouse.create_namespace("feeds").await?;
//! let definition = TableDefinition {
//!     fields: vec![Field::required(1, "id", PrimitiveType::Long)],
//!     ..Default::default()
//! };
//! let table = warehouse.create_table("feeds", "events", definition).await?;
//!
//! let schema = Arc::new(ArrowSchema::new(vec![ArrowField::new("id", DataType::Int64, false)]));
//! let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3]))]).unwrap();
//! let table = table.append_batches([batch]).await?;
//! assert_eq!(table.version(), Version(1));
//! assert_eq!(table.snapshot().summary.total_rows, 3);
//! # Ok(())
//! # }
//! ```

pub mod arrow_convert;
mod changes;
mod deletes;
mod env;
mod error;
mod ipc;
mod local_disk;
mod location;
mod log;
pub mod maintenance;
mod manifest;
mod manifest_list;
pub mod properties;
pub mod requests;
mod routing;
mod scan;
mod stats;
pub mod storage;
mod table;
pub mod transaction;
mod warehouse;
mod writer;

pub use changes::ChangeSlice;
pub use deletes::DeletionVector;
pub use env::{Clock, Env, IdGenerator, SystemClock, UuidGenerator};
pub use error::{Error, ErrorKind, Result};
pub use location::TableLocation;
pub use log::version_file;
pub use manifest::{DataFile, Manifest};
pub use manifest_list::{ManifestList, ManifestSummary};
pub use roaring::RoaringTreemap;
pub use routing::partition_keys;
pub use scan::{CompareOp, FilePredicate, Predicate, ScanMetrics, ScanPlan, StatsLevel, StatsView};
pub use stats::{ColumnStats, TRUNCATE_LENGTH};
pub use table::{DROPPED_PROPERTY, FollowPoll, Table, TableDefinition};
pub use transaction::{
    AppCommit, Change, CommitOptions, OverwriteScope, RENAMED_TO_PROPERTY, RetryPolicy,
};
pub use warehouse::{NamespaceLocations, Warehouse};
pub use writer::{
    COMPRESSION_CODEC_PROPERTY, COMPRESSION_LEVEL_PROPERTY, DataFileWriter, MemoryGate,
    ROW_GROUP_ROWS_PROPERTY, StoredHook, TARGET_FILE_SIZE_PROPERTY, UnstoredFile,
    WRITE_BUFFER_PROPERTY, WriterOptions,
};
