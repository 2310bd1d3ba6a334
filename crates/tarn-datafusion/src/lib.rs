//! tarn tables in Apache DataFusion.
//!
//! - [`TarnContext`]: tarn's SQL entry point (DDL, INSERT, time travel, metadata tables).
//! - [`register`]: the same pieces in a DataFusion `SessionContext` of your own.
//! - [`TarnTable`]: a table version as a `TableProvider` with manifest and file pruning.
//! - [`TarnCatalog`]: a warehouse as a DataFusion catalog (namespaces are schemas).

mod alter;
mod catalog;
mod context;
mod convert;
mod ddl;
mod dialect;
mod dml;
pub mod error;
mod field_ids;
mod metadata_tables;
mod names;
mod parse;
mod provider;
mod pruning;
mod sink;
mod time_travel;

#[cfg(test)]
mod tests;

pub use catalog::{TarnCatalog, TarnSchema};
pub use context::{CATALOG, DEFAULT_NAMESPACE, TarnContext, register};
pub use dialect::TarnDialect;
pub use metadata_tables::MetadataTable;
pub use parse::ParsedStatement;
pub use provider::TarnTable;
pub use sink::OVERWRITE_MODE_PROPERTY;
pub use time_travel::{AsOf, TimeTravel, TimeTravelFunction, TimeTravelPlanner};
