//! The queue driver: one trait whose methods are the queue's statements, one parameter struct
//! each, implemented for PostgreSQL ([`postgres`]) and SQLite ([`sqlite`]). Everything above
//! this module speaks to the store through [`Driver`] alone. The state machine the statements
//! implement:
//!
//! ```text
//!                 claim (attempt += 1, fresh lease_token, lease set)
//!   available ─────────────────────────────────────────────▶ running
//!      ▲  ▲                                                    │
//!      │  └── failure, attempt - rescues < max_attempts ───────┤ (available_at = now + backoff)
//!      │  └── lease expired, rescues < max_rescues ────────────┤ (rescue: rescues += 1, ready now)
//!      │  └── graceful release (attempt -= 1) ─────────────────┤
//!      │                                                       ├── success ───────────────▶ succeeded
//!      │                                                       ├── last attempt failed ───▶ dead (dead-lettered)
//!      │                                                       ├── lease expired, rescues ▶ dead (keeps killing
//!      │                                                       │   = max_rescues               its workers)
//!      │                                                       └── cannot run at all ─────▶ failed (no retry helps)
//!      └── run cancelled (a running attempt loses its lease and is stopped) ─────────▶ cancelled
//! ```
//!
//! A lease that expires means the worker died (or lost the store for longer than a lease), not
//! that the task failed: the rescue re-queues it without consuming `max_attempts`, which count
//! the task's own failures (`attempt - rescues`). A separate bound, `worker.max_rescues`,
//! dead-letters a task that keeps killing its workers. Each rescue is an attempt of the
//! history (outcome `rescued`).
//!
//! Every claim draws a fresh `lease_token`, and every transition out of `running` (and every
//! lease extension) is guarded by it and by `state = 'running'`: an attempt whose lease was
//! rescued and re-claimed, elsewhere or by the same process, can neither extend nor end the new
//! attempt, so each task ends exactly once. A run has one task row at a time: the next row is
//! inserted in the statement (or transaction) that marks the previous one `succeeded`. Each
//! attempt that did not succeed (failure, timeout, expired lease) also gets a `task_attempts`
//! row there; the attempt that succeeded is recorded by the task row itself (outcome, times,
//! output and, in `lease_owner`, its worker), which saves a row and its index entry per task on
//! the hot path. A graceful release does not count as an attempt and writes nothing.
//!
//! A run's row is written when the run is inserted and when it ends, never by a claim: a run
//! is `running` once it is `pending` and its first task has started (`first_started_at`, set by
//! its first claim and kept by retries and rescues), which the reads derive ([`sql::GET_RUN`]).
//! A second row write per claimed task cost about a fifth of the throughput.
//!
//! Round trips per task are what bound throughput on PostgreSQL, so there a claim is one
//! statement per batch that also returns each run's workflow and input, and the successes a
//! worker gathers while a flush is in flight are recorded (and their runs advanced, with one
//! NOTIFY per queue) by one statement per batch. SQLite serialises writers, so its claim is a
//! plain `UPDATE … RETURNING` and its batch is one transaction of the per-task statements;
//! writers of one process queue on a process-wide lock before taking a connection. Statements
//! whose text both backends share are in [`sql`] (sqlx takes `$n` on SQLite too); each
//! backend's own are in its module.
//!
//! Every task row is inserted with the W3C `traceparent` of the span that enqueued it
//! ([`NewTask::traceparent`]; NULL with tracing off) and a claim returns it
//! ([`Claimed::traceparent`]): the first attempt continues that trace, later attempts (retries,
//! rescues) link to it. No transition changes it.
//!
//! A driver never reads the clock: every time it writes comes in its parameters (`now`).

pub mod postgres;
mod rows;
pub mod sql;
pub mod sqlite;

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use compozy_store::{Instance, Store};

pub use rows::{Claimed, Dependent, Depth, Failed, NewRun, NewTask, PrunedRuns, Rescued, RunDelete, Success};

use crate::attempts::Attempt;
use crate::error::WorkerError;
use crate::model::Backend;
use crate::runs::{Run, RunFilter, TaskRow};

/// What every driver method returns: boxed, so the trait can be a `dyn Driver` (one allocation
/// per statement, never per task).
pub type DriverFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, WorkerError>> + Send + 'a>>;

/// An implementation's statement as a [`DriverFuture`] (its output type guides `?` inside).
pub fn boxed<'a, T>(f: impl Future<Output = Result<T, WorkerError>> + Send + 'a) -> DriverFuture<'a, T> {
    Box::pin(f)
}

