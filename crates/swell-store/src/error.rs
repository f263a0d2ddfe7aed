//! Errors of store operations.

use crate::key::ObjectKey;

/// Errors from [`crate::Store`] operations.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist.
    #[error("{0} not found")]
    NotFound(Box<ObjectKey>),
    /// An object of that name exists already.
    #[error("{0} already exists")]
    AlreadyExists(Box<ObjectKey>),
    /// Optimistic concurrency check failed; re-read and retry.
    #[error("{key}: resourceVersion {expected} is stale (current {actual})")]
    Conflict {
        /// The object.
        key: Box<ObjectKey>,
        /// The resourceVersion the caller had.
        expected: String,
        /// The stored one.
        actual: u64,
    },
    /// A precondition other than the resourceVersion failed (uid).
    #[error("{key}: precondition failed: {message}")]
    Precondition {
        /// The object.
        key: Box<ObjectKey>,
        /// What did not match.
        message: String,
    },
    /// The object is not a JSON object with valid metadata.
    #[error("invalid object: {0}")]
    Invalid(String),
    /// A watch asked for events the log no longer holds.
    #[error("too old resource version: {requested} ({oldest})")]
    Expired {
        /// The resourceVersion asked for.
        requested: u64,
        /// The oldest resourceVersion a watch can start from.
        oldest: u64,
    },
    /// A watcher fell too far behind the live event stream.
    #[error("watcher fell behind by {0} events")]
    Lagged(u64),
    /// The database failed.
    #[error("storage error")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stored value could not be decoded.
    #[error("stored value is corrupt")]
    Corrupt(#[source] serde_json::Error),
}

/// Result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

macro_rules! storage_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                Self::Storage(Box::new(e))
            }
        }
    )*};
}

storage_from!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
