//! The one error type of tarn-core.
//!
//! Callers branch on [`Error::kind`]; the variants carry the context (paths, versions) and
//! keep their sources.

use tarn_spec::{SpecError, Version};

/// What kind of failure an [`Error`] is, for callers that decide what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Another commit won the race. `retryable` says whether running the whole operation
    /// again (on the new state of the table) may succeed.
    Conflict { retryable: bool },
    /// A table, namespace, version or file does not exist.
    NotFound,
    /// The request itself is wrong: bad schema, bad data, bad argument.
    InvalidInput,
    /// Storage holds something that is not valid tarn metadata or data.
    CorruptData,
    /// Valid, but not something this build can do.
    Unsupported,
    /// The object store failed; trying again later may work.
    Unavailable,
    /// The object store refused the request: credentials are missing, wrong or not allowed.
    Forbidden,
    /// A commit failed in a way that leaves open whether its version landed all the same (the
    /// store did not answer its create): look at the table before running it again.
    CommitStateUnknown,
}

/// tarn-core's error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("table '{table}' does not exist")]
    TableNotFound { table: String },

    #[error("the table was renamed to '{to}' while this operation ran; use the new name")]
    TableRenamed { to: String },

    #[error("table '{table}' was dropped or renamed while this commit ran; nothing was committed")]
    TableGone { table: String },

    #[error("table '{table}' was dropped while this operation ran; nothing was committed")]
    TableDropped { table: String },

    #[error("namespace '{namespace}' does not exist; create it first with create_namespace")]
    NamespaceNotFound { namespace: String },

    #[error("{what} '{name}' already exists")]
    AlreadyExists { what: &'static str, name: String },

    #[error(
        "version {requested} {}: the table's versions run from {oldest} to {latest}",
        if requested < oldest { "has expired" } else { "does not exist" }
    )]
    VersionNotFound {
        requested: Version,
        oldest: Version,
        latest: Version,
    },

    #[error(
        "the changes of version {requested} can no longer be read: snapshot expiry removed \
         the versions before {}; start the range at version {first_readable} or later",
        first_readable.get() - 1
    )]
    ChangesExpired {
        requested: Version,
        first_readable: Version,
    },

    #[error(
        "no version of the table exists at or before {requested}: the oldest version was \
         committed at {oldest}"
    )]
    TimestampBeforeTable { requested: String, oldest: String },

    #[error(
        "commit conflict: {reason} (committed concurrently as version {version}). Help: \
         {}",
        if *.retryable { "run the operation again; it will see the new table state" }
        else { "the concurrent change makes this operation invalid as written" }
    )]
    Conflict {
        version: Version,
        reason: String,
        retryable: bool,
    },

    #[error("gave up committing after {attempts} attempts lost the race to other writers")]
    CommitRetriesExhausted { attempts: u32 },

    #[error(
        "the commit failed, but its new version may have been created all the same ({source}). \
         Help: look at the table's newest versions (its $snapshots table) before running the \
         operation again, which could otherwise apply it twice"
    )]
    CommitStateUnknown {
        #[source]
        source: Box<Error>,
    },

    #[error(
        "application '{app_id}' already committed sequence number {last} to this table, so \
         its commit numbered {sequence} is refused and nothing was written; a job resuming \
         after a failure continues from {}",
        .last + 1
    )]
    AlreadyCommitted {
        app_id: String,
        sequence: u64,
        last: u64,
    },

    #[error("the data does not match the table schema: {reason}")]
    SchemaMismatch { reason: String },

    #[error("invalid {what}: {reason}")]
    InvalidArgument { what: &'static str, reason: String },

    #[error(
        "'{name}' cannot be a {what} name: names use letters, digits, '_' and '-', and do \
         not start with '_'"
    )]
    InvalidName { what: &'static str, name: String },

    #[error(
        "'{path}' exists but is not a version file this commit could create or read ({reason}); \
         nothing was committed. Remove what is in the way of the table's next version"
    )]
    VersionBlocked { path: String, reason: String },

    #[error("invalid table metadata change: {0}")]
    InvalidMetadata(#[source] SpecError),

    #[error("corrupt metadata in '{path}': {source}")]
    CorruptMetadata {
        path: String,
        #[source]
        source: SpecError,
    },

    #[error("corrupt manifest '{path}': {reason}")]
    CorruptManifest { path: String, reason: String },

    #[error("'{path}' is missing: the table refers to it but storage does not have it")]
    MissingFile { path: String },

    #[error("cannot read '{path}': {source}")]
    UnsupportedFormat {
        path: String,
        #[source]
        source: SpecError,
    },

    #[error(
        "the object store at '{url}' cannot create objects atomically (put-if-absent): \
         {reason}. tarn refuses to commit without it, since concurrent writers could \
         overwrite each other"
    )]
    UnsupportedStore { url: String, reason: String },

    #[error("unsupported: {0}")]
    Unsupported(String),

    #[error("object store error on '{path}': {source}")]
    ObjectStore {
        path: String,
        #[source]
        source: object_store::Error,
    },

    #[error(
        "the object store refused access to '{path}': {source}. Help: {}",
        credentials_help(path)
    )]
    AccessDenied {
        path: String,
        #[source]
        source: object_store::Error,
    },

    #[error("parquet error on '{path}': {source}")]
    Parquet {
        path: String,
        #[source]
        source: parquet::errors::ParquetError,
    },

    #[error("arrow error while {context}: {source}")]
    Arrow {
        context: String,
        #[source]
        source: arrow::error::ArrowError,
    },
}

