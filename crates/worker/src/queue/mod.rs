//! The durable queue: task rows claimed with leases. Statements and state machine: [`sql`].

pub mod sql;

use std::collections::BTreeMap;

use compozy_store::{Store, StoreConn};
use sqlx::{Connection, Row};

use crate::clock::now_ms;
use crate::error::WorkerError;

/// Runs `$body` with `$c` bound to the backend's connection (the same text for both).
macro_rules! on_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            StoreConn::Postgres($c) => $body,
            StoreConn::Sqlite($c) => $body,
        }
    };
}

/// Runs `$body` in a transaction `$tx` (on SQLite, callers hold the process's writer lock).
macro_rules! in_tx {
    ($conn:expr, $tx:ident => $body:expr) => {
        match $conn {
            StoreConn::Postgres(c) => {
                let mut $tx = c.begin().await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
            StoreConn::Sqlite(c) => {
                let mut $tx = c.begin().await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    };
}

/// Inserts the task row `$t` with id `$id` inside transaction `$tx`.
macro_rules! insert_task {
    ($tx:ident, $id:expr, $t:expr, $now:expr) => {
        sqlx::query(sql::INSERT_TASK)
            .bind($id)
            .bind(&$t.run_id)
            .bind($t.position)
            .bind(&$t.name)
            .bind($t.kind)
            .bind(&$t.queue)
            .bind($t.max_attempts)
            .bind($t.available_at.max($now))
            .execute(&mut *$tx)
            .await?
    };
}

/// A task row to insert.
#[derive(Clone, Debug)]
pub struct NewTask {
    pub run_id: String,
    pub position: i32,
    pub name: String,
    pub kind: &'static str,
    pub queue: String,
    pub max_attempts: i32,
    pub available_at: i64,
}

/// A task this worker holds the lease of.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub id: String,
    pub run_id: String,
    pub position: i32,
    pub name: String,
    pub kind: String,
    pub queue: String,
    pub attempt: i32,
    pub max_attempts: i32,
    pub available_at: i64,
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

/// The readiness of one queue, as stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Depth {
    pub depth: i64,
    pub oldest_available_at: Option<i64>,
}

/// SQLite has one write lock per database; writers that wait for it inside SQLite sleep in its
/// busy handler while holding a pooled connection, which starves the pool under load. Writers
/// of this process queue here instead, before taking a connection (one embedded process per
/// database is SQLite's deployment model, so a process-wide lock is the single writer).
static SQLITE_WRITER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Clone, Debug)]
pub struct Queue {
    store: Store,
    postgres: bool,
    claim_sql: String,
}

fn decode_claimed<R: Row>(row: &R) -> Result<Claimed, sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i32: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Claimed {
        id: row.try_get("id")?,
        run_id: row.try_get("run_id")?,
        position: row.try_get("position")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        queue: row.try_get("queue")?,
        attempt: row.try_get("attempt")?,
        max_attempts: row.try_get("max_attempts")?,
        available_at: row.try_get("available_at")?,
    })
}

impl Queue {
    pub fn new(store: Store) -> Self {
        let postgres = store.backend() == "postgres";
        Self { store, postgres, claim_sql: sql::claim(postgres) }
    }

