//! Workflow runs as the API shows them: start, read, list, cancel, retry.

use compozy_autoload::resources::{Action, Task, Workflow};
use compozy_store::StoreConn;
use serde::Serialize;
use sqlx::{Connection, Row};

use crate::clock::now_ms;
use crate::error::WorkerError;
use crate::model::TaskKind;
use crate::queue::{NewRun, NewTask, Queue, in_tx, insert_task, on_conn, sql};

/// One run as stored. Times are Unix milliseconds.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Run {
    pub id: String,
    pub workflow_id: String,
    pub status: String,
    pub input: serde_json::Value,
    pub output: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The run this one retries (`None` once retention deleted it).
    pub retry_of: Option<String>,
    /// The run that retries this one.
    pub retried_by: Option<String>,
}

/// One task row of a run (its latest attempt's outcome).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TaskRow {
    pub id: String,
    pub position: i32,
    pub name: String,
    pub kind: String,
    pub queue: String,
    pub state: String,
    pub attempt: i32,
    pub max_attempts: i32,
    pub available_at: i64,
    pub last_outcome: Option<String>,
    pub last_error: Option<String>,
    pub output: Option<serde_json::Value>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The worker that holds (running) or held (succeeded) the latest attempt; shown through
    /// the task's attempts, not as a field of its own.
    #[serde(skip)]
    pub worker: Option<String>,
}

/// Filters and keyset cursor of a run listing.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    pub workflow_id: Option<String>,
    pub status: Option<String>,
    /// `(created_at, id)` of the last run of the previous page.
    pub before: Option<(i64, String)>,
    pub limit: u32,
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
    })
}

fn json(text: Option<String>) -> Option<serde_json::Value> {
    text.map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t)))
}

fn decode_run<R: Row>(r: &R) -> Result<Run, sqlx::Error>
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

fn decode_task<R: Row>(r: &R) -> Result<TaskRow, sqlx::Error>
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

impl Queue {
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

    /// Stores `run`, a retry of run `retry_of`, with its first task in one transaction. `false`
    /// when `retry_of` already has a retry (the unique index decides between concurrent ones).
    pub async fn insert_retry(&self, run: &NewRun, retry_of: &str) -> Result<bool, WorkerError> {
        let now = now_ms();
        let postgres = self.is_postgres();
        let _writer = self.writer().await;
        let mut conn = self.store().acquire().await?;
        let stored: Result<(), sqlx::Error> = async {
            in_tx!(&mut conn, tx => {
                sqlx::query(sql::INSERT_RETRY_RUN).bind(&run.id).bind(&run.workflow_id).bind(&run.input)
                    .bind(now).bind(retry_of).execute(&mut *tx).await?;
                insert_task!(tx, uuid::Uuid::new_v4().to_string(), run.first, now);
                if postgres {
                    sqlx::query(sql::NOTIFY).bind(&run.first.queue).execute(&mut *tx).await?;
                }
            });
            Ok(())
        }
        .await;
        match stored {
            Ok(()) => Ok(true),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_run(&self, id: &str) -> Result<Option<Run>, WorkerError> {
        let mut conn = self.store().acquire().await?;
        let q = sql::get_run();
        let run = on_conn!(&mut conn, c => {
            let row = sqlx::query(sqlx::AssertSqlSafe(q.as_str())).bind(id).fetch_optional(&mut **c).await?;
            row.as_ref().map(decode_run).transpose()?
        });
        Ok(run)
    }

    pub async fn run_tasks(&self, id: &str) -> Result<Vec<TaskRow>, WorkerError> {
        let mut conn = self.store().acquire().await?;
        let tasks = on_conn!(&mut conn, c => {
            let rows = sqlx::query(sql::RUN_TASKS).bind(id).fetch_all(&mut **c).await?;
            rows.iter().map(decode_task).collect::<Result<Vec<_>, _>>()?
        });
        Ok(tasks)
    }

    /// Runs newest first, at most `filter.limit` (1–500).
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<Run>, WorkerError> {
        let (before_at, before_id) = filter.before.clone().unwrap_or((i64::MAX, String::new()));
        // Without a cursor every id qualifies on a created_at tie: compare against a maximal id.
        let before_id = if filter.before.is_none() { "\u{10FFFF}".to_string() } else { before_id };
        let limit = i64::from(filter.limit.clamp(1, 500));
        let q = sql::list_runs();
        let mut conn = self.store().acquire().await?;
        let runs = on_conn!(&mut conn, c => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(q.as_str())).bind(&filter.workflow_id).bind(&filter.status)
                .bind(before_at).bind(&before_id).bind(limit).fetch_all(&mut **c).await?;
            rows.iter().map(decode_run).collect::<Result<Vec<_>, _>>()?
        });
        Ok(runs)
    }
}

/// A connection inside the open transaction of [`Queue::insert_runs_with`], on either backend.
#[derive(Debug)]
pub enum TxConn<'c> {
    Postgres(&'c mut sqlx::PgConnection),
    Sqlite(&'c mut sqlx::SqliteConnection),
}

/// What the caller's part of the transaction returns.
pub type TxFuture<'c> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'c>>;

impl NewRun {
    /// A run of `workflow` with `input` and a fresh id, its first task ready now on `queue`.
    pub fn of(workflow: &Workflow, input: &serde_json::Value, queue: &str) -> Result<NewRun, WorkerError> {
        let id = uuid::Uuid::new_v4().to_string();
        let first = new_task(workflow, &id, 0, queue, now_ms())
            .ok_or_else(|| WorkerError::UnknownWorkflow(workflow.id.as_str().to_string()))?;
        Ok(NewRun { id, workflow_id: workflow.id.as_str().to_string(), input: input.to_string(), first })
    }
}
