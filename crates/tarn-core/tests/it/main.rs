//! Integration tests of tarn-core, against real object stores (local disk, in-memory) and
//! real Parquet files.

mod common;
mod concurrency;
mod errors;
mod faults;
mod history;
mod maintenance;
mod planning;
mod s3;
mod tables;
