//! The one error type of tarn-spec: metadata that does not satisfy the format's rules.

/// Why a piece of metadata was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The metadata is well formed but violates a rule of the format (duplicate field ids,
    /// a partition source column that does not exist, ...). Writers never produce it.
    #[error("invalid table metadata: {0}")]
    Invalid(String),
    /// The bytes are not metadata of this format at all (not JSON, wrong shape).
    #[error("malformed table metadata: {0}")]
    Malformed(String),
    /// Written by a newer version of tarn with a format this reader does not understand.
    #[error(
        "unsupported format version {found}: this reader understands up to {supported}; \
         upgrade tarn to read this table"
    )]
    UnsupportedFormatVersion { found: u32, supported: u32 },
    /// A schema or partition change the table cannot take (a name already in use, a
    /// narrowing type change, dropping a partition source column, ...).
    #[error("{0}")]
    Refused(String),
    /// A type, transform or value the format does not have.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl SpecError {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        SpecError::Invalid(message.into())
    }
}

/// Result alias for tarn-spec.
pub type Result<T, E = SpecError> = std::result::Result<T, E>;
