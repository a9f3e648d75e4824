//! The worker service: claims tasks, runs their activities within the configured slots,
//! advances runs, heartbeats leases and the dispatcher, and keeps the cached metrics fresh.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use compozy_autoload::ToolRules;
use compozy_autoload::resources::{Action, Workflow};
use compozy_core::Secret;
use compozy_store::Store;
use compozy_telemetry::Registry;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::task::JoinSet;

use crate::activity::{self, Limits, Outcome};
use crate::clock::now_ms;
use crate::completion::Completer;
use crate::config::WorkerConfig;
use crate::error::WorkerError;
use crate::metrics::WorkerMetrics;
use crate::model::RunStatus;
use crate::project::Project;
use crate::queue::{Claimed, Failed, NewRun, Queue, Success};
use crate::runs::new_task;
use crate::starter::{Companion, Starter};
use crate::{backoff, dispatcher, template};

/// A cheap handle; clones share one worker.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: WorkerConfig,
    pub(crate) queue: Queue,
    pub(crate) project: Arc<dyn Project>,
    pub(crate) metrics: WorkerMetrics,
    /// Lease owner and dispatcher instance id: unique per process start.
    pub(crate) id: String,
    pub(crate) wake: Notify,
    /// Attempts running here, by fencing token: the heartbeat extends exactly these leases and
    /// stops those whose lease it finds lost. Keyed by attempt, not task: a task re-claimed by
    /// this process after a lost lease is a different attempt.
    pub(crate) inflight: parking_lot::Mutex<HashMap<String, Inflight>>,
    paused: AtomicBool,
    http: Option<reqwest::Client>,
    pub(crate) listen_url: Option<Secret>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("id", &self.inner.id).field("queue", &self.inner.config.queue).finish()
    }
}

/// An attempt running in this process.
pub(crate) struct Inflight {
    pub(crate) task_id: String,
    /// Fired when the lease is found lost: the activity is stopped.
    pub(crate) lost: oneshot::Sender<()>,
}

/// Slots one claimed task holds: its run's until the run is advanced, the activity's while it runs.
struct Slots {
    workflow: OwnedSemaphorePermit,
    activity: OwnedSemaphorePermit,
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
        let inner = Inner {
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
        Ok(Worker { inner: Arc::new(inner) })
    }

