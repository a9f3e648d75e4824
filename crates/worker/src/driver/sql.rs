//! The statements whose text both backends share (sqlx takes `$n` on SQLite too). Each
//! backend's own statements are in its module; the state machine is in [`super`].

use super::rows::{Dependent, RunDelete};
use crate::model::RunStatus;

pub const INSERT_ATTEMPT: &str = "INSERT INTO task_attempts (task_id, attempt, worker, started_at, finished_at, \
     outcome, error, output) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

pub const RETRY_TASK: &str = "UPDATE tasks SET state = 'available', available_at = $5, last_outcome = $3, \
     last_error = $4, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL \
     WHERE id = $1 AND lease_token = $2 AND state = 'running' RETURNING attempt, started_at";

/// `$5` is `dead` (attempts exhausted) or `failed` (cannot run).
pub const END_TASK: &str = "UPDATE tasks SET state = $5, last_outcome = $3, last_error = $4, \
     lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, finished_at = $6 \
     WHERE id = $1 AND lease_token = $2 AND state = 'running' RETURNING attempt, started_at";

pub const FAIL_RUN: &str = "UPDATE workflow_runs SET status = 'failed', error = $2, finished_at = $3 \
     WHERE id = $1 AND status IN ('pending', 'running')";

pub const CANCEL_RUN: &str = "UPDATE workflow_runs SET status = 'cancelled', finished_at = $2 \
     WHERE id = $1 AND status IN ('pending', 'running')";

/// Ready and running tasks alike: a running attempt loses its lease (its token is cleared), so
/// its next heartbeat finds nothing to extend and stops the activity.
pub const CANCEL_TASKS: &str = "UPDATE tasks SET state = 'cancelled', finished_at = $2, lease_token = NULL, \
     lease_expires_at = NULL WHERE run_id = $1 AND state IN ('available', 'running')";

/// Graceful shutdown: the attempt did not fail, so it is not counted. PostgreSQL's variant
/// leaves rows a completion batch is writing to it (`driver/postgres.rs`).
pub const RELEASE: &str = "UPDATE tasks SET state = 'available', attempt = attempt - 1, available_at = $2, \
     lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL WHERE lease_owner = $1 AND state = 'running'";

/// Tasks whose lease expired; PostgreSQL appends `FOR UPDATE SKIP LOCKED` so that a task being
/// completed right now (or rescued by another process) is left alone, and the rows read stay
/// as read until the transaction ends.
pub const EXPIRED: &str = "SELECT id, run_id, name, queue, attempt, rescues, lease_owner, started_at \
     FROM tasks WHERE state = 'running' AND lease_expires_at < $1";

/// Re-queued at once: the task did not fail, its worker died.
pub const RESCUE_ONE: &str = "UPDATE tasks SET state = 'available', available_at = $2, rescues = rescues + 1, \
     last_outcome = 'rescued', last_error = $3, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL \
     WHERE id = $1 AND state = 'running'";

/// Past `worker.max_rescues`: dead-lettered with its own reason (`$3`).
pub const RESCUE_DEAD_ONE: &str = "UPDATE tasks SET state = 'dead', last_outcome = 'rescued', \
     last_error = $3, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, finished_at = $2 \
     WHERE id = $1 AND state = 'running'";

pub const DEPTH: &str = "SELECT queue, COUNT(*) AS depth, MIN(available_at) AS oldest FROM tasks \
     WHERE state = 'available' AND available_at <= $1 GROUP BY queue";

pub const RUN_ATTEMPTS: &str = "SELECT a.task_id, a.attempt, a.worker, a.started_at, a.finished_at, a.outcome, \
     a.error, a.output FROM task_attempts a JOIN tasks t ON t.id = a.task_id WHERE t.run_id = $1 \
     ORDER BY t.position, a.attempt";

pub const RUN_OUTPUTS: &str =
    "SELECT name, output FROM tasks WHERE run_id = $1 AND state = 'succeeded' ORDER BY position";

/// A retry's run row, linked to the run it retries (`$5`); the unique index on `retry_of` lets
/// one retry per run through.
pub const INSERT_RETRY_RUN: &str = "INSERT INTO workflow_runs (id, workflow_id, status, input, created_at, \
     retry_of) VALUES ($1, $2, 'pending', $3, $4, $5)";

