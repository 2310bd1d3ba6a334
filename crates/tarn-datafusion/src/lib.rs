//! tarn tables in Apache DataFusion.
//!
//! - [`TarnContext`]: tarn's SQL entry point (DDL, INSERT, time travel, metadata tables).
//! - [`register`]: the same pieces in a DataFusion `SessionContext` of your own.
//! - [`TarnTable`]: a table version as a `TableProvider` with manifest and file pruning.
//! - [`TarnCatalog`]: a warehouse as a DataFusion catalog (namespaces are schemas).

mod alter;
#[cfg(feature = "ballista")]
pub mod ballista;
#[cfg(not(feature = "ballista"))]
mod ballista {
    //! Without the `ballista` feature no session is distributed.
    use std::sync::Arc;

    use datafusion::config::ConfigOptions;
    use datafusion::physical_plan::ExecutionPlan;

    pub(crate) fn is_distributed(_options: &ConfigOptions) -> bool {
        false
    }

    pub(crate) fn distributed_scan(
        _table: &tarn_core::Table,
        scan: Arc<dyn ExecutionPlan>,
    ) -> Arc<dyn ExecutionPlan> {
        scan
    }

    pub(crate) fn portable_store_url(
        _table: &tarn_core::Table,
        _runtime: &datafusion::execution::runtime_env::RuntimeEnv,
    ) -> datafusion::error::Result<datafusion::execution::object_store::ObjectStoreUrl> {
        unreachable!("no session is distributed without the ballista feature")
    }
}
mod aggregates;
mod assert_true;
mod catalog;
mod changes;
mod checked_arithmetic;
mod commit;
mod context;
mod convert;
mod ddl;
mod default_values;
mod dialect;
mod dml;
pub mod error;
mod expired_scan;
mod external;
mod field_ids;
mod file_rows;
mod float_literals;
mod in_subquery;
mod insert_shape;
mod literal_keys;
mod maintenance;
mod merge_star;
mod metadata_tables;
mod names;
mod parse;
mod provider;
mod pruning;
mod reader;
mod replace;
mod struct_values;
mod time_travel;
mod view;
mod write;

#[cfg(test)]
mod tests;

pub use catalog::{TarnCatalog, TarnSchema};
pub use changes::{
    CHANGE_TYPE_COLUMN, COMMIT_TIMESTAMP_COLUMN, COMMIT_VERSION_COLUMN, ChangeFeed,
    ChangeFeedFunction, VersionChanges,
};
pub use commit::{TABLE_METADATA_KEY, TarnOptions, VERSION_METADATA_KEY};
pub use context::{CATALOG, DEFAULT_NAMESPACE, TarnContext, memory_pool, register};
pub use dialect::TarnDialect;
pub use dml::{DmlRule, TarnDml, TarnQueryPlanner};
pub use in_subquery::NullAwareInSubquery;
pub use literal_keys::LiteralJoinKeys;
pub use metadata_tables::MetadataTable;
pub use parse::ParsedStatement;
pub use provider::{Shard, TarnTable};
pub use tarn_core::properties::{OVERWRITE_MODE_PROPERTY, parse_duration_ms};
pub use time_travel::{AsOf, TimeTravelFunction, TimeTravelPlanner};