    /// PostgreSQL only: wake on `LISTEN compozy_tasks` through a dedicated connection to `url`
    /// (the poll interval remains the fallback). Call before the worker is cloned.
    pub fn listen(mut self, url: Secret) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.listen_url = Some(url);
        }
        self
    }

    pub fn id(&self) -> &str {
        &self.inner.id
    }

    pub fn queue(&self) -> &Queue {
        &self.inner.queue
    }

    pub fn project(&self) -> &Arc<dyn Project> {
        &self.inner.project
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.inner.config
    }

    /// Stops claiming (running activities continue); heartbeats and metrics go on.
    pub fn pause(&self) {
        self.inner.paused.store(true, Ordering::SeqCst);
    }

    pub fn resume(&self) {
        self.inner.paused.store(false, Ordering::SeqCst);
        self.inner.wake.notify_one();
    }

    /// Starts a run of workflow `workflow_id` with `input` (one transaction: run + first task).
    /// The input must satisfy the workflow's `input` schema ([`WorkerError::InvalidInput`]).
    pub async fn start_run(&self, workflow_id: &str, input: &serde_json::Value) -> Result<String, WorkerError> {
        let registry = self.inner.project.registry();
        let workflow =
            registry.workflow(workflow_id).ok_or_else(|| WorkerError::UnknownWorkflow(workflow_id.to_string()))?;
        check_input(workflow, input)?;
        let id = self.inner.queue.start_run(workflow, input, &self.inner.config.queue).await?;
        self.inner.wake.notify_one();
        Ok(id)
    }

    /// Starts a new run of the workflow and input of run `id`, linked to it; only a failed or
    /// cancelled run is retried, and only once. The input is checked against the workflow as
    /// it is now. Returns the new run's id.
    pub async fn retry_run(&self, id: &str) -> Result<String, WorkerError> {
        let queue = &self.inner.queue;
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
        self.inner.wake.notify_one();
        Ok(new.id)
    }

    /// A run of workflow `workflow_id` with `input`, to store through a [`Starter`]; the input
    /// is checked against the workflow's `input` schema as in [`Worker::start_run`].
    pub fn new_run(&self, workflow_id: &str, input: &serde_json::Value) -> Result<NewRun, WorkerError> {
        let registry = self.inner.project.registry();
        let workflow =
            registry.workflow(workflow_id).ok_or_else(|| WorkerError::UnknownWorkflow(workflow_id.to_string()))?;
        check_input(workflow, input)?;
        NewRun::of(workflow, input, &self.inner.config.queue)
    }

    /// Group-committing run starts with rows of type `C` stored beside them (see [`Starter`]);
    /// spawns its flushers on the current runtime. This process's worker is woken per commit.
    pub fn starter<C: Companion>(&self) -> Starter<C> {
        let inner = self.inner.clone();
        Starter::spawn(self.inner.queue.clone(), Arc::new(move || inner.wake.notify_one()))
    }

    /// Runs until `shutdown` completes, then stops claiming, lets running activities finish up
    /// to `shutdown_timeout`, and releases the leases of those still running.
    pub async fn run<F: Future<Output = ()>>(&self, shutdown: F) -> Result<(), WorkerError> {
        let inner = &self.inner;
        dispatcher::register(inner).await;
        let (acts, wfs) = inner.config.slots();
        // Without slots (`worker.enabled: false`) nothing is ever claimed.
        let (acts, wfs) = (Arc::new(Semaphore::new(acts as usize)), Arc::new(Semaphore::new(wfs as usize)));
        let mut running: JoinSet<()> = JoinSet::new();
        // One batch being written and one collecting: the backlog stays within twice the slots.
        let backlog = 2 * wfs.available_permits();
        let (completer, flusher) = Completer::spawn(inner.queue.clone(), backlog);
        // Its own task: polled inside this loop's select it would freeze whenever the loop awaits
        // a claim, and a claim may wait for the SQLite writer lock the frozen refresh holds.
        let _background = AbortOnDrop(tokio::spawn(dispatcher::background(self.inner.clone())));
        tokio::pin!(shutdown);
        loop {
            // A finished task's cell stays in the set until joined; under a backlog every claim
            // is full and the loop below never reaches `join_next`, so reap them here, or the
            // set keeps every task this process ever ran (≈ 180 B each).
            while running.try_join_next().is_some() {}
            if self.claim_round(&acts, &wfs, &completer, &mut running).await {
                // A full batch: more may be ready, so claim again unless shutting down.
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = std::future::ready(()) => continue,
                }
            }
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = running.join_next(), if !running.is_empty() => {
                    // Successes are recorded in batches, so their tasks end together: collect
                    // them all and claim one batch for the freed slots, not one claim each.
                    tokio::task::yield_now().await;
                    while running.try_join_next().is_some() {}
                }
                () = inner.wake.notified() => {
                    // Successes free their slots together: claim once for all of them.
                    tokio::task::yield_now().await;
                }
                () = tokio::time::sleep(inner.config.poll_interval) => {}
            }
        }
        drop(completer);
        self.drain(running, flusher).await;
        Ok(())
    }

    async fn drain(&self, mut running: JoinSet<()>, flusher: tokio::task::JoinHandle<()>) {
        let deadline = tokio::time::sleep(self.inner.config.shutdown_timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = running.join_next() => if next.is_none() { break },
                () = &mut deadline => break,
            }
        }
        running.shutdown().await;
        // Successes already handed to the flusher are written before the leases are released
        // (released first, their tasks would run again); it ends once its handles are gone.
        let _ = tokio::time::timeout(FLUSH_AT_SHUTDOWN, flusher).await;
        if let Err(e) = self.inner.queue.release(&self.inner.id).await {
            tracing::warn!(error = %e, "could not release leases at shutdown; they expire instead");
        }
        dispatcher::deregister(&self.inner).await;
    }

    /// Claims what free slots allow; `true` when the batch was full (more may be waiting).
    async fn claim_round(
        &self,
        acts: &Arc<Semaphore>,
        wfs: &Arc<Semaphore>,
        completer: &Completer,
        running: &mut JoinSet<()>,
    ) -> bool {
        let inner = &self.inner;
        let free = acts.available_permits().min(wfs.available_permits()).min(inner.config.claim_batch as usize);
        if free == 0 || inner.paused.load(Ordering::SeqCst) {
            return false;
        }
        let lease_until = now_ms() + millis(inner.config.lease);
        let claimed = match inner.queue.claim(&inner.config.queue, &inner.id, free as i64, lease_until).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "claiming tasks failed");
                return false;
            }
        };
        let full = claimed.len() == free;
        let claimed_at = now_ms();
        for task in claimed {
            let (Ok(workflow), Ok(activity)) = (wfs.clone().try_acquire_owned(), acts.clone().try_acquire_owned())
            else {
                // Cannot happen (slots were counted above); the lease expires and is rescued.
                continue;
            };
            inner.metrics.schedule_to_start((claimed_at - task.available_at) as f64 / 1000.0);
            inner.metrics.snapshot.workflows.fetch_add(1, Ordering::Relaxed);
            let (lost, on_lost) = oneshot::channel();
            inner.inflight.lock().insert(task.token.clone(), Inflight { task_id: task.id.clone(), lost });
            let (me, completer) = (self.inner.clone(), completer.clone());
            running.spawn(async move { execute(me, task, Slots { workflow, activity }, completer, on_lost).await });
        }
        full
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

