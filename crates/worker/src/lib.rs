//! The durable worker layer: a task queue in the store (leases, heartbeats, retries with
//! backoff, dead-lettering), workflow runs advanced task by task, the `wait`, `tool` and `http`
//! activities, dispatcher health, the execution API's handlers, and the catalog's worker metrics.
//!
//! ```no_run
//! # async fn demo(store: compozy_store::Store, autoloader: compozy_autoload::Autoloader,
//! #               metrics: std::sync::Arc<compozy_telemetry::Registry>) -> Result<(), compozy_worker::WorkerError> {
//! use std::sync::Arc;
//! let worker = compozy_worker::Worker::new(Default::default(), store, Arc::new(autoloader), &metrics)?;
//! let run_id = worker.start_run("github-push", &serde_json::json!({"repository": "a/b"})).await?;
//! worker.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # let _ = run_id; Ok(()) }
//! ```

mod activity;
pub mod api;
pub mod attempts;
mod backoff;
mod clock;
mod completion;
pub mod config;
mod dispatcher;
pub mod error;
mod metrics;
pub mod model;
pub mod project;
pub mod queue;
pub mod retention;
pub mod runs;
pub mod starter;
mod template;
mod worker;

pub use attempts::{Attempt, TaskHistory};
pub use config::WorkerConfig;
pub use error::WorkerError;
pub use model::{AttemptOutcome, Backend, RunStatus, TaskKind, TaskState};
pub use project::Project;
pub use queue::NewRun;
pub use queue::Queue;
pub use retention::{Pruner, RetentionConfig};
pub use runs::{Run, RunFilter, TaskRow};
pub use starter::{Companion, Starter};
pub use worker::Worker;
