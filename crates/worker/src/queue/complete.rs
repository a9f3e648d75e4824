//! The end of an attempt: successes in batches (advancing their runs), failures one at a time.
//! Every attempt that did not succeed is also written to `task_attempts`, in the same
//! transaction; a success is recorded by its task row (see [`sql`]).

use std::collections::HashSet;

use compozy_store::StoreConn;
use sqlx::{Connection, Row};

use super::{Claimed, Failed, NewTask, Queue, in_tx, insert_task, sql};
use crate::clock::now_ms;
use crate::error::WorkerError;

/// A succeeded attempt to record: its task's output and the run's next task (`None` when it
/// was the last one, which finishes the run with `output`).
#[derive(Clone, Debug)]
pub struct Success {
    pub task_id: String,
    /// The attempt's fencing token (see [`sql`]).
    pub token: String,
    pub run_id: String,
    pub output: String,
    pub next: Option<NewTask>,
}

/// One ended attempt for `task_attempts`.
pub(super) struct Ended<'a> {
    pub task_id: &'a str,
    pub attempt: i32,
    pub worker: Option<&'a str>,
    pub started_at: i64,
    pub finished_at: i64,
    pub outcome: &'a str,
    pub error: Option<&'a str>,
    pub output: Option<&'a str>,
}

macro_rules! insert_attempt {
    ($tx:ident, $e:expr) => {
        sqlx::query(sql::INSERT_ATTEMPT)
            .bind($e.task_id)
            .bind($e.attempt)
            .bind($e.worker)
            .bind($e.started_at)
            .bind($e.finished_at)
            .bind($e.outcome)
            .bind($e.error)
            .bind($e.output)
            .execute(&mut *$tx)
            .await?
    };
}
pub(super) use insert_attempt;

impl Queue {
    /// Marks the tasks of `batch` succeeded (those whose attempt still holds its lease) and
    /// advances their runs. Returns the ids completed; the others had lost their lease and
    /// nothing was written for them. One round trip on PostgreSQL, one transaction on SQLite.
    pub async fn succeed_batch(&self, batch: &[Success]) -> Result<HashSet<String>, WorkerError> {
        if batch.is_empty() {
            return Ok(HashSet::new());
        }
        let now = now_ms();
        let _writer = self.writer().await;
        let mut conn = self.store.acquire().await?;
        match &mut conn {
            StoreConn::Postgres(c) => succeed_postgres(c, batch, now).await,
            StoreConn::Sqlite(c) => {
                let mut tx = c.begin().await?;
                let mut done = HashSet::with_capacity(batch.len());
                for s in batch {
                    if succeed_one_sqlite(&mut tx, s, now).await? {
                        done.insert(s.task_id.clone());
                    }
                }
                tx.commit().await?;
                Ok(done)
            }
        }
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
        let now = now_ms();
        let _writer = self.writer().await;
        let mut conn = self.store.acquire().await?;
        let result = in_tx!(&mut conn, tx => {
            // Rescues are not failures of the task: they do not consume its attempts.
            let retry = retry_at.filter(|_| !permanent && task.attempt - task.rescues < task.max_attempts);
            let row = match retry {
                Some(at) => sqlx::query(sql::RETRY_TASK).bind(&task.id).bind(&task.token).bind(outcome).bind(error).bind(at)
                    .fetch_optional(&mut *tx).await?,
                None => {
                    let state = if permanent { "failed" } else { "dead" };
                    sqlx::query(sql::END_TASK).bind(&task.id).bind(&task.token).bind(outcome).bind(error).bind(state)
                        .bind(now).fetch_optional(&mut *tx).await?
                }
            };
            match row {
                None => Failed::Lost,
                Some(row) => {
                    let (attempt, started_at): (i32, Option<i64>) = (row.try_get(0)?, row.try_get(1)?);
                    let ended = Ended { task_id: &task.id, attempt, worker: Some(owner), started_at: started_at.unwrap_or(now),
                        finished_at: now, outcome, error: Some(error), output: None };
                    insert_attempt!(tx, ended);
                    if retry.is_some() {
                        Failed::Retried
                    } else {
                        let msg = format!("task `{}`: {error}", task.name);
                        sqlx::query(sql::FAIL_RUN).bind(&task.run_id).bind(msg).bind(now).execute(&mut *tx).await?;
                        if permanent { Failed::Failed } else { Failed::Dead }
                    }
                }
            }
        });
        Ok(result)
    }
}

/// One column of the batch's next tasks (NULL where a run has no next task).
fn next_column<T>(batch: &[Success], f: impl Fn(&NewTask) -> T) -> Vec<Option<T>> {
    batch.iter().map(|s| s.next.as_ref().map(&f)).collect()
}

/// The whole batch as arrays of one statement ([`sql::SUCCEED_BATCH`]).
async fn succeed_postgres(
    c: &mut sqlx::PgConnection,
    batch: &[Success],
    now: i64,
) -> Result<HashSet<String>, WorkerError> {
    let rows = sqlx::query(sql::SUCCEED_BATCH)
        .bind(batch.iter().map(|s| s.token.as_str()).collect::<Vec<_>>())
        .bind(batch.iter().map(|s| s.task_id.as_str()).collect::<Vec<_>>())
        .bind(batch.iter().map(|s| s.output.as_str()).collect::<Vec<_>>())
        .bind(next_column(batch, |_| uuid::Uuid::new_v4().to_string()))
        .bind(next_column(batch, |n| n.position))
        .bind(next_column(batch, |n| n.name.clone()))
        .bind(next_column(batch, |n| n.kind.as_str()))
        .bind(next_column(batch, |n| n.queue.clone()))
        .bind(next_column(batch, |n| n.max_attempts))
        .bind(next_column(batch, |n| n.available_at))
        .bind(now)
        .fetch_all(&mut *c)
        .await?;
    Ok(rows.iter().map(|r| r.try_get::<String, _>(0)).collect::<Result<_, _>>()?)
}

/// One success inside the caller's transaction; `false` when the lease was lost.
async fn succeed_one_sqlite(tx: &mut sqlx::SqliteConnection, s: &Success, now: i64) -> Result<bool, WorkerError> {
    let updated = sqlx::query(sql::SUCCEED_TASK)
        .bind(&s.task_id)
        .bind(&s.token)
        .bind(&s.output)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    if updated.rows_affected() == 0 {
        return Ok(false);
    }
    let status: Option<String> = sqlx::query_scalar(sql::RUN_STATUS).bind(&s.run_id).fetch_optional(&mut *tx).await?;
    let live = matches!(status.as_deref(), Some("pending" | "running"));
    match &s.next {
        Some(next) if live => {
            let id = uuid::Uuid::new_v4().to_string();
            insert_task!(tx, &id, next, now);
        }
        Some(_) => {}
        None => {
            sqlx::query(sql::SUCCEED_RUN).bind(&s.run_id).bind(&s.output).bind(now).execute(&mut *tx).await?;
        }
    }
    Ok(true)
}