/// How long shutdown waits for the last successes to be written before releasing leases.
const FLUSH_AT_SHUTDOWN: Duration = Duration::from_secs(5);

/// Stops the background task when the worker stops, or when its `run` future is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Decrements a gauge when dropped, so aborted tasks are counted out too.
struct Counted<'a>(&'a std::sync::atomic::AtomicI64);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn execute(inner: Arc<Inner>, task: Claimed, slots: Slots, completer: Completer, lost: oneshot::Receiver<()>) {
    let workflow_gauge = Counted(&inner.metrics.snapshot.workflows);
    let registry = inner.project.registry();
    let attempt = async {
        match resolve(&inner, &registry, &task).await {
            Ok((workflow, input)) => {
                (Some(workflow), run_activity(&inner, workflow, &task, input, slots.activity).await)
            }
            Err(outcome) => (None, outcome),
        }
    };
    // Losing the lease drops the attempt's future: a tool's process group is killed with it,
    // and nothing is recorded (another attempt owns the task now, or its run was cancelled).
    let ended = tokio::select! {
        ended = attempt => Some(ended),
        Ok(()) = lost => None,
    };
    if let Some((workflow, outcome)) = ended {
        let held = Held { _gauge: workflow_gauge, _slot: slots.workflow };
        record(&inner, &completer, workflow, &task, outcome, held).await;
    }
    inner.inflight.lock().remove(&task.token);
}

/// What a task holds until its outcome is recorded, or, for a success, handed to the flusher.
struct Held<'a> {
    // Fields drop in order: the gauge goes down before the slot can be claimed again.
    _gauge: Counted<'a>,
    _slot: OwnedSemaphorePermit,
}

/// The workflow of `task` and the context its activity's templates are rendered with.
async fn resolve<'r>(
    inner: &Inner,
    registry: &'r compozy_autoload::ProjectRegistry,
    task: &Claimed,
) -> Result<(&'r Workflow, serde_json::Value), Outcome> {
    let workflow =
        registry.workflow(&task.workflow_id).ok_or_else(|| Outcome::Permanent("workflow no longer loaded".into()))?;
    let def = usize::try_from(task.position).ok().and_then(|p| workflow.tasks.get(p));
    let Some(def) = def.filter(|d| d.id.as_str() == task.name) else {
        return Err(Outcome::Permanent("task no longer in the workflow".into()));
    };
    // Only templates read earlier outputs: a first task or a wait needs no read of the run.
    let outputs = if task.position == 0 || matches!(def.action, Action::Wait(_)) {
        Vec::new()
    } else {
        inner.queue.outputs(&task.run_id).await.map_err(|e| Outcome::Error(format!("reading the run failed: {e}")))?
    };
    let parse = |s: &str| serde_json::from_str(s).unwrap_or(serde_json::Value::Null);
    let outputs = outputs.into_iter().map(|(id, o)| (id, o.as_deref().map(parse))).collect();
    Ok((workflow, template::context(parse(&task.input), outputs)))
}

