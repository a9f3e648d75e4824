//! Every statement of the queue, and the state machine they implement.
//!
//! ```text
//!                 claim (attempt += 1, lease set)
//!   available ───────────────────────────────────▶ running
//!      ▲  ▲                                          │
//!      │  └── failure, attempt < max_attempts ───────┤ (available_at = now + backoff)
//!      │  └── lease expired, attempt < max_attempts ─┤ (rescue; the crashed worker loses nothing)
//!      │  └── graceful release (attempt -= 1) ───────┤
//!      │                                             ├── success ─────────────▶ succeeded
//!      │                                             ├── last attempt failed ─▶ dead      (dead-lettered)
//!      │                                             ├── lease expired, last ─▶ dead
//!      │                                             └── cannot run at all ───▶ failed    (no retry helps)
//!      └── run cancelled ─────────────────────────────────────────────────────▶ cancelled
//! ```
//!
//! Every transition out of `running` is guarded by `lease_owner` and `state = 'running'`: a
//! worker whose lease was rescued and re-claimed elsewhere cannot finish the task a second time,
//! so each task ends exactly once. A run has one task row at a time: the next row is inserted in
//! the transaction that marks the previous one `succeeded`.
//!
//! The text is shared by both backends (sqlx takes `$n` on SQLite too); only the claim differs:
//! PostgreSQL skips rows other claimers hold, SQLite serialises writers, so one `UPDATE` is
//! the whole single-writer transaction.

pub const INSERT_RUN: &str = "INSERT INTO workflow_runs (id, workflow_id, status, input, created_at) \
     VALUES ($1, $2, 'pending', $3, $4)";

pub const INSERT_TASK: &str = "INSERT INTO tasks (id, run_id, position, name, kind, queue, state, attempt, \
     max_attempts, available_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'available', 0, $7, $8, $8)";

pub const NOTIFY: &str = "SELECT pg_notify('compozy_tasks', $1)";
pub const CHANNEL: &str = "compozy_tasks";

const CLAIM_SET: &str = "UPDATE tasks SET state = 'running', attempt = attempt + 1, lease_owner = $1, \
     lease_expires_at = $2, started_at = $3 WHERE id IN (SELECT id FROM tasks WHERE queue = $4 \
     AND state = 'available' AND available_at <= $3 ORDER BY available_at, id LIMIT $5";
const CLAIM_RETURNING: &str =
    ") RETURNING id, run_id, position, name, kind, queue, attempt, max_attempts, available_at";

pub fn claim(postgres: bool) -> String {
    let lock = if postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
    format!("{CLAIM_SET}{lock}{CLAIM_RETURNING}")
}

pub const MARK_RUN_STARTED: &str =
    "UPDATE workflow_runs SET status = 'running', started_at = $2 WHERE id = $1 AND status = 'pending'";

/// Per task, not per owner: a task whose outcome could not be recorded must be left to expire.
pub const EXTEND_LEASE: &str =
    "UPDATE tasks SET lease_expires_at = $3 WHERE id = $1 AND lease_owner = $2 AND state = 'running'";

pub const SUCCEED_TASK: &str = "UPDATE tasks SET state = 'succeeded', output = $3, last_outcome = 'success', \
     last_error = NULL, lease_owner = NULL, lease_expires_at = NULL, finished_at = $4 \
     WHERE id = $1 AND lease_owner = $2 AND state = 'running'";

pub const RETRY_TASK: &str = "UPDATE tasks SET state = 'available', available_at = $5, last_outcome = $3, \
     last_error = $4, lease_owner = NULL, lease_expires_at = NULL \
     WHERE id = $1 AND lease_owner = $2 AND state = 'running'";

/// `$5` is `dead` (attempts exhausted) or `failed` (cannot run).
pub const END_TASK: &str = "UPDATE tasks SET state = $5, last_outcome = $3, last_error = $4, \
     lease_owner = NULL, lease_expires_at = NULL, finished_at = $6 \
     WHERE id = $1 AND lease_owner = $2 AND state = 'running'";

pub const RUN_STATUS: &str = "SELECT status FROM workflow_runs WHERE id = $1";

pub const SUCCEED_RUN: &str = "UPDATE workflow_runs SET status = 'succeeded', output = $2, finished_at = $3 \
     WHERE id = $1 AND status IN ('pending', 'running')";

pub const FAIL_RUN: &str = "UPDATE workflow_runs SET status = 'failed', error = $2, finished_at = $3 \
     WHERE id = $1 AND status IN ('pending', 'running')";

pub const CANCEL_RUN: &str = "UPDATE workflow_runs SET status = 'cancelled', finished_at = $2 \
     WHERE id = $1 AND status IN ('pending', 'running')";

pub const CANCEL_TASKS: &str =
    "UPDATE tasks SET state = 'cancelled', finished_at = $2 WHERE run_id = $1 AND state = 'available'";

/// Graceful shutdown: the attempt did not fail, so it is not counted.
pub const RELEASE: &str = "UPDATE tasks SET state = 'available', attempt = attempt - 1, available_at = $2, \
     lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner = $1 AND state = 'running'";

pub const RESCUE: &str = "UPDATE tasks SET state = 'available', available_at = $1, last_outcome = 'error', \
     last_error = 'lease expired', lease_owner = NULL, lease_expires_at = NULL \
     WHERE state = 'running' AND lease_expires_at < $1 AND attempt < max_attempts RETURNING kind";

pub const RESCUE_DEAD: &str = "UPDATE tasks SET state = 'dead', last_outcome = 'error', \
     last_error = 'lease expired', lease_owner = NULL, lease_expires_at = NULL, finished_at = $1 \
     WHERE state = 'running' AND lease_expires_at < $1 AND attempt >= max_attempts RETURNING run_id, queue";

pub const DEPTH: &str = "SELECT queue, COUNT(*) AS depth, MIN(available_at) AS oldest FROM tasks \
     WHERE state = 'available' AND available_at <= $1 GROUP BY queue";

pub const RUN_OUTPUTS: &str =
    "SELECT name, output FROM tasks WHERE run_id = $1 AND state = 'succeeded' ORDER BY position";

pub const RUN_INPUT: &str = "SELECT workflow_id, input FROM workflow_runs WHERE id = $1";

const RUN_COLUMNS: &str = "id, workflow_id, status, input, output, error, created_at, started_at, finished_at";

pub fn get_run() -> String {
    format!("SELECT {RUN_COLUMNS} FROM workflow_runs WHERE id = $1")
}

/// Newest first, keyset-paginated on (created_at, id); `$1`/`$2` filter when not NULL.
pub fn list_runs() -> String {
    format!(
        "SELECT {RUN_COLUMNS} FROM workflow_runs WHERE ($1 IS NULL OR workflow_id = $1) \
         AND ($2 IS NULL OR status = $2) AND (created_at < $3 OR (created_at = $3 AND id < $4)) \
         ORDER BY created_at DESC, id DESC LIMIT $5"
    )
}

pub const RUN_TASKS: &str = "SELECT id, position, name, kind, queue, state, attempt, max_attempts, \
     available_at, last_outcome, last_error, output, created_at, started_at, finished_at \
     FROM tasks WHERE run_id = $1 ORDER BY position";
