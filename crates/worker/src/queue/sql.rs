//! Every statement of the queue, and the state machine they implement.
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
//! attempt, so each task ends exactly once. A run has one task row at a time: the next row is inserted in
//! the statement (or transaction) that marks the previous one `succeeded`. Each attempt that did
//! not succeed (failure, timeout, expired lease) also gets a `task_attempts` row there; the
//! attempt that succeeded is recorded by the task row itself (outcome, times, output and, in
//! `lease_owner`, its worker), which saves a row and its index entry per task on the hot path.
//! A graceful release does not count as an attempt and writes nothing.
//!
//! Round trips per task are what bound throughput on PostgreSQL, so there a claim is one
//! statement per batch that also marks first tasks' runs started and returns each run's
//! workflow and input, and the successes a worker gathers while a flush is in flight are
//! recorded (and their runs advanced, with one NOTIFY per queue) by one statement per batch.
//! SQLite serialises writers, so its claim is a plain `UPDATE … RETURNING` and its batch is
//! one transaction of the per-task statements. The rest of the text is shared by both backends
//! (sqlx takes `$n` on SQLite too).

pub const INSERT_RUN: &str = "INSERT INTO workflow_runs (id, workflow_id, status, input, created_at) \
     VALUES ($1, $2, 'pending', $3, $4)";

pub const INSERT_TASK: &str = "INSERT INTO tasks (id, run_id, position, name, kind, queue, state, attempt, \
     max_attempts, available_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'available', 0, $7, $8, $8)";

/// PostgreSQL: many runs (arrays `$1`–`$3`) in one statement.
pub const INSERT_RUNS_POSTGRES: &str = "INSERT INTO workflow_runs (id, workflow_id, status, input, created_at) \
     SELECT id, workflow_id, 'pending', input, $4 FROM unnest($1::text[], $2::text[], $3::text[]) \
     AS r(id, workflow_id, input)";

/// PostgreSQL: many first tasks (arrays `$1`–`$8`) in one statement.
pub const INSERT_TASKS_POSTGRES: &str = "INSERT INTO tasks (id, run_id, position, name, kind, queue, state, \
     attempt, max_attempts, available_at, created_at) SELECT id, run_id, position, name, kind, queue, 'available', \
     0, max_attempts, GREATEST(available_at, $9), $9 FROM unnest($1::text[], $2::text[], $3::int4[], $4::text[], \
     $5::text[], $6::text[], $7::int4[], $8::int8[]) AS t(id, run_id, position, name, kind, queue, max_attempts, \
     available_at)";

pub const NOTIFY: &str = "SELECT pg_notify('compozy_tasks', $1)";
pub const CHANNEL: &str = "compozy_tasks";

/// SQLite: the single writer needs no row locks; the run's workflow and input ride along so a
/// task needs no read of its run before it starts.
const CLAIM_SQLITE: &str = "UPDATE tasks SET state = 'running', attempt = attempt + 1, lease_owner = $1, \
     lease_token = lower(hex(randomblob(16))), lease_expires_at = $2, started_at = $3 WHERE id IN (SELECT id FROM tasks WHERE queue = $4 \
     AND state = 'available' AND available_at <= $3 ORDER BY available_at, id LIMIT $5) \
     RETURNING id, run_id, position, name, kind, queue, attempt, max_attempts, rescues, lease_token, \
     available_at, (SELECT workflow_id FROM workflow_runs r WHERE r.id = tasks.run_id) AS workflow_id, \
     (SELECT input FROM workflow_runs r WHERE r.id = tasks.run_id) AS input";

