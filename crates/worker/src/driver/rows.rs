//! The rows the driver takes and returns, and their decoding from either backend (sqlx's
//! rows are generic over the database).

use sqlx::Row;

use crate::attempts::Attempt;
use crate::model::TaskKind;
use crate::runs::{Run, TaskRow};

/// A task row to insert.
#[derive(Clone, Debug)]
pub struct NewTask {
    pub run_id: String,
    pub position: i32,
    pub name: String,
    pub kind: TaskKind,
    pub queue: String,
    pub max_attempts: i32,
    pub available_at: i64,
    /// The enqueuing span's W3C `traceparent` (tracing on and inside a span).
    pub traceparent: Option<String>,
}

/// A run to store with its first task; the id is chosen before the insert, so rows stored in
/// the same transaction can refer to it.
#[derive(Clone, Debug)]
pub struct NewRun {
    pub id: String,
    pub workflow_id: String,
    /// JSON text.
    pub input: String,
    pub first: NewTask,
}

/// A task this worker holds the lease of.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub id: String,
    pub run_id: String,
    pub position: i32,
    pub name: String,
    pub kind: TaskKind,
    pub queue: String,
    pub attempt: i32,
    pub max_attempts: i32,
    /// Leases of this task that expired under a dead worker (not failures of the task).
    pub rescues: i32,
    /// This attempt's fencing token: drawn by the claim, required by every later write.
    pub token: String,
    pub available_at: i64,
    /// The run's workflow and input, read with the claim so a task needs no read of its run.
    pub workflow_id: String,
    pub input: String,
    /// The enqueuing span's W3C `traceparent`, if it was stored.
    pub traceparent: Option<String>,
}

/// A succeeded attempt to record: its task's output and the run's next task (`None` when it
/// was the last one, which finishes the run with `output`).
#[derive(Clone, Debug)]
pub struct Success {
    pub task_id: String,
    /// The attempt's fencing token.
    pub token: String,
    pub run_id: String,
    pub output: String,
    pub next: Option<NewTask>,
}

/// How a failed attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failed {
    Retried,
    Dead,
    Failed,
    /// The lease was lost (rescued elsewhere or run cancelled): nothing was written.
    Lost,
}

/// What one rescue did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rescued {
    /// Queues of the tasks re-queued.
    pub requeued: Vec<String>,
    /// `(run, queue)` of the tasks dead-lettered because their leases expired too often.
    pub dead: Vec<(String, String)>,
}

/// The readiness of one queue, as stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Depth {
    pub depth: i64,
    pub oldest_available_at: Option<i64>,
}

/// A table whose rows belong to a run (column `run_id`): deleted with the run, counted as `kind`.
#[derive(Clone, Copy, Debug)]
pub struct Dependent {
    pub table: &'static str,
    pub kind: &'static str,
}

/// One delete of a batch of runs, bound to the batch's ids, its rows counted as `kind`.
#[derive(Clone, Debug)]
pub struct RunDelete {
    pub kind: &'static str,
    /// Built from the code's own table names, never from input.
    pub statement: String,
}

/// What one batch of [`Driver::prune_runs`] deleted.
#[derive(Clone, Debug, Default)]
pub struct PrunedRuns {
    pub runs: usize,
    /// Rows per delete, in the order of its `deletes`.
    pub deleted: Vec<(&'static str, u64)>,
}

// ---- Decoding ---------------------------------------------------------------------------------

/// Stored JSON text as a value; text that is not JSON stays a string.
fn json(text: Option<String>) -> Option<serde_json::Value> {
    text.map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t)))
}

/// A kind outside the vocabulary is an error, never silently another kind.
fn kind(text: String) -> Result<TaskKind, sqlx::Error> {
    TaskKind::parse(&text).ok_or_else(|| sqlx::Error::Decode(format!("unknown task kind `{text}`").into()))
}

