//! The SQLite driver: SQLite has one writer, so its statements are the plain per-task ones, a
//! batch is one transaction of them, and no row needs a lock. Writers of this process queue on
//! a process-wide lock before taking a connection.

use std::collections::{BTreeMap, HashSet};

use compozy_store::{Store, StoreConn, begin_write};
use sqlx::Row;
use sqlx::pool::PoolConnection;
use tokio::sync::{Mutex, MutexGuard};

use super::rows::{self, all};
use super::{
    CancelRunParams, ClaimParams, Claimed, CompleteBatchParams, Dependent, Depth, Driver, DriverFuture,
    ExtendLeasesParams, FailParams, Failed, GetRunParams, InsertRetryParams, InsertRunsParams, ListRunsParams, NewTask,
    PruneRunsParams, PrunedRuns, QueueDepthsParams, ReclaimPagesParams, ReleaseParams, RescueParams, Rescued,
    RunAttemptsParams, RunDelete, RunOutputsParams, RunTasksParams, Success, SweepParams, TxConn, boxed, sql,
    unless_already_retried,
};
use crate::attempts::Attempt;
use crate::error::WorkerError;
use crate::model::{AttemptOutcome, Backend};
use crate::runs::{Run, TaskRow};

const INSERT_RUN: &str = "INSERT INTO workflow_runs (id, workflow_id, status, input, created_at) \
     VALUES ($1, $2, 'pending', $3, $4)";

const INSERT_TASK: &str = "INSERT INTO tasks (id, run_id, position, name, kind, queue, state, attempt, \
     max_attempts, available_at, created_at, traceparent) VALUES ($1, $2, $3, $4, $5, $6, 'available', 0, $7, $8, $8, $9)";

/// The single writer needs no row locks; the run's workflow and input ride along so a task
/// needs no read of its run before it starts. The run row is not written: its first task's
/// `first_started_at` makes it running ([`sql::GET_RUN`]).
const CLAIM: &str = "UPDATE tasks SET state = 'running', attempt = attempt + 1, lease_owner = $1, \
     lease_token = lower(hex(randomblob(16))), lease_expires_at = $2, started_at = $3, \
     first_started_at = COALESCE(first_started_at, $3) WHERE id IN (SELECT id FROM tasks WHERE queue = $4 \
     AND state = 'available' AND available_at <= $3 ORDER BY available_at, id LIMIT $5) \
     RETURNING id, run_id, position, name, kind, queue, attempt, max_attempts, rescues, lease_token, \
     available_at, traceparent, (SELECT workflow_id FROM workflow_runs r WHERE r.id = tasks.run_id) AS workflow_id, \
     (SELECT input FROM workflow_runs r WHERE r.id = tasks.run_id) AS input";

/// Per attempt, not per owner: a task whose outcome could not be recorded must be left to
/// expire, and an attempt whose lease was lost must learn it (no row returned) and stop.
const EXTEND_LEASE: &str = "UPDATE tasks SET lease_expires_at = $3 WHERE id = $1 AND lease_token = $2 \
     AND state = 'running' RETURNING lease_token";

/// A succeeded task keeps `lease_owner`: the row is its last attempt's record (worker included).
const SUCCEED_TASK: &str = "UPDATE tasks SET state = 'succeeded', output = $3, last_outcome = 'success', \
     last_error = NULL, lease_expires_at = NULL, lease_token = NULL, finished_at = $4 \
     WHERE id = $1 AND lease_token = $2 AND state = 'running'";

const RUN_STATUS: &str = "SELECT status FROM workflow_runs WHERE id = $1";

const SUCCEED_RUN: &str = "UPDATE workflow_runs SET status = 'succeeded', output = $2, finished_at = $3 \
     WHERE id = $1 AND status IN ('pending', 'running')";

/// SQLite has one write lock per database; writers that wait for it inside SQLite sleep in its
/// busy handler while holding a pooled connection, which starves the pool under load. Writers
/// of this process queue here instead, before taking a connection (one embedded process per
/// database is SQLite's deployment model, so a process-wide lock is the single writer).
static WRITER: Mutex<()> = Mutex::const_new(());

#[derive(Clone, Debug)]
pub struct SqliteDriver {
    store: Store,
}

/// A connection held with the process's writer lock.
struct Writer {
    conn: PoolConnection<sqlx::Sqlite>,
    // Dropped after the connection is back in the pool.
    _lock: MutexGuard<'static, ()>,
}

impl SqliteDriver {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    async fn conn(&self) -> Result<PoolConnection<sqlx::Sqlite>, WorkerError> {
        match self.store.acquire().await? {
            StoreConn::Sqlite(c) => Ok(c),
            StoreConn::Postgres(_) => Err(WorkerError::Config("the SQLite driver was given a PostgreSQL store".into())),
        }
    }