/// PostgreSQL, one round trip per batch: lock ready rows others do not hold, lease them, mark
/// their runs started, and return each with its run's workflow and input. Every sub-statement
/// sees the snapshot from before the statement, so the join reads the runs as they were.
const CLAIM_POSTGRES: &str = "WITH picked AS MATERIALIZED (SELECT id FROM tasks WHERE queue = $4 \
     AND state = 'available' AND available_at <= $3 ORDER BY available_at, id LIMIT $5 FOR UPDATE SKIP LOCKED), \
     claimed AS (UPDATE tasks t SET state = 'running', attempt = t.attempt + 1, lease_owner = $1, \
     lease_token = gen_random_uuid()::text, lease_expires_at = $2, started_at = $3 FROM picked WHERE t.id = picked.id \
     RETURNING t.id, t.run_id, t.position, t.name, t.kind, t.queue, t.attempt, t.max_attempts, t.rescues, \
     t.lease_token, t.available_at), \
     started AS (UPDATE workflow_runs SET status = 'running', started_at = $3 \
     WHERE id IN (SELECT run_id FROM claimed WHERE position = 0) AND status = 'pending') \
     SELECT c.*, r.workflow_id, r.input FROM claimed c JOIN workflow_runs r ON r.id = c.run_id";

pub fn claim(postgres: bool) -> &'static str {
    if postgres { CLAIM_POSTGRES } else { CLAIM_SQLITE }
}

pub const MARK_RUN_STARTED: &str =
    "UPDATE workflow_runs SET status = 'running', started_at = $2 WHERE id = $1 AND status = 'pending'";

/// Per attempt, not per owner: a task whose outcome could not be recorded must be left to
/// expire, and an attempt whose lease was lost must learn it (no row returned) and stop.
pub const EXTEND_LEASE: &str = "UPDATE tasks SET lease_expires_at = $3 WHERE id = $1 AND lease_token = $2 \
     AND state = 'running' RETURNING lease_token";

/// PostgreSQL: every attempt of the process in one statement (arrays `$1` ids, `$2` tokens).
pub const EXTEND_LEASES_POSTGRES: &str = "UPDATE tasks t SET lease_expires_at = $3 \
     FROM unnest($1::text[], $2::text[]) AS h(id, token) \
     WHERE t.id = h.id AND t.lease_token = h.token AND t.state = 'running' RETURNING t.lease_token";

/// A succeeded task keeps `lease_owner`: the row is its last attempt's record (worker included).
pub const SUCCEED_TASK: &str = "UPDATE tasks SET state = 'succeeded', output = $3, last_outcome = 'success', \
     last_error = NULL, lease_expires_at = NULL, lease_token = NULL, finished_at = $4 \
     WHERE id = $1 AND lease_token = $2 AND state = 'running'";

/// PostgreSQL: the successes of one batch in one statement. Per completed task (arrays `$1`–`$10`: its
/// lease token, id, output and
///  its `next_*` task, NULL when it was the run's last): mark it succeeded (guarded by the token), then insert the run's next task if the run is still live, or finish the run;
/// one NOTIFY per queue that received tasks. Returns the ids that were completed.
///
/// The batch is joined to `tasks` once, by primary key; the next task's fields ride along in
/// `RETURNING`, so every later part reads `done` alone and the statement stays linear in the
/// batch size (joins between CTEs, which the planner estimates at one row, were quadratic).
pub const SUCCEED_BATCH: &str = "WITH d AS MATERIALIZED (SELECT * FROM unnest($2::text[], $3::text[], \
     $4::text[], $5::int4[], $6::text[], $7::text[], $8::text[], $9::int4[], $10::int8[], $1::text[]) AS d(id, output, \
     next_id, next_position, next_name, next_kind, next_queue, next_max_attempts, next_available_at, token)), \
     done AS (UPDATE tasks t SET state = 'succeeded', output = d.output, last_outcome = 'success', \
     last_error = NULL, lease_expires_at = NULL, lease_token = NULL, finished_at = $11 FROM d \
     WHERE t.id = d.id AND t.lease_token = d.token AND t.state = 'running' \
     RETURNING t.id, t.run_id, t.output, d.next_id, d.next_position, d.next_name, \
     d.next_kind, d.next_queue, d.next_max_attempts, d.next_available_at), \
     next AS (INSERT INTO tasks (id, run_id, position, name, kind, queue, state, attempt, max_attempts, \
     available_at, created_at) SELECT done.next_id, done.run_id, done.next_position, done.next_name, \
     done.next_kind, done.next_queue, 'available', 0, done.next_max_attempts, GREATEST(done.next_available_at, $11), \
     $11 FROM done JOIN workflow_runs r ON r.id = done.run_id WHERE done.next_id IS NOT NULL \
     AND r.status IN ('pending', 'running') RETURNING queue), \
     finished AS (UPDATE workflow_runs r SET status = 'succeeded', output = done.output, finished_at = $11 \
     FROM done WHERE r.id = done.run_id AND done.next_id IS NULL AND r.status IN ('pending', 'running')), \
     woken AS (SELECT pg_notify('compozy_tasks', q.queue) FROM (SELECT DISTINCT queue FROM next) q) \
     SELECT done.id, (SELECT count(*) FROM woken) AS woken FROM done";

