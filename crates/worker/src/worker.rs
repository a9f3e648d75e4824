//! The worker handle: builds the process's [`Context`] and runs its services — the claim loop
//! ([`crate::claimer`], which spawns [`crate::execute`] per attempt and feeds the
//! [`crate::completer`]), the heartbeat and registry, the rescuer, the gauges and the listener —
//! and starts runs (directly or through a [`Starter`]).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use compozy_autoload::resources::Workflow;
use compozy_core::Secret;
use compozy_store::Store;
use compozy_telemetry::Registry;
use tokio::sync::Notify;
use tracing::Instrument;

use crate::config::WorkerConfig;
use crate::context::Context;
use crate::driver::Companion;
use crate::error::WorkerError;
use crate::metrics::WorkerMetrics;
use crate::model::RunStatus;
use crate::project::Project;
use crate::queue::{NewRun, Queue};
use crate::starter::Starter;
use crate::{activity, claimer, gauges, heartbeat, listener, rescuer};

/// A cheap handle; clones share one worker.
#[derive(Clone)]
pub struct Worker {
    ctx: Arc<Context>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("id", &self.ctx.id).field("queue", &self.ctx.config.queue).finish()
    }
}

impl Worker {
    /// Builds the worker and registers its metrics on `metrics`; claims nothing until [`run`].
    ///
    /// [`run`]: Worker::run
    pub fn new(
        config: WorkerConfig,
        store: Store,
        project: Arc<dyn Project>,
        metrics: &Registry,
    ) -> Result<Worker, WorkerError> {
        config.validate().map_err(WorkerError::Config)?;
        let slots = config.slots();
        let stale_ms = i64::try_from(config.stale_after.as_millis()).unwrap_or(i64::MAX);
        let ctx = Context {
            metrics: WorkerMetrics::new(metrics, &config.queue, slots, stale_ms),
            queue: Queue::new(store),
            project,
            id: format!("worker-{}", uuid::Uuid::new_v4().simple()),
            wake: Notify::new(),
            inflight: Default::default(),
            paused: AtomicBool::new(false),
            http: activity::http_client().ok(),
            listen_url: None,
            config,
        };
        Ok(Worker { ctx: Arc::new(ctx) })
    }

    /// PostgreSQL only: wake on `LISTEN compozy_tasks` through a dedicated connection to `url`
    /// (the poll interval remains the fallback). Call before the worker is cloned.
    pub fn listen(mut self, url: Secret) -> Self {
        if let Some(ctx) = Arc::get_mut(&mut self.ctx) {
            ctx.listen_url = Some(url);
        }
        self
    }

    pub fn id(&self) -> &str {
        &self.ctx.id
    }

    pub fn queue(&self) -> &Queue {
        &self.ctx.queue
    }

    pub fn project(&self) -> &Arc<dyn Project> {
        &self.ctx.project
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.ctx.config
    }

    /// Stops claiming (running activities continue); heartbeats and metrics go on.
    pub fn pause(&self) {
        self.ctx.paused.store(true, Ordering::SeqCst);
    }

    pub fn resume(&self) {
        self.ctx.paused.store(false, Ordering::SeqCst);
        self.ctx.wake.notify_one();
    }

    /// Starts a run of workflow `workflow_id` with `input` (one transaction: run + first task).
    /// The input must satisfy the workflow's `input` schema ([`WorkerError::InvalidInput`]).
    pub async fn start_run(&self, workflow_id: &str, input: &serde_json::Value) -> Result<String, WorkerError> {
        let registry = self.ctx.project.registry();
        let workflow =
            registry.workflow(workflow_id).ok_or_else(|| WorkerError::UnknownWorkflow(workflow_id.to_string()))?;
        check_input(workflow, input)?;
        // The first task is enqueued inside this span: its attempt continues the trace.
        let span = compozy_telemetry::child_span!("run.start", workflow.id = %workflow_id);
        let id = self.ctx.queue.start_run(workflow, input, &self.ctx.config.queue).instrument(span).await?;
        self.ctx.wake.notify_one();
        Ok(id)
    }