    /// The writer lock, then a connection.
    async fn writer(&self) -> Result<Writer, WorkerError> {
        let lock = WRITER.lock().await;
        Ok(Writer { conn: self.conn().await?, _lock: lock })
    }
}

impl Driver for SqliteDriver {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn store(&self) -> &Store {
        &self.store
    }

    fn insert_runs<'a>(&'a self, p: InsertRunsParams<'a>) -> DriverFuture<'a, ()> {
        boxed(async move {
            let mut w = self.writer().await?;
            let mut tx = begin_write(&mut w.conn).await?;
            for run in p.runs {
                sqlx::query(INSERT_RUN)
                    .bind(&run.id)
                    .bind(&run.workflow_id)
                    .bind(&run.input)
                    .bind(p.now)
                    .execute(&mut *tx)
                    .await?;
                insert_task(&mut tx, &run.first, p.now).await?;
            }
            p.companions.insert(TxConn::Sqlite(&mut tx)).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn insert_retry<'a>(&'a self, p: InsertRetryParams<'a>) -> DriverFuture<'a, bool> {
        boxed(async move {
            let mut w = self.writer().await?;
            let run = p.run;
            let stored = async {
                let mut tx = begin_write(&mut w.conn).await?;
                sqlx::query(sql::INSERT_RETRY_RUN)
                    .bind(&run.id)
                    .bind(&run.workflow_id)
                    .bind(&run.input)
                    .bind(p.now)
                    .bind(p.retry_of)
                    .execute(&mut *tx)
                    .await?;
                insert_task(&mut tx, &run.first, p.now).await?;
                tx.commit().await
            }
            .await;
            unless_already_retried(stored)
        })
    }

    fn claim<'a>(&'a self, p: ClaimParams<'a>) -> DriverFuture<'a, Vec<Claimed>> {
        boxed(async move {
            let mut w = self.writer().await?;
            let rows = sqlx::query(CLAIM)
                .bind(p.owner)
                .bind(p.lease_until)
                .bind(p.now)
                .bind(p.queue)
                .bind(p.limit)
                .fetch_all(&mut *w.conn)
                .await?;
            Ok(all(&rows, rows::claimed)?)
        })
    }

    fn extend_leases<'a>(&'a self, p: ExtendLeasesParams<'a>) -> DriverFuture<'a, HashSet<String>> {
        boxed(async move {
            let mut w = self.writer().await?;
            let mut tx = begin_write(&mut w.conn).await?;
            let mut held = HashSet::with_capacity(p.attempts.len());
            for (id, token) in p.attempts {
                let row: Option<String> = sqlx::query_scalar(EXTEND_LEASE)
                    .bind(id)
                    .bind(token)
                    .bind(p.until)
                    .fetch_optional(&mut *tx)
                    .await?;
                held.extend(row);
            }
            tx.commit().await?;
            Ok(held)
        })
    }

    fn complete_batch<'a>(&'a self, p: CompleteBatchParams<'a>) -> DriverFuture<'a, HashSet<String>> {
        boxed(async move {
            let mut w = self.writer().await?;
            let mut tx = begin_write(&mut w.conn).await?;
            let mut done = HashSet::with_capacity(p.successes.len());
            for s in p.successes {
                if complete_one(&mut tx, s, p.now).await? {
                    done.insert(s.task_id.clone());
                }
            }
            tx.commit().await?;
            Ok(done)
        })
    }

    fn fail<'a>(&'a self, p: FailParams<'a>) -> DriverFuture<'a, Failed> {
        boxed(async move {
            let (task, now) = (p.task, p.now);
            let retry = super::retry_at(&p);
            let (state, ended) = super::end_state(&p);
            let mut w = self.writer().await?;
            let mut tx = begin_write(&mut w.conn).await?;
            let q = sqlx::query(if retry.is_some() { sql::RETRY_TASK } else { sql::END_TASK })
                .bind(&task.id)
                .bind(&task.token)
                .bind(p.outcome)
                .bind(p.error);
            let q = match retry {
                Some(at) => q.bind(at),
                None => q.bind(state).bind(now),
            };
            let Some(row) = q.fetch_optional(&mut *tx).await? else {
                tx.commit().await?;
                return Ok(Failed::Lost);
            };
            let (attempt, started_at): (i32, Option<i64>) = (row.try_get(0)?, row.try_get(1)?);
            sqlx::query(sql::INSERT_ATTEMPT)
                .bind(&task.id)
                .bind(attempt)
                .bind(Some(p.owner))
                .bind(started_at.unwrap_or(now))
                .bind(now)
                .bind(p.outcome)
                .bind(Some(p.error))
                .bind(None::<&str>)
                .execute(&mut *tx)
                .await?;
            let failed = if retry.is_some() {
                Failed::Retried
            } else {
                let msg = format!("task `{}`: {}", task.name, p.error);
                sqlx::query(sql::FAIL_RUN).bind(&task.run_id).bind(msg).bind(now).execute(&mut *tx).await?;
                ended
            };
            tx.commit().await?;
            Ok(failed)
        })
    }

    fn rescue<'a>(&'a self, p: RescueParams) -> DriverFuture<'a, Rescued> {
        boxed(async move {
            // The write lock is taken at BEGIN: nothing completes a task between the read and the writes.
            let mut w = self.writer().await?;
            let mut tx = begin_write(&mut w.conn).await?;
            let rows = sqlx::query(sql::EXPIRED).bind(p.now).fetch_all(&mut *tx).await?;
            let mut out = Rescued::default();
            for t in all(&rows, rows::expired)? {
                let (last, reason) = super::rescue_reason(t.rescues, p.max_rescues);
                let update = if last { sql::RESCUE_DEAD_ONE } else { sql::RESCUE_ONE };
                sqlx::query(update).bind(&t.id).bind(p.now).bind(&reason).execute(&mut *tx).await?;
                sqlx::query(sql::INSERT_ATTEMPT)
                    .bind(&t.id)
                    .bind(t.attempt)
                    .bind(t.owner.as_deref())
                    .bind(t.started_at.unwrap_or(p.now))
                    .bind(p.now)
                    .bind(AttemptOutcome::Rescued.as_str())
                    .bind(Some(reason.as_str()))
                    .bind(None::<&str>)
                    .execute(&mut *tx)
                    .await?;
                if last {
                    let msg = format!("task `{}`: {reason}", t.name);
                    sqlx::query(sql::FAIL_RUN).bind(&t.run_id).bind(msg).bind(p.now).execute(&mut *tx).await?;
                    out.dead.push((t.run_id, t.queue));
                } else {
                    out.requeued.push(t.queue);
                }
            }
            tx.commit().await?;
            Ok(out)
        })
    }

    fn release<'a>(&'a self, p: ReleaseParams<'a>) -> DriverFuture<'a, u64> {
        boxed(async move {
            let mut w = self.writer().await?;
            Ok(sqlx::query(sql::RELEASE).bind(p.owner).bind(p.now).execute(&mut *w.conn).await?.rows_affected())
        })
    }

    fn cancel_run<'a>(&'a self, p: CancelRunParams<'a>) -> DriverFuture<'a, bool> {
        boxed(async move {
            let mut w = self.writer().await?;
            let mut tx = begin_write(&mut w.conn).await?;
            let n = sqlx::query(sql::CANCEL_RUN).bind(p.run_id).bind(p.now).execute(&mut *tx).await?.rows_affected();
            if n == 1 {
                sqlx::query(sql::CANCEL_TASKS).bind(p.run_id).bind(p.now).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(n == 1)
        })
    }

    fn queue_depths<'a>(&'a self, p: QueueDepthsParams) -> DriverFuture<'a, BTreeMap<String, Depth>> {
        boxed(async move {
            let mut conn = self.conn().await?;
            let rows = sqlx::query(sql::DEPTH).bind(p.now).fetch_all(&mut *conn).await?;
            Ok(rows.iter().map(rows::depth).collect::<Result<_, _>>()?)
        })
    }