    /// Held across a write on SQLite; nothing on PostgreSQL (row locks suffice there).
    pub(crate) async fn writer(&self) -> Option<tokio::sync::MutexGuard<'static, ()>> {
        if self.postgres { None } else { Some(SQLITE_WRITER.lock().await) }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres
    }

    /// Stores a run and its first task in one transaction, then wakes listeners.
    pub async fn insert_run(
        &self,
        run_id: &str,
        workflow_id: &str,
        input: &str,
        first: &NewTask,
    ) -> Result<(), WorkerError> {
        let now = now_ms();
        let task_id = uuid::Uuid::new_v4().to_string();
        let _writer = self.writer().await;
        let mut conn = self.store.acquire().await?;
        in_tx!(&mut conn, tx => {
            sqlx::query(sql::INSERT_RUN).bind(run_id).bind(workflow_id).bind(input).bind(now).execute(&mut *tx).await?;
            insert_task!(tx, &task_id, first, now);
            if self.postgres {
                sqlx::query(sql::NOTIFY).bind(&first.queue).execute(&mut *tx).await?;
            }
        });
        Ok(())
    }

    /// Claims up to `limit` ready tasks of `queue` for `owner` until `lease_until`.
    pub async fn claim(
        &self,
        queue: &str,
        owner: &str,
        limit: i64,
        lease_until: i64,
    ) -> Result<Vec<Claimed>, WorkerError> {
        let now = now_ms();
        let _writer = self.writer().await;
        let mut conn = self.store.acquire().await?;
        let claimed = on_conn!(&mut conn, c => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(self.claim_sql.as_str())).bind(owner).bind(lease_until).bind(now)
                .bind(queue).bind(limit).fetch_all(&mut **c).await?;
            rows.iter().map(decode_claimed).collect::<Result<Vec<_>, _>>()?
        });
        for t in claimed.iter().filter(|t| t.position == 0 && t.attempt == 1) {
            on_conn!(&mut conn, c => sqlx::query(sql::MARK_RUN_STARTED).bind(&t.run_id).bind(now).execute(&mut **c).await.map(|_| ())?);
        }
        Ok(claimed)
    }

    /// Extends the leases of `tasks` (still held by `owner`); returns how many.
    pub async fn extend_leases(&self, owner: &str, tasks: &[String], until: i64) -> Result<u64, WorkerError> {
        if tasks.is_empty() {
            return Ok(0);
        }
        let _writer = self.writer().await;
        let mut conn = self.store.acquire().await?;
        let mut n = 0;
        for id in tasks {
            n += on_conn!(&mut conn, c => sqlx::query(sql::EXTEND_LEASE).bind(id).bind(owner).bind(until)
                .execute(&mut **c).await?.rows_affected());
        }
        Ok(n)
    }

    /// Marks `task` succeeded and advances its run: inserts `next`, or finishes the run with
    /// `output` when there is none. `false` when the lease was lost (nothing written).
    pub async fn succeed(
        &self,
        task: &Claimed,
        owner: &str,
        output: &str,
        next: Option<&NewTask>,
    ) -> Result<bool, WorkerError> {
        let now = now_ms();
        let next_id = uuid::Uuid::new_v4().to_string();
        let _writer = self.writer().await;
        let mut conn = self.store.acquire().await?;
        let done = in_tx!(&mut conn, tx => {
            let n = sqlx::query(sql::SUCCEED_TASK).bind(&task.id).bind(owner).bind(output).bind(now)
                .execute(&mut *tx).await?.rows_affected();
            if n == 1 {
                let status: Option<String> = sqlx::query_scalar(sql::RUN_STATUS).bind(&task.run_id).fetch_optional(&mut *tx).await?;
                let live = matches!(status.as_deref(), Some("pending" | "running"));
                match next {
                    Some(next) if live => {
                        insert_task!(tx, &next_id, next, now);
                        if self.postgres {
                            sqlx::query(sql::NOTIFY).bind(&next.queue).execute(&mut *tx).await?;
                        }
                    }
                    Some(_) => {}
                    None => {
                        sqlx::query(sql::SUCCEED_RUN).bind(&task.run_id).bind(output).bind(now).execute(&mut *tx).await?;
                    }
                }
            }
            n == 1
        });
        Ok(done)
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
            match retry_at.filter(|_| !permanent && task.attempt < task.max_attempts) {
                Some(at) => {
                    let n = sqlx::query(sql::RETRY_TASK).bind(&task.id).bind(owner).bind(outcome).bind(error).bind(at)
                        .execute(&mut *tx).await?.rows_affected();
                    if n == 1 { Failed::Retried } else { Failed::Lost }
                }
                None => {
                    let state = if permanent { "failed" } else { "dead" };
                    let n = sqlx::query(sql::END_TASK).bind(&task.id).bind(owner).bind(outcome).bind(error).bind(state)
                        .bind(now).execute(&mut *tx).await?.rows_affected();
                    if n == 1 {
                        let msg = format!("task `{}`: {error}", task.name);
                        sqlx::query(sql::FAIL_RUN).bind(&task.run_id).bind(msg).bind(now).execute(&mut *tx).await?;
                        if permanent { Failed::Failed } else { Failed::Dead }
                    } else {
                        Failed::Lost
                    }
                }
            }
        });
        Ok(result)
    }

    /// Cancels a pending or running run and its waiting task; `false` when it had already ended
    /// (or does not exist). A running activity finishes, but its run does not advance.
    pub async fn cancel_run(&self, run_id: &str) -> Result<bool, WorkerError> {
        let now = now_ms();
        let _writer = self.writer().await;
        let mut conn = self.store.acquire().await?;
        let cancelled = in_tx!(&mut conn, tx => {
            let n = sqlx::query(sql::CANCEL_RUN).bind(run_id).bind(now).execute(&mut *tx).await?.rows_affected();
            if n == 1 {
                sqlx::query(sql::CANCEL_TASKS).bind(run_id).bind(now).execute(&mut *tx).await?;
            }
            n == 1
        });
        Ok(cancelled)
    }

    /// Graceful shutdown: hands `owner`'s running tasks back without counting the attempt.
    pub async fn release(&self, owner: &str) -> Result<u64, WorkerError> {
        let _writer = self.writer().await;
        let mut conn = self.store.acquire().await?;
        let n = on_conn!(&mut conn, c => sqlx::query(sql::RELEASE).bind(owner).bind(now_ms()).execute(&mut **c).await?
            .rows_affected());
        Ok(n)
    }

    /// Re-queues tasks whose lease expired; returns the kinds re-queued and the (run, queue) of
    /// those dead-lettered because they had no attempts left.
    pub async fn rescue(&self) -> Result<(Vec<String>, Vec<(String, String)>), WorkerError> {
        let now = now_ms();
        let _writer = self.writer().await;
        let mut conn = self.store.acquire().await?;
        let out = in_tx!(&mut conn, tx => {
            let rows = sqlx::query(sql::RESCUE).bind(now).fetch_all(&mut *tx).await?;
            let kinds = rows.iter().map(|r| r.try_get::<String, _>("kind")).collect::<Result<Vec<_>, _>>()?;
            let rows = sqlx::query(sql::RESCUE_DEAD).bind(now).fetch_all(&mut *tx).await?;
            let mut dead = Vec::with_capacity(rows.len());
            for r in &rows {
                let run: String = r.try_get("run_id")?;
                sqlx::query(sql::FAIL_RUN).bind(&run).bind("lease expired on the last attempt").bind(now)
                    .execute(&mut *tx).await?;
                dead.push((run, r.try_get::<String, _>("queue")?));
            }
            (kinds, dead)
        });
        Ok(out)
    }

    /// Ready, unclaimed tasks per queue.
    pub async fn depth(&self) -> Result<BTreeMap<String, Depth>, WorkerError> {
        let mut conn = self.store.acquire().await?;
        let rows = on_conn!(&mut conn, c => {
            let rows = sqlx::query(sql::DEPTH).bind(now_ms()).fetch_all(&mut **c).await?;
            rows.iter().map(|r| Ok((r.try_get::<String, _>("queue")?, Depth {
                depth: r.try_get("depth")?,
                oldest_available_at: r.try_get("oldest")?,
            }))).collect::<Result<BTreeMap<_, _>, sqlx::Error>>()?
        });
        Ok(rows)
    }

    /// The run's workflow id, input, and the outputs of its succeeded tasks by task id.
    pub async fn context(
        &self,
        run_id: &str,
    ) -> Result<Option<(String, String, Vec<(String, Option<String>)>)>, WorkerError> {
        let mut conn = self.store.acquire().await?;
        let out = on_conn!(&mut conn, c => {
            let Some(run) = sqlx::query(sql::RUN_INPUT).bind(run_id).fetch_optional(&mut **c).await? else {
                return Ok(None);
            };
            let rows = sqlx::query(sql::RUN_OUTPUTS).bind(run_id).fetch_all(&mut **c).await?;
            let outputs = rows.iter().map(|r| Ok((r.try_get("name")?, r.try_get("output")?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            (run.try_get("workflow_id")?, run.try_get("input")?, outputs)
        });
        Ok(Some(out))
    }
}

pub(crate) use on_conn;
