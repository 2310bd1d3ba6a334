//! The tarn table format, as a pure model: types, schemas with field ids, partition
//! transforms, snapshots and table metadata, their JSON form and their validation.
//!
//! This crate does no IO. `docs/FORMAT.md` in the repository is the prose specification; the
//! types here are its executable form.
//!
//! ```
//! use std::collections::BTreeMap;
//! use tarn_spec::{Field, PrimitiveType, TableMetadata, Version};
//!
//! let metadata = TableMetadata::create(
//!     "6a7c…",
//!     vec![Field::required(1, "id", PrimitiveType::Long)],
//!     vec![],
//!     BTreeMap::new(),
//!     1_764_000_000_000,
//! )?;
//! assert_eq!(metadata.version(), Version(0));
//! let again = TableMetadata::from_json(&metadata.to_json())?;
//! assert_eq!(again, metadata);
//! # Ok::<(), tarn_spec::SpecError>(())
//! ```

mod error;
mod evolution;
mod ids;
mod metadata;
mod partition;
mod schema;
mod snapshot;
mod transform;
mod types;
mod value;
mod wire;

pub use error::{Result, SpecError};
pub use evolution::SchemaChange;
pub use ids::{FieldId, SchemaId, SpecId, Version};
pub use metadata::{
    BOUNDED_LOG_FORMAT_VERSION, COMPRESSED_OBJECTS_FORMAT_VERSION, DELETION_VECTORS_FORMAT_VERSION,
    FORMAT_VERSION, MetadataUpdate, NewSnapshot, RECENT_SNAPSHOTS, TableMetadata,
};
pub use partition::{FIRST_PARTITION_FIELD_ID, PartitionField, PartitionSpec};
pub use schema::{Field, Leaf, Schema, assign_field_ids};
pub use snapshot::{ChangeType, Changes, Operation, Snapshot, Summary};
pub use transform::{
    Transform, bucket_hash, bucket_hash_bytes, bucket_hash_decimal, bucket_hash_long, bucket_of,
    civil_from_days, days_from_micros, hours_from_micros, months_from_days, truncate_integer,
    years_from_days,
};
pub use types::{
    ELEMENT_NAME, KEY_NAME, MAX_DECIMAL_PRECISION, PrimitiveType, Type, VALUE_NAME, decimal,
};
pub use value::Value;