    fn run_outputs<'a>(&'a self, p: RunOutputsParams<'a>) -> DriverFuture<'a, Vec<(String, Option<String>)>> {
        boxed(async move {
            let mut conn = self.conn().await?;
            let rows = sqlx::query(sql::RUN_OUTPUTS).bind(p.run_id).fetch_all(&mut *conn).await?;
            Ok(all(&rows, rows::output)?)
        })
    }

    fn get_run<'a>(&'a self, p: GetRunParams<'a>) -> DriverFuture<'a, Option<Run>> {
        boxed(async move {
            let mut conn = self.conn().await?;
            let row = sqlx::query(sql::GET_RUN).bind(p.id).fetch_optional(&mut *conn).await?;
            Ok(row.as_ref().map(rows::run).transpose()?)
        })
    }

    fn list_runs<'a>(&'a self, p: ListRunsParams<'a>) -> DriverFuture<'a, Vec<Run>> {
        boxed(async move {
            let (f, (before_at, before_id)) = (p.filter, p.filter.cursor());
            let mut conn = self.conn().await?;
            let statement = sql::list_runs(f.workflow_id.is_some(), f.status.as_deref());
            let rows = sqlx::query(statement)
                .bind(&f.workflow_id)
                .bind(&f.status)
                .bind(before_at)
                .bind(before_id)
                .bind(f.page_size())
                .fetch_all(&mut *conn)
                .await?;
            Ok(all(&rows, rows::run)?)
        })
    }