/// The queue's statements. Each method is one statement on PostgreSQL (or one transaction
/// where the doc says so) and one transaction on SQLite.
pub trait Driver: Send + Sync + std::fmt::Debug {
    fn backend(&self) -> Backend;
    fn store(&self) -> &Store;

    /// Runs with their first tasks and the caller's companion rows, one transaction, one
    /// wake-up per queue (PostgreSQL: one statement per table, then the NOTIFYs).
    fn insert_runs<'a>(&'a self, p: InsertRunsParams<'a>) -> DriverFuture<'a, ()>;

    /// Stores a retry's run, linked to the run it retries, with its first task (and its wake-up)
    /// in one transaction. `false` when that run already has a retry.
    fn insert_retry<'a>(&'a self, p: InsertRetryParams<'a>) -> DriverFuture<'a, bool>;
    /// Leases up to `limit` ready tasks and marks the runs of first tasks started.
    fn claim<'a>(&'a self, p: ClaimParams<'a>) -> DriverFuture<'a, Vec<Claimed>>;
    /// Extends the leases of the attempts still held; returns their tokens.
    fn extend_leases<'a>(&'a self, p: ExtendLeasesParams<'a>) -> DriverFuture<'a, HashSet<String>>;
    /// Marks a batch of successes, advances their runs; returns the task ids completed.
    fn complete_batch<'a>(&'a self, p: CompleteBatchParams<'a>) -> DriverFuture<'a, HashSet<String>>;
    /// Records a failed attempt: re-queued, dead or failed (one transaction).
    fn fail<'a>(&'a self, p: FailParams<'a>) -> DriverFuture<'a, Failed>;
    /// Re-queues (or dead-letters) tasks whose lease expired (one transaction).
    fn rescue<'a>(&'a self, p: RescueParams) -> DriverFuture<'a, Rescued>;
    /// Hands an owner's running tasks back at shutdown, not counting the attempt.
    fn release<'a>(&'a self, p: ReleaseParams<'a>) -> DriverFuture<'a, u64>;
    /// Cancels a live run and its waiting or running task (one transaction).
    fn cancel_run<'a>(&'a self, p: CancelRunParams<'a>) -> DriverFuture<'a, bool>;

    /// Ready, unclaimed tasks per queue.
    fn queue_depths<'a>(&'a self, p: QueueDepthsParams) -> DriverFuture<'a, BTreeMap<String, Depth>>;
    /// The outputs of a run's succeeded tasks as `(task name, output)`, by position.
    fn run_outputs<'a>(&'a self, p: RunOutputsParams<'a>) -> DriverFuture<'a, Vec<(String, Option<String>)>>;
    fn get_run<'a>(&'a self, p: GetRunParams<'a>) -> DriverFuture<'a, Option<Run>>;
    fn list_runs<'a>(&'a self, p: ListRunsParams<'a>) -> DriverFuture<'a, Vec<Run>>;
    fn run_tasks<'a>(&'a self, p: RunTasksParams<'a>) -> DriverFuture<'a, Vec<TaskRow>>;
    /// The ended attempts of a run's tasks as `(task id, attempt)`, by position then attempt.
    fn run_attempts<'a>(&'a self, p: RunAttemptsParams<'a>) -> DriverFuture<'a, Vec<(String, Attempt)>>;

    /// The deletes of one batch of runs for this backend, children first (built once).
    fn run_deletes(&self, dependents: &[Dependent]) -> Vec<RunDelete>;
    /// Deletes a batch of finished runs with their rows (one transaction).
    fn prune_runs<'a>(&'a self, p: PruneRunsParams<'a>) -> DriverFuture<'a, PrunedRuns>;
    /// One batch of another crate's sweep statement; returns the rows it changed.
    fn sweep<'a>(&'a self, p: SweepParams) -> DriverFuture<'a, u64>;
    /// SQLite: gives up to `max_pages` free pages back to the file system, returning how many
    /// (0: nothing to give, or PostgreSQL, whose own vacuum does this).
    fn reclaim_pages<'a>(&'a self, p: ReclaimPagesParams) -> DriverFuture<'a, u64>;

    // The dispatcher registry is the store's `instances` table, whose one text serves both
    // backends (and the server's instance listing): these delegate to it.

    fn register_dispatcher<'a>(&'a self, p: RegisterDispatcherParams<'a>) -> DriverFuture<'a, ()> {
        boxed(async move { Ok(self.store().register_instance(p.id, p.role).await.map(|_| ())?) })
    }
    /// `false` when the row is gone (pruned or never registered).
    fn heartbeat_dispatcher<'a>(&'a self, p: HeartbeatDispatcherParams<'a>) -> DriverFuture<'a, bool> {
        boxed(async move { Ok(self.store().heartbeat(p.id).await?) })
    }
    fn deregister_dispatcher<'a>(&'a self, p: DeregisterDispatcherParams<'a>) -> DriverFuture<'a, bool> {
        boxed(async move { Ok(self.store().remove_instance(p.id).await?) })
    }
    /// Deletes rows silent for longer than `older_than` (dead processes); returns how many.
    fn prune_dispatchers<'a>(&'a self, p: PruneDispatchersParams) -> DriverFuture<'a, u64> {
        boxed(async move { Ok(self.store().prune_instances(p.older_than).await?) })
    }
    /// Every registered row, whatever its age.
    fn list_dispatchers<'a>(&'a self, _: ListDispatchersParams) -> DriverFuture<'a, Vec<Instance>> {
        boxed(async move { Ok(self.store().list_instances(Duration::from_secs(100 * 365 * 24 * 3600)).await?) })
    }
}