    /// Starts a new run of the workflow and input of run `id`, linked to it; only a failed or
    /// cancelled run is retried, and only once. The input is checked against the workflow as
    /// it is now. Returns the new run's id.
    pub async fn retry_run(&self, id: &str) -> Result<String, WorkerError> {
        let queue = &self.ctx.queue;
        let run = queue.get_run(id).await?.ok_or_else(|| WorkerError::UnknownRun(id.to_string()))?;
        if !matches!(RunStatus::parse(&run.status), Some(RunStatus::Failed | RunStatus::Cancelled)) {
            return Err(WorkerError::NotRetryable { status: run.status });
        }
        if let Some(retry) = run.retried_by {
            return Err(WorkerError::AlreadyRetried { retry });
        }
        let new = self.new_run(&run.workflow_id, &run.input)?;
        if !queue.insert_retry(&new, id).await? {
            // Another retry of the same run committed first.
            let retry = queue.get_run(id).await?.and_then(|r| r.retried_by).unwrap_or_default();
            return Err(WorkerError::AlreadyRetried { retry });
        }
        self.ctx.wake.notify_one();
        Ok(new.id)
    }

    /// A run of workflow `workflow_id` with `input`, to store through a [`Starter`]; the input
    /// is checked against the workflow's `input` schema as in [`Worker::start_run`].
    pub fn new_run(&self, workflow_id: &str, input: &serde_json::Value) -> Result<NewRun, WorkerError> {
        let registry = self.ctx.project.registry();
        let workflow =
            registry.workflow(workflow_id).ok_or_else(|| WorkerError::UnknownWorkflow(workflow_id.to_string()))?;
        check_input(workflow, input)?;
        NewRun::of(workflow, input, &self.ctx.config.queue)
    }

    /// Group-committing run starts with rows of type `C` stored beside them (see [`Starter`]);
    /// spawns its flushers on the current runtime. This process's worker is woken per commit.
    pub fn starter<C: Companion>(&self) -> Starter<C> {
        let ctx = self.ctx.clone();
        Starter::spawn(self.ctx.queue.clone(), Arc::new(move || ctx.wake.notify_one()))
    }

    /// Runs until `shutdown` completes, then stops claiming, lets running activities finish up
    /// to `shutdown_timeout`, and releases the leases of those still running.
    pub async fn run<F: Future<Output = ()>>(&self, shutdown: F) -> Result<(), WorkerError> {
        heartbeat::register(&self.ctx).await;
        // Their own task: polled inside the claim loop's select they would freeze whenever the
        // loop awaits a claim, and a claim may wait for the SQLite writer lock a frozen one holds.
        let ctx = self.ctx.clone();
        let mut services = AbortOnDrop(tokio::spawn(async move {
            tokio::join!(heartbeat::run(&ctx), rescuer::run(&ctx), gauges::run(&ctx), listener::run(&ctx));
        }));
        claimer::run(self.ctx.clone(), shutdown).await;
        // The heartbeat ends before the row goes: one still running would register it again.
        services.stop().await;
        heartbeat::deregister(&self.ctx).await;
        Ok(())
    }
}

/// The first violation of the workflow's input schema, by JSON pointer. The reason may quote
/// the caller's own value, so it is bounded and meant for the caller, not for logs.
fn check_input(workflow: &Workflow, input: &serde_json::Value) -> Result<(), WorkerError> {
    let Some(schema) = &workflow.input_schema else { return Ok(()) };
    schema.0.validate(input).map_err(|e| {
        let mut reason = e.to_string();
        if reason.len() > 200 {
            let cut = (0..=200).rev().find(|i| reason.is_char_boundary(*i)).unwrap_or(0);
            reason.truncate(cut);
            reason.push('…');
        }
        WorkerError::InvalidInput { pointer: e.instance_path().as_str().to_string(), reason }
    })
}

/// Stops the services when the worker stops, or when its `run` future is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl AbortOnDrop {
    /// Aborts the services and waits until they are dropped.
    async fn stop(&mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
