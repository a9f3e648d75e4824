//! The queue handle: the driver of the store's backend (statements and state machine:
//! [`crate::driver`]) with the clock, and how a workflow's tasks become rows.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use compozy_autoload::resources::{Action, Task, Workflow};
use compozy_store::Store;

pub use crate::driver::{Claimed, Depth, Failed, NewRun, NewTask, Rescued, Success};

use crate::attempts::{self, Attempt, TaskHistory};
use crate::clock::now_ms;
use crate::driver::postgres::PostgresDriver;
use crate::driver::sqlite::SqliteDriver;
use crate::driver::{self, Companion, Driver, Rows};
use crate::error::WorkerError;
use crate::model::{Backend, TaskKind};
use crate::runs::{Run, RunFilter, TaskRow};

/// Cheap to clone; clones share the driver.
#[derive(Clone, Debug)]
pub struct Queue {
    driver: Arc<dyn Driver>,
}

impl Queue {
    /// The queue on `store`, through the driver of its backend.
    pub fn new(store: Store) -> Self {
        let driver: Arc<dyn Driver> = if store.backend() == Backend::Postgres.as_str() {
            Arc::new(PostgresDriver::new(store))
        } else {
            Arc::new(SqliteDriver::new(store))
        };
        Self { driver }
    }

    pub fn driver(&self) -> &dyn Driver {
        &*self.driver
    }

    pub fn backend(&self) -> Backend {
        self.driver.backend()
    }

    pub fn store(&self) -> &Store {
        self.driver.store()
    }

    pub fn is_postgres(&self) -> bool {
        self.backend() == Backend::Postgres
    }

    /// Stores runs with their first tasks in one transaction, with one wake-up per queue: a
    /// bulk enqueue (or a group of webhook deliveries) costs one commit, not one per run.
    pub async fn insert_runs(&self, runs: &[NewRun]) -> Result<(), WorkerError> {
        self.insert_runs_with::<()>(runs, &[]).await
    }

    /// [`Queue::insert_runs`] with a caller's `rows` inserted in the same transaction after the
    /// runs and their first tasks: webhook delivery records exist if and only if their runs do.
    pub async fn insert_runs_with<C: Companion>(&self, runs: &[NewRun], rows: &[C]) -> Result<(), WorkerError> {
        let p = driver::InsertRunsParams { runs, companions: &Rows(rows), now: now_ms() };
        self.driver.insert_runs(p).await
    }

    /// Stores a run of `workflow` with `input` and enqueues its first task on `queue`, in one
    /// transaction. Returns the run id.
    pub async fn start_run(
        &self,
        workflow: &Workflow,
        input: &serde_json::Value,
        queue: &str,
    ) -> Result<String, WorkerError> {
        let run = NewRun::of(workflow, input, queue)?;
        self.insert_runs(std::slice::from_ref(&run)).await?;
        Ok(run.id)
    }

    /// Claims up to `limit` ready tasks of `queue` for `owner` until `lease_until`, marking the
    /// runs of first tasks started. One round trip on PostgreSQL.
    pub async fn claim(
        &self,
        queue: &str,
        owner: &str,
        limit: i64,
        lease_until: i64,
    ) -> Result<Vec<Claimed>, WorkerError> {
        self.driver.claim(driver::ClaimParams { queue, owner, limit, lease_until, now: now_ms() }).await
    }

    /// Extends the leases of the attempts `(task id, token)` still held; returns the tokens
    /// extended. An attempt missing from the answer has lost its lease (rescued after a stall,
    /// or its run cancelled) and must stop. One statement on PostgreSQL.
    pub async fn extend_leases(
        &self,
        attempts: &[(String, String)],
        until: i64,
    ) -> Result<HashSet<String>, WorkerError> {
        if attempts.is_empty() {
            return Ok(HashSet::new());
        }
        self.driver.extend_leases(driver::ExtendLeasesParams { attempts, until }).await
    }

    /// Marks the tasks of `batch` succeeded (those whose attempt still holds its lease) and
    /// advances their runs. Returns the ids completed; the others had lost their lease and
    /// nothing was written for them. One round trip on PostgreSQL, one transaction on SQLite.
    pub async fn succeed_batch(&self, batch: &[Success]) -> Result<HashSet<String>, WorkerError> {
        if batch.is_empty() {
            return Ok(HashSet::new());
        }
        self.driver.complete_batch(driver::CompleteBatchParams { successes: batch, now: now_ms() }).await
    }

    /// Records a failed attempt: re-queued at `retry_at` when given and attempts remain,
    /// otherwise dead (or `failed` when `permanent`), failing the run.
    pub async fn fail(
        &self,
        task: &Claimed,
        owner: &str,
        outcome: &str,
        error: &str,
        retry_at: Option<i64>,
        permanent: bool,
    ) -> Result<Failed, WorkerError> {
        let p = driver::FailParams { task, owner, outcome, error, retry_at, permanent, now: now_ms() };
        self.driver.fail(p).await
    }