// ---- Transactions shared with other crates ----------------------------------------------------

/// A connection inside the open transaction of [`Driver::insert_runs`], on either backend.
#[derive(Debug)]
pub enum TxConn<'c> {
    Postgres(&'c mut sqlx::PgConnection),
    Sqlite(&'c mut sqlx::SqliteConnection),
}

/// What the caller's part of the transaction returns.
pub type TxFuture<'c> = Pin<Box<dyn Future<Output = Result<(), sqlx::Error>> + Send + 'c>>;

/// When each row of a batch was stored before, if it was (see [`Companion::stored_before`]).
pub type StoredFuture<'c> = Pin<Box<dyn Future<Output = Result<Vec<Option<i64>>, WorkerError>> + Send + 'c>>;

/// Rows a caller stores with the runs it starts (a webhook's delivery records).
pub trait Companion: Send + Sync + Sized + 'static {
    /// Inserts `rows` inside the runs' open transaction (each row knows its run's id).
    fn insert_all<'c>(rows: &'c [Self], conn: TxConn<'c>) -> TxFuture<'c>;

    /// For each of `rows`, when an earlier row with its idempotency key was stored within the
    /// key's window (Unix ms), if one was; empty when none was. Asked once per batch before
    /// the transaction: such a row's run is not started again, and its caller gets
    /// [`WorkerError::Duplicate`].
    fn stored_before<'c>(_rows: &'c [Self], _store: &'c Store) -> StoredFuture<'c> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// Nothing stored beside the runs.
impl Companion for () {
    fn insert_all<'c>(_: &'c [()], _: TxConn<'c>) -> TxFuture<'c> {
        Box::pin(async { Ok(()) })
    }
}

/// Companion rows of any type, as a driver takes them.
pub trait Companions: Send + Sync {
    fn insert<'c>(&'c self, conn: TxConn<'c>) -> TxFuture<'c>;
}

/// The rows of one [`InsertRunsParams`].
pub struct Rows<'a, C>(pub &'a [C]);

impl<C: Companion> Companions for Rows<'_, C> {
    fn insert<'c>(&'c self, conn: TxConn<'c>) -> TxFuture<'c> {
        C::insert_all(self.0, conn)
    }
}

// ---- Parameters, one struct per statement ---------------------------------------------------

pub struct InsertRunsParams<'a> {
    pub runs: &'a [NewRun],
    /// Inserted after the runs and their first tasks, in the same transaction.
    pub companions: &'a dyn Companions,
    pub now: i64,
}

pub struct InsertRetryParams<'a> {
    pub run: &'a NewRun,
    pub retry_of: &'a str,
    pub now: i64,
}

#[derive(Clone, Copy, Debug)]
pub struct ClaimParams<'a> {
    pub queue: &'a str,
    pub owner: &'a str,
    pub limit: i64,
    pub lease_until: i64,
    pub now: i64,
}

#[derive(Clone, Copy, Debug)]
pub struct ExtendLeasesParams<'a> {
    /// `(task id, lease token)` of each attempt.
    pub attempts: &'a [(String, String)],
    pub until: i64,
}

#[derive(Clone, Copy, Debug)]
pub struct CompleteBatchParams<'a> {
    pub successes: &'a [Success],
    pub now: i64,
}

