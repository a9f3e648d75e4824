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

// Layers, top down (each module imports only from layers below it):
// the handle `worker` and the `api`; the services (`claimer` → `execute` → `completer`,
// `starter`, `heartbeat`, `rescuer`, `gauges`, `listener`, `retention`) over the shared
// `context`; the `queue` handle; the `driver` and its backends; the rows (`runs`,
// `attempts`, `model`) and leaves (`clock`, `config`, `error`, `activity`, `template`, ...).
mod activity;
pub mod api;
pub mod attempts;
mod backoff;
mod claimer;
mod clock;
mod completer;
pub mod config;
mod context;
pub mod driver;
pub mod error;
mod execute;
mod gauges;
mod heartbeat;
mod listener;
mod metrics;
pub mod model;
pub mod project;
pub mod queue;
mod rescuer;
pub mod retention;
pub mod runs;
pub mod starter;
mod template;
mod worker;

pub use attempts::{Attempt, TaskHistory};
pub use config::WorkerConfig;
pub use driver::{Companion, Driver};
pub use error::WorkerError;
pub use model::{AttemptOutcome, Backend, RunStatus, TaskKind, TaskState};
pub use project::Project;
pub use queue::{NewRun, Queue};
pub use retention::{Pruner, RetentionConfig};
pub use runs::{Run, RunFilter, TaskRow};
pub use starter::Starter;
pub use worker::Worker;