pub(super) fn claimed<R: Row>(row: &R) -> Result<Claimed, sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database>,
    i32: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Claimed {
        id: row.try_get("id")?,
        run_id: row.try_get("run_id")?,
        position: row.try_get("position")?,
        name: row.try_get("name")?,
        kind: kind(row.try_get("kind")?)?,
        queue: row.try_get("queue")?,
        attempt: row.try_get("attempt")?,
        max_attempts: row.try_get("max_attempts")?,
        rescues: row.try_get("rescues")?,
        token: row.try_get("lease_token")?,
        available_at: row.try_get("available_at")?,
        workflow_id: row.try_get("workflow_id")?,
        input: row.try_get("input")?,
        traceparent: row.try_get("traceparent")?,
    })
}

/// A task whose lease expired, as the rescue reads it.
pub(super) struct Expired {
    pub id: String,
    pub run_id: String,
    pub name: String,
    pub queue: String,
    pub attempt: i32,
    pub rescues: i32,
    pub owner: Option<String>,
    pub started_at: Option<i64>,
}

pub(super) fn expired<R: Row>(r: &R) -> Result<Expired, sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
    i32: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
    i64: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Expired {
        id: r.try_get("id")?,
        run_id: r.try_get("run_id")?,
        name: r.try_get("name")?,
        queue: r.try_get("queue")?,
        attempt: r.try_get("attempt")?,
        rescues: r.try_get("rescues")?,
        owner: r.try_get("lease_owner")?,
        started_at: r.try_get("started_at")?,
    })
}

pub(super) fn depth<R: Row>(r: &R) -> Result<(String, Depth), sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
    i64: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
{
    let depth = Depth { depth: r.try_get("depth")?, oldest_available_at: r.try_get("oldest")? };
    Ok((r.try_get("queue")?, depth))
}

pub(super) fn output<R: Row>(r: &R) -> Result<(String, Option<String>), sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
{
    Ok((r.try_get("name")?, r.try_get("output")?))
}

pub(super) fn run<R: Row>(r: &R) -> Result<Run, sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
    i64: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Run {
        id: r.try_get("id")?,
        workflow_id: r.try_get("workflow_id")?,
        status: r.try_get("status")?,
        input: json(r.try_get("input")?).unwrap_or_default(),
        output: json(r.try_get("output")?),
        error: r.try_get("error")?,
        created_at: r.try_get("created_at")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        retry_of: r.try_get("retry_of")?,
        retried_by: r.try_get("retried_by")?,
    })
}

pub(super) fn task<R: Row>(r: &R) -> Result<TaskRow, sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
    i32: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
    i64: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
{
    Ok(TaskRow {
        id: r.try_get("id")?,
        position: r.try_get("position")?,
        name: r.try_get("name")?,
        kind: r.try_get("kind")?,
        queue: r.try_get("queue")?,
        state: r.try_get("state")?,
        attempt: r.try_get("attempt")?,
        max_attempts: r.try_get("max_attempts")?,
        available_at: r.try_get("available_at")?,
        last_outcome: r.try_get("last_outcome")?,
        last_error: r.try_get("last_error")?,
        output: json(r.try_get("output")?),
        created_at: r.try_get("created_at")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        worker: r.try_get("lease_owner")?,
    })
}

pub(super) fn attempt<R: Row>(r: &R) -> Result<(String, Attempt), sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
    i32: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
    i64: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
{
    let attempt = Attempt {
        attempt: r.try_get("attempt")?,
        worker: r.try_get("worker")?,
        started_at: Some(r.try_get("started_at")?),
        finished_at: Some(r.try_get("finished_at")?),
        outcome: Some(r.try_get("outcome")?),
        error: r.try_get("error")?,
        output: json(r.try_get("output")?),
    };
    Ok((r.try_get("task_id")?, attempt))
}

/// Unwraps a sqlx row list into decoded values.
pub(super) fn all<R, T>(rows: &[R], f: impl Fn(&R) -> Result<T, sqlx::Error>) -> Result<Vec<T>, sqlx::Error> {
    rows.iter().map(f).collect()
}