/// A run as the API reads it. A run is `running` once it is `pending` and its first task has
/// started: the claim writes the task row alone (one row write per claimed task, not two).
/// Runs written before `first_started_at` existed keep their stored `running` and `started_at`.
/// `stored_status` is the column, for filters that an index on it can serve. `retried_by` is
/// found through the unique index on `retry_of`, the first task through the one on
/// `(run_id, position)`.
macro_rules! run_view {
    () => {
        "SELECT * FROM (SELECT r.id, r.workflow_id, CASE WHEN r.status = 'pending' AND t0.first_started_at IS NOT NULL \
         THEN 'running' ELSE r.status END AS status, r.status AS stored_status, r.input, r.output, r.error, \
         r.created_at, COALESCE(r.started_at, t0.first_started_at) AS started_at, r.finished_at, r.retry_of, \
         (SELECT x.id FROM workflow_runs x WHERE x.retry_of = r.id) AS retried_by \
         FROM workflow_runs r LEFT JOIN tasks t0 ON t0.run_id = r.id AND t0.position = 0) v WHERE "
    };
}

pub const GET_RUN: &str = concat!(run_view!(), "id = $1");

/// Newest first, keyset-paginated on `(created_at, id)` after `($3, $4)`, at most `$5`; `$1`
/// (workflow) and `$2` (status) filter when set. One statement per combination of filters, so
/// each can use its index: with a catch-all `($1 IS NULL OR workflow_id = $1)` the planners walk
/// the `created_at` index and test every run, which costs a whole-table walk when a filter
/// matches few runs (140 ms for a workflow matching none of 100,000 runs on SQLite). An unset
/// filter's parameter is still bound, as `$n IS NULL`. The keyset is a row comparison, which
/// both databases turn into an index range. A run of any status but `running` has it stored
/// (a pending one also has not started), so those filters can use SQLite's status index.
pub fn list_runs(workflow: bool, status: Option<&str>) -> &'static str {
    macro_rules! list_runs {
        ($filter:literal) => {
            concat!(run_view!(), $filter, " AND (created_at, id) < ($3, $4) ORDER BY created_at DESC, id DESC LIMIT $5")
        };
    }
    let running = status == Some(RunStatus::Running.as_str());
    match (workflow, status) {
        (false, None) => list_runs!("$1 IS NULL AND $2 IS NULL"),
        (true, None) => list_runs!("workflow_id = $1 AND $2 IS NULL"),
        (false, Some(_)) if running => {
            list_runs!("$1 IS NULL AND stored_status IN ('pending', 'running') AND status = $2")
        }
        (true, Some(_)) if running => {
            list_runs!("workflow_id = $1 AND stored_status IN ('pending', 'running') AND status = $2")
        }
        (false, Some(_)) => list_runs!("$1 IS NULL AND stored_status = $2 AND status = $2"),
        (true, Some(_)) => list_runs!("workflow_id = $1 AND stored_status = $2 AND status = $2"),
    }
}

pub const RUN_TASKS: &str = "SELECT id, position, name, kind, queue, state, attempt, max_attempts, \
     available_at, last_outcome, last_error, output, created_at, started_at, finished_at, lease_owner \
     FROM tasks WHERE run_id = $1 ORDER BY position";

/// Retention: the ids of up to `$3` runs of status `$1` that finished before `$2`, oldest
/// first. The `created_at` bound lets the scan walk an index (a run finishes after it was
/// created). PostgreSQL appends `FOR UPDATE SKIP LOCKED`: rows another pruner holds are its.
pub const EXPIRED_RUNS: &str = "SELECT id FROM workflow_runs WHERE status = $1 AND created_at < $2 \
     AND finished_at < $2 ORDER BY created_at LIMIT $3";

/// The deletes of one batch of runs, children first; `ids` is how the backend matches the
/// batch's ids bound as `$1`.
pub fn run_deletes(ids: &str, dependents: &[Dependent]) -> Vec<RunDelete> {
    let delete = |kind, statement| RunDelete { kind, statement };
    let mut out = vec![
        delete(
            "attempt",
            format!("DELETE FROM task_attempts WHERE task_id IN (SELECT id FROM tasks WHERE run_id {ids})"),
        ),
        delete("task", format!("DELETE FROM tasks WHERE run_id {ids}")),
    ];
    out.extend(dependents.iter().map(|d| delete(d.kind, format!("DELETE FROM {} WHERE run_id {ids}", d.table))));
    out.push(delete("run", format!("DELETE FROM workflow_runs WHERE id {ids}")));
    out
}
