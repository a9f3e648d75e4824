//! Worker errors; `retry_after` tells the HTTP layer when a 503 is right.

use std::time::Duration;

use compozy_store::{RETRY_AFTER, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("no workflow `{0}`")]
    UnknownWorkflow(String),
    /// The run input does not satisfy the workflow's `input` schema; `pointer` is the JSON
    /// pointer of the failing value (`""` for the whole input).
    #[error("the input does not match the workflow's schema at `{pointer}`: {reason}")]
    InvalidInput { pointer: String, reason: String },
    #[error("invalid worker configuration: {0}")]
    Config(String),
    #[error("no execution `{0}`")]
    UnknownRun(String),
    /// Only failed and cancelled runs are retried; `status` is the run's.
    #[error("the execution is {status}; only failed or cancelled executions can be retried")]
    NotRetryable { status: String },
    /// A run is retried once; `retry` is the run that retried it.
    #[error("the execution was already retried by `{retry}`; retry that one instead")]
    AlreadyRetried { retry: String },
    /// An earlier start with the same idempotency key (a webhook's delivery ID) was stored at
    /// `stored_at` (Unix ms), within the key's window: no second run.
    #[error("an earlier request with the same idempotency key started a run")]
    Duplicate { stored_at: i64 },
    /// The process is shutting down: its run starter takes no more runs.
    #[error("the worker is stopping")]
    Stopped,
}

impl WorkerError {
    /// `Some` when the store could not be reached (worth a retry), `None` otherwise.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            WorkerError::Store(e) => e.retry_after(),
            WorkerError::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Protocol(_),
            )
            | WorkerError::Stopped => Some(RETRY_AFTER),
            _ => None,
        }
    }
}