    fn run_tasks<'a>(&'a self, p: RunTasksParams<'a>) -> DriverFuture<'a, Vec<TaskRow>> {
        boxed(async move {
            let mut conn = self.conn().await?;
            let rows = sqlx::query(sql::RUN_TASKS).bind(p.run_id).fetch_all(&mut *conn).await?;
            Ok(all(&rows, rows::task)?)
        })
    }

    fn run_attempts<'a>(&'a self, p: RunAttemptsParams<'a>) -> DriverFuture<'a, Vec<(String, Attempt)>> {
        boxed(async move {
            let mut conn = self.conn().await?;
            let rows = sqlx::query(sql::RUN_ATTEMPTS).bind(p.run_id).fetch_all(&mut *conn).await?;
            Ok(all(&rows, rows::attempt)?)
        })
    }

    /// The batch's ids are bound as one JSON array, read with `json_each`.
    fn run_deletes(&self, dependents: &[Dependent]) -> Vec<RunDelete> {
        sql::run_deletes("IN (SELECT value FROM json_each($1))", dependents)
    }

    fn prune_runs<'a>(&'a self, p: PruneRunsParams<'a>) -> DriverFuture<'a, PrunedRuns> {
        boxed(async move {
            let mut w = self.writer().await?;
            let mut tx = begin_write(&mut w.conn).await?;
            let rows =
                sqlx::query(sql::EXPIRED_RUNS).bind(p.status).bind(p.cutoff).bind(p.limit).fetch_all(&mut *tx).await?;
            let ids = all(&rows, |r| r.try_get::<String, _>(0))?;
            let mut out = PrunedRuns { runs: ids.len(), deleted: Vec::with_capacity(p.deletes.len()) };
            if !ids.is_empty() {
                let ids = serde_json::Value::from(ids).to_string();
                for d in p.deletes {
                    let statement = sqlx::AssertSqlSafe(d.statement.as_str());
                    let n = sqlx::query(statement).bind(&ids).execute(&mut *tx).await?.rows_affected();
                    out.deleted.push((d.kind, n));
                }
            }
            tx.commit().await?;
            Ok(out)
        })
    }

    fn sweep<'a>(&'a self, p: SweepParams) -> DriverFuture<'a, u64> {
        boxed(async move {
            let mut w = self.writer().await?;
            Ok(sqlx::query(p.statement).bind(p.cutoff).bind(p.limit).execute(&mut *w.conn).await?.rows_affected())
        })
    }

    /// Gives free pages beyond a tenth of the file back, at most `max_pages` under one lock;
    /// the tenth stays for the next inserts, which reuse free pages first.
    fn reclaim_pages<'a>(&'a self, p: ReclaimPagesParams) -> DriverFuture<'a, u64> {
        boxed(async move {
            let mut w = self.writer().await?;
            let c = &mut *w.conn;
            let mode: i64 = sqlx::query("PRAGMA auto_vacuum").fetch_one(&mut *c).await?.try_get(0)?;
            let pages: i64 = sqlx::query("PRAGMA page_count").fetch_one(&mut *c).await?.try_get(0)?;
            let free: i64 = sqlx::query("PRAGMA freelist_count").fetch_one(&mut *c).await?.try_get(0)?;
            let excess = free - pages / 10;
            // 2 = INCREMENTAL; a database created before it was the default keeps reusing its
            // free pages but cannot give them back (docs/storage.md).
            if mode != 2 || excess <= 0 {
                return Ok(0);
            }
            let n = excess.min(p.max_pages);
            // `n` is a number computed here.
            sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA incremental_vacuum({n})"))).execute(&mut *c).await?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }
}

async fn insert_task(tx: &mut sqlx::SqliteConnection, t: &NewTask, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(INSERT_TASK)
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(&t.run_id)
        .bind(t.position)
        .bind(&t.name)
        .bind(t.kind.as_str())
        .bind(&t.queue)
        .bind(t.max_attempts)
        .bind(t.available_at.max(now))
        .bind(t.traceparent.as_deref())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// One success inside the batch's transaction; `false` when the lease was lost.
async fn complete_one(tx: &mut sqlx::SqliteConnection, s: &Success, now: i64) -> Result<bool, sqlx::Error> {
    let updated =
        sqlx::query(SUCCEED_TASK).bind(&s.task_id).bind(&s.token).bind(&s.output).bind(now).execute(&mut *tx).await?;
    if updated.rows_affected() == 0 {
        return Ok(false);
    }
    let status: Option<String> = sqlx::query_scalar(RUN_STATUS).bind(&s.run_id).fetch_optional(&mut *tx).await?;
    let live = matches!(status.as_deref(), Some("pending" | "running"));
    match &s.next {
        Some(next) if live => insert_task(tx, next, now).await?,
        Some(_) => {}
        None => {
            sqlx::query(SUCCEED_RUN).bind(&s.run_id).bind(&s.output).bind(now).execute(&mut *tx).await?;
        }
    }
    Ok(true)
}