    /// Re-queues tasks whose lease expired, or dead-letters those already rescued `max_rescues`
    /// times (failing their runs), recording the lost attempt of each.
    pub async fn rescue(&self, max_rescues: u32) -> Result<Rescued, WorkerError> {
        let max_rescues = i32::try_from(max_rescues).unwrap_or(i32::MAX);
        self.driver.rescue(driver::RescueParams { max_rescues, now: now_ms() }).await
    }

    /// Cancels a pending or running run and its waiting task; `false` when it had already ended
    /// (or does not exist). A running attempt loses its lease and is stopped.
    pub async fn cancel_run(&self, run_id: &str) -> Result<bool, WorkerError> {
        self.driver.cancel_run(driver::CancelRunParams { run_id, now: now_ms() }).await
    }

    /// Graceful shutdown: hands `owner`'s running tasks back without counting the attempt.
    pub async fn release(&self, owner: &str) -> Result<u64, WorkerError> {
        self.driver.release(driver::ReleaseParams { owner, now: now_ms() }).await
    }

    /// Ready, unclaimed tasks per queue.
    pub async fn depth(&self) -> Result<BTreeMap<String, Depth>, WorkerError> {
        self.driver.queue_depths(driver::QueueDepthsParams { now: now_ms() }).await
    }

    /// The outputs of the run's succeeded tasks by task id, for templates.
    pub async fn outputs(&self, run_id: &str) -> Result<Vec<(String, Option<String>)>, WorkerError> {
        self.driver.run_outputs(driver::RunOutputsParams { run_id }).await
    }

    /// Stores `run`, a retry of run `retry_of`, with its first task in one transaction. `false`
    /// when `retry_of` already has a retry (the unique index decides between concurrent ones).
    pub async fn insert_retry(&self, run: &NewRun, retry_of: &str) -> Result<bool, WorkerError> {
        self.driver.insert_retry(driver::InsertRetryParams { run, retry_of, now: now_ms() }).await
    }

    pub async fn get_run(&self, id: &str) -> Result<Option<Run>, WorkerError> {
        self.driver.get_run(driver::GetRunParams { id }).await
    }

    /// Runs newest first, at most `filter.limit` (1–500).
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<Run>, WorkerError> {
        self.driver.list_runs(driver::ListRunsParams { filter }).await
    }

    pub async fn run_tasks(&self, run_id: &str) -> Result<Vec<TaskRow>, WorkerError> {
        self.driver.run_tasks(driver::RunTasksParams { run_id }).await
    }

    /// The ended attempts of run `run_id`'s tasks as `(task id, attempt)`, by position then attempt.
    pub async fn run_attempts(&self, run_id: &str) -> Result<Vec<(String, Attempt)>, WorkerError> {
        self.driver.run_attempts(driver::RunAttemptsParams { run_id }).await
    }

    /// Run `id`'s tasks, each with every attempt, oldest first.
    pub async fn run_history(&self, id: &str) -> Result<Vec<TaskHistory>, WorkerError> {
        Ok(attempts::history(self.run_tasks(id).await?, self.run_attempts(id).await?))
    }
}

pub fn kind_of(task: &Task) -> TaskKind {
    match task.action {
        Action::Tool(_) => TaskKind::Tool,
        Action::Http(_) => TaskKind::Http,
        Action::Wait(_) => TaskKind::Wait,
    }
}

/// The row for task `position` of `workflow`, ready at `available_at`.
pub fn new_task(workflow: &Workflow, run_id: &str, position: usize, queue: &str, available_at: i64) -> Option<NewTask> {
    let task = workflow.tasks.get(position)?;
    Some(NewTask {
        run_id: run_id.to_string(),
        position: i32::try_from(position).ok()?,
        name: task.id.as_str().to_string(),
        kind: kind_of(task),
        queue: queue.to_string(),
        max_attempts: i32::try_from(task.retry.max_attempts).unwrap_or(1).max(1),
        available_at,
        // The enqueuer's span: the task's first attempt continues its trace.
        traceparent: compozy_telemetry::traces::traceparent(),
    })
}

impl NewRun {
    /// A run of `workflow` with `input` and a fresh id, its first task ready now on `queue`.
    pub fn of(workflow: &Workflow, input: &serde_json::Value, queue: &str) -> Result<NewRun, WorkerError> {
        let id = uuid::Uuid::new_v4().to_string();
        let first = new_task(workflow, &id, 0, queue, now_ms())
            .ok_or_else(|| WorkerError::UnknownWorkflow(workflow.id.as_str().to_string()))?;
        Ok(NewRun { id, workflow_id: workflow.id.as_str().to_string(), input: input.to_string(), first })
    }
}
