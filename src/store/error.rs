//! The one error type of every store role.

/// What a backend's own error is carried as: kept whole, so logs and `source()` chains still
/// show the driver's error (and its code) behind the sentence.
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    #[error(
        "store URL {0:?} is not supported; use sqlite://PATH or postgres://USER@HOST/DATABASE"
    )]
    UnsupportedUrl(String),
    /// The database failed (I/O, a lock, a dropped connection): usually worth retrying.
    #[error("database error: {}", with_causes(source.as_ref()))]
    Backend {
        #[source]
        source: BackendError,
    },
    /// A write made under a lease that has since moved to another node (see
    /// [`Fence`](super::Fence)): nothing was written; the work belongs to that node now.
    #[error("the lease {lease:?} moved to another node; this node no longer writes for it")]
    LeaseLost { lease: String },
    /// A stored row cannot be read back: retrying will not help.
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the same call may succeed later (the database was unreachable or busy).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Backend { .. })
    }

    /// Wraps a backend's error (or a sentence, for failures that have no error value).
    pub fn backend(source: impl Into<BackendError>) -> Self {
        StoreError::Backend {
            source: source.into(),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// `e` and its causes, as "e: cause: cause": a driver's own message can be as thin as
/// tokio-postgres' "db error", with the server's reason ("cannot execute INSERT in a read-only
/// transaction") one level down.
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("db error")]
    struct Thin(#[source] std::io::Error);

    #[test]
    fn a_backend_error_shows_its_causes() {
        let e = StoreError::backend(Thin(std::io::Error::other(
            "ERROR: cannot execute INSERT in a read-only transaction",
        )));
        assert_eq!(
            e.to_string(),
            "database error: db error: ERROR: cannot execute INSERT in a read-only transaction"
        );
    }
}
