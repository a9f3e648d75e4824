//! The durable queue: task rows claimed with leases. Statements and state machine: [`sql`].

mod complete;
mod rescue;
pub mod sql;

pub use complete::Success;
pub use rescue::Rescued;

use std::collections::{BTreeMap, HashSet};

use compozy_store::{Store, StoreConn};
use sqlx::{Connection, Row};

use crate::clock::now_ms;
use crate::error::WorkerError;
use crate::model::{Backend, TaskKind};
use crate::runs::TxConn;
use crate::starter::Companion;

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
            .bind($t.kind.as_str())
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
    pub kind: TaskKind,
    pub queue: String,
    pub max_attempts: i32,
    pub available_at: i64,
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
}

impl Queue {
    pub fn backend(&self) -> Backend {
        if self.postgres { Backend::Postgres } else { Backend::Sqlite }
    }
}

/// A kind outside the vocabulary is an error, never silently another kind.
fn decode_kind(text: String) -> Result<TaskKind, sqlx::Error> {
    TaskKind::parse(&text).ok_or_else(|| sqlx::Error::Decode(format!("unknown task kind `{text}`").into()))
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
        kind: decode_kind(row.try_get("kind")?)?,
        queue: row.try_get("queue")?,
        attempt: row.try_get("attempt")?,
        max_attempts: row.try_get("max_attempts")?,
        rescues: row.try_get("rescues")?,
        token: row.try_get("lease_token")?,
        available_at: row.try_get("available_at")?,
        workflow_id: row.try_get("workflow_id")?,
        input: row.try_get("input")?,
    })
}

impl Queue {
    pub fn new(store: Store) -> Self {
        let postgres = store.backend() == Backend::Postgres.as_str();
        Self { store, postgres }
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

    /// Stores runs with their first tasks in one transaction, with one wake-up per queue: a
    /// bulk enqueue (or a group of webhook deliveries) costs one commit, not one per run.
    pub async fn insert_runs(&self, runs: &[NewRun]) -> Result<(), WorkerError> {
        self.insert_runs_with::<()>(runs, &[]).await
    }

    /// [`Queue::insert_runs`] with a caller's `rows` inserted in the same transaction after the
    /// runs and their first tasks: webhook delivery records exist if and only if their runs do.
    /// On PostgreSQL each table gets one multi-row statement.
    pub async fn insert_runs_with<C: Companion>(&self, runs: &[NewRun], rows: &[C]) -> Result<(), WorkerError> {
        let now = now_ms();
        let mut queues: Vec<&str> = runs.iter().map(|r| r.first.queue.as_str()).collect();
        queues.sort_unstable();
        queues.dedup();
        let _writer = self.writer().await;
        let mut conn = self.store.acquire().await?;
        match &mut conn {
            StoreConn::Postgres(c) => {
                let mut tx = c.begin().await?;
                insert_runs_postgres(&mut tx, runs, now).await?;
                C::insert_all(rows, TxConn::Postgres(&mut tx)).await?;
                for queue in &queues {
                    sqlx::query(sql::NOTIFY).bind(*queue).execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
            StoreConn::Sqlite(c) => {
                let mut tx = c.begin().await?;
                for run in runs {
                    sqlx::query(sql::INSERT_RUN)
                        .bind(&run.id)
                        .bind(&run.workflow_id)
                        .bind(&run.input)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    insert_task!(tx, uuid::Uuid::new_v4().to_string(), run.first, now);
                }
                C::insert_all(rows, TxConn::Sqlite(&mut tx)).await?;
                tx.commit().await?;
            }
        }
        Ok(())
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
        let now = now_ms();
        let _writer = self.writer().await;
        let mut conn = self.store.acquire().await?;
        let claim = sql::claim(self.postgres);
        // The same binds for both backends' query types.
        macro_rules! bound {
            () => {
                sqlx::query(claim).bind(owner).bind(lease_until).bind(now).bind(queue).bind(limit)
            };
        }
        let claimed = match &mut conn {
            StoreConn::Postgres(c) => {
                let rows = bound!().fetch_all(&mut **c).await?;
                rows.iter().map(decode_claimed).collect::<Result<Vec<_>, _>>()?
            }
            StoreConn::Sqlite(c) => {
                let mut tx = c.begin().await?;
                let rows = bound!().fetch_all(&mut *tx).await?;
                let claimed = rows.iter().map(decode_claimed).collect::<Result<Vec<_>, _>>()?;
                for t in claimed.iter().filter(|t| t.position == 0) {
                    sqlx::query(sql::MARK_RUN_STARTED).bind(&t.run_id).bind(now).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                claimed
            }
        };
        Ok(claimed)
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
        let _writer = self.writer().await;
        let mut conn = self.store.acquire().await?;
        let held = match &mut conn {
            StoreConn::Postgres(c) => {
                let (ids, tokens): (Vec<&str>, Vec<&str>) =
                    attempts.iter().map(|(id, token)| (id.as_str(), token.as_str())).unzip();
                sqlx::query_scalar(sql::EXTEND_LEASES_POSTGRES)
                    .bind(ids)
                    .bind(tokens)
                    .bind(until)
                    .fetch_all(&mut **c)
                    .await?
                    .into_iter()
                    .collect()
            }
            StoreConn::Sqlite(c) => {
                let mut tx = c.begin().await?;
                let mut held = HashSet::with_capacity(attempts.len());
                for (id, token) in attempts {
                    let row: Option<String> = sqlx::query_scalar(sql::EXTEND_LEASE)
                        .bind(id)
                        .bind(token)
                        .bind(until)
                        .fetch_optional(&mut *tx)
                        .await?;
                    held.extend(row);
                }
                tx.commit().await?;
                held
            }
        };
        Ok(held)
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

    /// The outputs of the run's succeeded tasks by task id, for templates.
    pub async fn outputs(&self, run_id: &str) -> Result<Vec<(String, Option<String>)>, WorkerError> {
        let mut conn = self.store.acquire().await?;
        let out = on_conn!(&mut conn, c => {
            let rows = sqlx::query(sql::RUN_OUTPUTS).bind(run_id).fetch_all(&mut **c).await?;
            rows.iter().map(|r| Ok((r.try_get("name")?, r.try_get("output")?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        Ok(out)
    }
}

/// The runs and their first tasks as two statements of arrays, whatever their number.
async fn insert_runs_postgres(tx: &mut sqlx::PgConnection, runs: &[NewRun], now: i64) -> Result<(), sqlx::Error> {
    let col = |f: fn(&NewRun) -> &str| runs.iter().map(f).collect::<Vec<&str>>();
    sqlx::query(sql::INSERT_RUNS_POSTGRES)
        .bind(col(|r| &r.id))
        .bind(col(|r| &r.workflow_id))
        .bind(col(|r| &r.input))
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let task_ids: Vec<String> = runs.iter().map(|_| uuid::Uuid::new_v4().to_string()).collect();
    sqlx::query(sql::INSERT_TASKS_POSTGRES)
        .bind(task_ids)
        .bind(col(|r| &r.id))
        .bind(runs.iter().map(|r| r.first.position).collect::<Vec<_>>())
        .bind(col(|r| &r.first.name))
        .bind(col(|r| r.first.kind.as_str()))
        .bind(col(|r| &r.first.queue))
        .bind(runs.iter().map(|r| r.first.max_attempts).collect::<Vec<_>>())
        .bind(runs.iter().map(|r| r.first.available_at).collect::<Vec<_>>())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

pub(crate) use compozy_store::on_conn;
pub(crate) use {in_tx, insert_task};