async fn run_activity(
    inner: &Inner,
    workflow: &Workflow,
    task: &Claimed,
    ctx: serde_json::Value,
    slot: OwnedSemaphorePermit,
) -> Outcome {
    let Some(def) = usize::try_from(task.position).ok().and_then(|p| workflow.tasks.get(p)) else {
        return Outcome::Permanent("task no longer in the workflow".into());
    };
    let _gauge = {
        inner.metrics.snapshot.activities.fetch_add(1, Ordering::Relaxed);
        Counted(&inner.metrics.snapshot.activities)
    };
    let started = Instant::now();
    let c = &inner.config;
    let limits = Limits { stdout: c.max_output_bytes, stderr: c.max_stderr_bytes, response: c.max_response_bytes };
    let outcome = match &def.action {
        Action::Wait(w) => activity::wait(w.duration, def.timeout).await,
        Action::Tool(t) => {
            let registry = inner.project.registry();
            match registry.tool(t.tool.as_str()) {
                None => Outcome::Permanent(format!("tool `{}` is not loaded", t.tool)),
                Some(tool) => {
                    let input = t.input.as_ref().map_or(serde_json::Value::Null, |i| template::render(i, &ctx));
                    match ToolRules::new(&inner.project.root(), &c.allowed_commands) {
                        Ok(rules) => activity::tool(tool, &rules, &input, def.timeout, limits).await,
                        Err(e) => Outcome::Error(format!("project root: {}", e.kind())),
                    }
                }
            }
        }
        Action::Http(h) => match &inner.http {
            None => Outcome::Permanent("no HTTP client could be built".into()),
            Some(client) => {
                let body = h.body.as_ref().map(|b| template::render(b, &ctx));
                activity::http(client, h, body, def.timeout, limits.response).await
            }
        },
    };
    inner.metrics.activity(task.kind, outcome.label(), started.elapsed().as_secs_f64());
    drop(slot);
    outcome
}

/// Writes the attempt's outcome and advances the run; a store failure leaves the lease to
/// expire, and the rescue re-queues the task.
async fn record(
    inner: &Inner,
    completer: &Completer,
    workflow: Option<&Workflow>,
    task: &Claimed,
    outcome: Outcome,
    held: Held<'_>,
) {
    let q = &inner.queue;
    let result = match outcome {
        Outcome::Success(value) => {
            let next_pos = usize::try_from(task.position).unwrap_or(usize::MAX).saturating_add(1);
            let next = workflow.and_then(|w| new_task(w, &task.run_id, next_pos, &task.queue, now_ms()));
            let has_next = next.is_some();
            let success = Success {
                task_id: task.id.clone(),
                token: task.token.clone(),
                run_id: task.run_id.clone(),
                output: value.to_string(),
                next,
            };
            let stored = completer.submit(success).await;
            // Nothing runs for this task any more: free its slot now, so the next claim goes
            // out while the flush is in flight instead of after it.
            drop(held);
            inner.wake.notify_one();
            let done = stored.await;
            if has_next && done == Some(true) {
                inner.wake.notify_one();
            }
            return;
        }
        Outcome::Permanent(e) => q.fail(task, &inner.id, "error", &e, None, true).await,
        failed => {
            let error = match &failed {
                Outcome::Error(e) => e.as_str(),
                _ => "timed out",
            };
            let policy = workflow.and_then(|w| usize::try_from(task.position).ok().and_then(|p| w.tasks.get(p)));
            let retry_at = policy.map(|d| now_ms() + millis(backoff::delay(&d.retry.backoff, task.attempt)));
            q.fail(task, &inner.id, failed.label(), error, retry_at, false).await
        }
    };
    drop(held);
    match result {
        Ok(Failed::Retried) => inner.metrics.retry(task.kind),
        Ok(Failed::Dead) => inner.metrics.dead(),
        Ok(Failed::Lost) => {
            tracing::info!(task = %task.id, "the attempt had lost its lease; its failure was not recorded")
        }
        Ok(Failed::Failed) => {}
        Err(e) => tracing::warn!(task = %task.id, error = %e, "recording a task outcome failed; its lease will expire"),
    }
}
