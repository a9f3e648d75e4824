//! Typed errors. `Unavailable` is the one the HTTP layer maps to `503` with `Retry-After`.

use std::time::Duration;

/// Why a dependency could not serve an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// No connection could be had within the configured timeout.
    Timeout,
    /// The server refused or dropped the connection.
    Unreachable,
    /// The pool was shut down.
    Closed,
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unavailable::Timeout => "timed out waiting for a connection",
            Unavailable::Unreachable => "server unreachable",
            Unavailable::Closed => "pool closed",
        })
    }
}

/// How long a client should wait before retrying after an `Unavailable` error.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{backend} unavailable: {reason}")]
    Unavailable { backend: &'static str, reason: Unavailable },
    #[error("invalid store configuration: {0}")]
    Config(String),
    #[error("migration failed: {0}")]
    Migrate(String),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl StoreError {
    /// Classifies a driver error: connection-level failures are `Unavailable`, the rest are
    /// `Database` (a bug or a constraint, which retrying does not fix).
    pub(crate) fn from_sqlx(backend: &'static str, e: sqlx::Error) -> Self {
        let reason = match &e {
            sqlx::Error::PoolTimedOut => Unavailable::Timeout,
            sqlx::Error::PoolClosed => Unavailable::Closed,
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed | sqlx::Error::Protocol(_) => {
                Unavailable::Unreachable
            }
            // Class 08 (connection exception) and 57P0x (server shutting down or restarting).
            sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P0")) => {
                Unavailable::Unreachable
            }
            _ => return StoreError::Database(e),
        };
        tracing::debug!(backend, error = %e, "store unavailable");
        StoreError::Unavailable { backend, reason }
    }

    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }

    /// `Some` for errors worth a `503` + `Retry-After`; `None` for the rest (`500`).
    pub fn retry_after(&self) -> Option<Duration> {
        self.is_unavailable().then_some(RETRY_AFTER)
    }
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{backend} unavailable: {reason}")]
    Unavailable { backend: &'static str, reason: Unavailable },
    #[error("invalid cache configuration: {0}")]
    Config(String),
    /// The server rejected the command (for example `INCR` on a value that is not an integer).
    #[error("cache command failed: {0}")]
    Command(String),
}

impl CacheError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, CacheError::Unavailable { .. })
    }

    /// `Some` for errors worth a `503` + `Retry-After`; `None` for the rest (`500`).
    pub fn retry_after(&self) -> Option<Duration> {
        self.is_unavailable().then_some(RETRY_AFTER)
    }
}