#[derive(Clone, Copy, Debug)]
pub struct FailParams<'a> {
    pub task: &'a Claimed,
    pub owner: &'a str,
    pub outcome: &'a str,
    pub error: &'a str,
    /// When to run again; `None` (or no attempt left) ends the task.
    pub retry_at: Option<i64>,
    /// It cannot run at all: `failed`, not `dead`, and no retry.
    pub permanent: bool,
    pub now: i64,
}

#[derive(Clone, Copy, Debug)]
pub struct RescueParams {
    pub max_rescues: i32,
    pub now: i64,
}

#[derive(Clone, Copy, Debug)]
pub struct ReleaseParams<'a> {
    pub owner: &'a str,
    pub now: i64,
}

#[derive(Clone, Copy, Debug)]
pub struct CancelRunParams<'a> {
    pub run_id: &'a str,
    pub now: i64,
}

#[derive(Clone, Copy, Debug)]
pub struct QueueDepthsParams {
    pub now: i64,
}

#[derive(Clone, Copy, Debug)]
pub struct RunOutputsParams<'a> {
    pub run_id: &'a str,
}

#[derive(Clone, Copy, Debug)]
pub struct GetRunParams<'a> {
    pub id: &'a str,
}

#[derive(Clone, Copy, Debug)]
pub struct ListRunsParams<'a> {
    pub filter: &'a RunFilter,
}

#[derive(Clone, Copy, Debug)]
pub struct RunTasksParams<'a> {
    pub run_id: &'a str,
}

#[derive(Clone, Copy, Debug)]
pub struct RunAttemptsParams<'a> {
    pub run_id: &'a str,
}

#[derive(Clone, Copy, Debug)]
pub struct PruneRunsParams<'a> {
    /// Final status of the runs deleted.
    pub status: &'a str,
    /// Runs that finished before this (Unix ms).
    pub cutoff: i64,
    pub limit: i64,
    /// From [`Driver::run_deletes`].
    pub deletes: &'a [RunDelete],
}

#[derive(Clone, Copy, Debug)]
pub struct SweepParams {
    /// Changes at most `$2` rows older than `$1`.
    pub statement: &'static str,
    pub cutoff: i64,
    pub limit: i64,
}

#[derive(Clone, Copy, Debug)]
pub struct ReclaimPagesParams {
    pub max_pages: i64,
}

#[derive(Clone, Copy, Debug)]
pub struct RegisterDispatcherParams<'a> {
    pub id: &'a str,
    pub role: &'a str,
}

#[derive(Clone, Copy, Debug)]
pub struct HeartbeatDispatcherParams<'a> {
    pub id: &'a str,
}

#[derive(Clone, Copy, Debug)]
pub struct DeregisterDispatcherParams<'a> {
    pub id: &'a str,
}

#[derive(Clone, Copy, Debug)]
pub struct PruneDispatchersParams {
    pub older_than: Duration,
}

#[derive(Clone, Copy, Debug)]
pub struct ListDispatchersParams;

/// The reason a rescue records, and, past `max_rescues`, the one it dead-letters with.
pub(crate) fn rescue_reason(rescues: i32, max_rescues: i32) -> (bool, String) {
    const LEASE_EXPIRED: &str = "lease expired: its worker died or stalled";
    if rescues >= max_rescues {
        let reason = format!(
            "{LEASE_EXPIRED}; rescued {rescues} times already (worker.max_rescues): the task keeps killing its workers"
        );
        (true, reason)
    } else {
        (false, LEASE_EXPIRED.to_string())
    }
}

/// When a failed attempt runs again: only with a retry time, when it can run at all and attempts
/// remain. Rescues are not failures of the task: they do not consume its attempts.
pub(crate) fn retry_at(p: &FailParams<'_>) -> Option<i64> {
    let t = p.task;
    p.retry_at.filter(|_| !p.permanent && t.attempt - t.rescues < t.max_attempts)
}

/// How a failed attempt that did not retry ends the task.
pub(crate) fn end_state(p: &FailParams<'_>) -> (&'static str, Failed) {
    if p.permanent { ("failed", Failed::Failed) } else { ("dead", Failed::Dead) }
}

/// A retry's insert: `Ok(false)` when the unique index on `retry_of` refused it (another retry
/// of the same run committed first).
pub(crate) fn unless_already_retried(stored: Result<(), sqlx::Error>) -> Result<bool, WorkerError> {
    match stored {
        Ok(()) => Ok(true),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
        Err(e) => Err(e.into()),
    }
}
