//! The one place tarn's errors become DataFusion's.

use datafusion::error::DataFusionError;

/// A tarn-core error as a DataFusion error. The original stays reachable through
/// `DataFusionError::External` (for `ErrorKind` checks such as retryable conflicts).
pub fn to_df(e: tarn_core::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// A tarn-spec error as a DataFusion planning error.
pub fn spec_to_df(e: tarn_spec::SpecError) -> DataFusionError {
    DataFusionError::Plan(e.to_string())
}

/// The tarn-core error inside a DataFusion error, if there is one.
pub fn tarn_error(e: &DataFusionError) -> Option<&tarn_core::Error> {
    match e {
        DataFusionError::External(inner) => inner.downcast_ref::<tarn_core::Error>(),
        DataFusionError::Context(_, inner) => tarn_error(inner),
        DataFusionError::Shared(inner) => tarn_error(inner),
        _ => None,
    }
}