impl Error {
    /// The coarse kind callers branch on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::TableNotFound { .. }
            | Error::TableRenamed { .. }
            | Error::TableGone { .. }
            | Error::TableDropped { .. }
            | Error::NamespaceNotFound { .. }
            | Error::VersionNotFound { .. }
            | Error::TimestampBeforeTable { .. }
            | Error::ChangesExpired { .. } => ErrorKind::NotFound,
            Error::AlreadyExists { .. }
            | Error::SchemaMismatch { .. }
            | Error::InvalidArgument { .. }
            | Error::InvalidName { .. }
            | Error::InvalidMetadata(_)
            | Error::Arrow { .. } => ErrorKind::InvalidInput,
            Error::Conflict { retryable, .. } => ErrorKind::Conflict {
                retryable: *retryable,
            },
            Error::CommitRetriesExhausted { .. } => ErrorKind::Conflict { retryable: true },
            Error::AlreadyCommitted { .. } => ErrorKind::Conflict { retryable: false },
            Error::CommitStateUnknown { .. } => ErrorKind::CommitStateUnknown,
            Error::CorruptMetadata { .. }
            | Error::CorruptManifest { .. }
            | Error::MissingFile { .. }
            | Error::VersionBlocked { .. } => ErrorKind::CorruptData,
            Error::UnsupportedFormat { .. }
            | Error::UnsupportedStore { .. }
            | Error::Unsupported(_) => ErrorKind::Unsupported,
            Error::ObjectStore { source, .. } => match source {
                object_store::Error::NotImplemented { .. }
                | object_store::Error::NotSupported { .. } => ErrorKind::Unsupported,
                object_store::Error::InvalidPath { .. }
                | object_store::Error::UnknownConfigurationKey { .. } => ErrorKind::InvalidInput,
                _ => ErrorKind::Unavailable,
            },
            Error::AccessDenied { .. } => ErrorKind::Forbidden,
            // Parquet errors on writes wrap the store's; others mean the bytes are wrong.
            Error::Parquet { source, .. } => match source {
                parquet::errors::ParquetError::External(_) => ErrorKind::Unavailable,
                _ => ErrorKind::CorruptData,
            },
        }
    }

    /// Whether running the same operation again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::Conflict { retryable: true } | ErrorKind::Unavailable
        )
    }

    pub(crate) fn store(path: impl ToString, source: object_store::Error) -> Self {
        let path = path.to_string();
        match source {
            object_store::Error::NotFound { .. } => Error::MissingFile { path },
            source @ (object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }) => Error::AccessDenied { path, source },
            // Without credentials the cloud clients ask the instance metadata service,
            // which fails far from the cause.
            source if is_missing_credentials(&source) => Error::AccessDenied { path, source },
            source => Error::ObjectStore { path, source },
        }
    }

    pub(crate) fn arrow(context: impl Into<String>, source: arrow::error::ArrowError) -> Self {
        Error::Arrow {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            what,
            reason: reason.into(),
        }
    }
}

/// Whether a store error comes from looking for credentials that are not there.
fn is_missing_credentials(e: &object_store::Error) -> bool {
    let text = e.to_string();
    [
        // The instance metadata services of AWS, Google Cloud and Azure.
        "169.254.169.254",
        "/latest/api/token",
        "/latest/meta-data",
        "metadata.google.internal",
        "computeMetadata",
        "/metadata/identity/oauth2",
        "credential",
        "Credential",
    ]
    .iter()
    .any(|pattern| text.contains(pattern))
}

/// What gives credentials to the store of `path`.
fn credentials_help(path: &str) -> &'static str {
    if path.starts_with("gs://") {
        "give Google Cloud credentials with GOOGLE_APPLICATION_CREDENTIALS or \
         GOOGLE_SERVICE_ACCOUNT (a service account file)"
    } else if path.starts_with("az://") || path.starts_with("abfs") {
        "give Azure credentials with AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY \
         (or AZURE_STORAGE_SAS_TOKEN)"
    } else {
        "give credentials with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), \
         and AWS_ENDPOINT and AWS_REGION for an S3-compatible server"
    }
}

/// Result alias for tarn-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;