pub const INSERT_ATTEMPT: &str = "INSERT INTO task_attempts (task_id, attempt, worker, started_at, finished_at, \
     outcome, error, output) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

pub const RETRY_TASK: &str = "UPDATE tasks SET state = 'available', available_at = $5, last_outcome = $3, \
     last_error = $4, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL \
     WHERE id = $1 AND lease_token = $2 AND state = 'running' RETURNING attempt, started_at";

/// `$5` is `dead` (attempts exhausted) or `failed` (cannot run).
pub const END_TASK: &str = "UPDATE tasks SET state = $5, last_outcome = $3, last_error = $4, \
     lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, finished_at = $6 \
     WHERE id = $1 AND lease_token = $2 AND state = 'running' RETURNING attempt, started_at";

pub const RUN_STATUS: &str = "SELECT status FROM workflow_runs WHERE id = $1";

pub const SUCCEED_RUN: &str = "UPDATE workflow_runs SET status = 'succeeded', output = $2, finished_at = $3 \
     WHERE id = $1 AND status IN ('pending', 'running')";

pub const FAIL_RUN: &str = "UPDATE workflow_runs SET status = 'failed', error = $2, finished_at = $3 \
     WHERE id = $1 AND status IN ('pending', 'running')";

pub const CANCEL_RUN: &str = "UPDATE workflow_runs SET status = 'cancelled', finished_at = $2 \
     WHERE id = $1 AND status IN ('pending', 'running')";

/// Ready and running tasks alike: a running attempt loses its lease (its token is cleared), so
/// its next heartbeat finds nothing to extend and stops the activity.
pub const CANCEL_TASKS: &str = "UPDATE tasks SET state = 'cancelled', finished_at = $2, lease_token = NULL, \
     lease_expires_at = NULL WHERE run_id = $1 AND state IN ('available', 'running')";

/// Graceful shutdown: the attempt did not fail, so it is not counted.
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

pub const RUN_INPUT: &str = "SELECT workflow_id, input FROM workflow_runs WHERE id = $1";

/// A retry's run row: linked to the run it retries (`$5`).
pub const INSERT_RETRY_RUN: &str = "INSERT INTO workflow_runs (id, workflow_id, status, input, created_at, \
     retry_of) VALUES ($1, $2, 'pending', $3, $4, $5)";

/// `retried_by` is found through the unique index on `retry_of`.
const RUN_COLUMNS: &str = "id, workflow_id, status, input, output, error, created_at, started_at, finished_at, \
     retry_of, (SELECT r.id FROM workflow_runs r WHERE r.retry_of = workflow_runs.id) AS retried_by";

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
     available_at, last_outcome, last_error, output, created_at, started_at, finished_at, lease_owner \
     FROM tasks WHERE run_id = $1 ORDER BY position";
