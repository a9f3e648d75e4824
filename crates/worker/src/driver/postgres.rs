//! The PostgreSQL driver: a claim, a lease extension and a batch of successes are one
//! statement each, whatever the batch size (arrays bound with `unnest`); claims skip rows other
//! workers hold (`FOR UPDATE SKIP LOCKED`), and new tasks wake the workers by NOTIFY.

use std::collections::{BTreeMap, HashSet};

use compozy_store::{Store, StoreConn};
use sqlx::pool::PoolConnection;
use sqlx::{Connection, Row};

use super::rows::{self, all};
use super::{
    CancelRunParams, ClaimParams, Claimed, CompleteBatchParams, Dependent, Depth, Driver, DriverFuture,
    ExtendLeasesParams, FailParams, Failed, GetRunParams, InsertRetryParams, InsertRunsParams, ListRunsParams, NewRun,
    NewTask, PruneRunsParams, PrunedRuns, QueueDepthsParams, ReclaimPagesParams, ReleaseParams, RescueParams, Rescued,
    RunAttemptsParams, RunDelete, RunOutputsParams, RunTasksParams, Success, SweepParams, TxConn, boxed, sql,
    unless_already_retried,
};
use crate::attempts::Attempt;
use crate::error::WorkerError;
use crate::model::{AttemptOutcome, Backend};
use crate::runs::{Run, TaskRow};

/// The channel new tasks are announced on (payload: the queue).
pub const CHANNEL: &str = "compozy_tasks";

const NOTIFY: &str = "SELECT pg_notify('compozy_tasks', $1)";

/// Many runs (arrays `$1`–`$3`) in one statement.
const INSERT_RUNS: &str = "INSERT INTO workflow_runs (id, workflow_id, status, input, created_at) \
     SELECT id, workflow_id, 'pending', input, $4 FROM unnest($1::text[], $2::text[], $3::text[]) \
     AS r(id, workflow_id, input)";

/// Many first tasks (arrays `$1`–`$8` and `$10`) in one statement.
const INSERT_TASKS: &str = "INSERT INTO tasks (id, run_id, position, name, kind, queue, state, \
     attempt, max_attempts, available_at, created_at, traceparent) SELECT id, run_id, position, name, kind, queue, \
     'available', 0, max_attempts, GREATEST(available_at, $9), $9, traceparent FROM unnest($1::text[], $2::text[], \
     $3::int4[], $4::text[], $5::text[], $6::text[], $7::int4[], $8::int8[], $10::text[]) AS t(id, run_id, position, \
     name, kind, queue, max_attempts, available_at, traceparent)";

/// One round trip per batch: lock ready rows others do not hold, lease them, and return each
/// with its run's workflow and input. The run row is not written: its first task's
/// `first_started_at` makes it running ([`sql::GET_RUN`]).
const CLAIM: &str = "WITH picked AS MATERIALIZED (SELECT id FROM tasks WHERE queue = $4 \
     AND state = 'available' AND available_at <= $3 ORDER BY available_at, id LIMIT $5 FOR UPDATE SKIP LOCKED), \
     claimed AS (UPDATE tasks t SET state = 'running', attempt = t.attempt + 1, lease_owner = $1, \
     lease_token = gen_random_uuid()::text, lease_expires_at = $2, started_at = $3, \
     first_started_at = COALESCE(t.first_started_at, $3) FROM picked WHERE t.id = picked.id \
     RETURNING t.id, t.run_id, t.position, t.name, t.kind, t.queue, t.attempt, t.max_attempts, t.rescues, \
     t.lease_token, t.available_at, t.traceparent) \
     SELECT c.*, r.workflow_id, r.input FROM claimed c JOIN workflow_runs r ON r.id = c.run_id";

/// Every attempt of the process in one statement (arrays `$1` ids, `$2` tokens). Per attempt,
/// not per owner: a task whose outcome could not be recorded must be left to expire, and an
/// attempt whose lease was lost must learn it (no row returned) and stop.
///
/// It never waits for a row lock: a row another transaction holds (most often the completer's
/// batch of this same process, which locks the rows in another order) is skipped this time and
/// still reported held, as it was at the statement's start. Waiting deadlocked with the
/// completer, and the losing batch's tasks waited for their leases to expire and ran again.
const EXTEND_LEASES: &str = "WITH held AS MATERIALIZED (SELECT t.id, t.lease_token FROM tasks t \
     JOIN unnest($1::text[], $2::text[]) AS h(id, token) ON t.id = h.id AND t.lease_token = h.token \
     WHERE t.state = 'running'), \
     free AS (SELECT t.id FROM tasks t JOIN held ON t.id = held.id \
     WHERE t.lease_token = held.lease_token AND t.state = 'running' FOR UPDATE OF t SKIP LOCKED), \
     extended AS (UPDATE tasks t SET lease_expires_at = $3 FROM free WHERE t.id = free.id) \
     SELECT lease_token FROM held";

/// The successes of one batch in one statement. Per completed task (arrays `$1`–`$10`, `$12`: its
/// lease token, id, output and its `next_*` task, NULL when it was the run's last): mark it
/// succeeded (guarded by the token; a succeeded task keeps `lease_owner`, its last attempt's
/// worker), then insert the run's next task if the run is still live, or finish the run; one
/// NOTIFY per queue that received tasks. Returns the ids that were completed.
///
/// The batch is joined to `tasks` once, by primary key; the next task's fields ride along in
/// `RETURNING`, so every later part reads `done` alone and the statement stays linear in the
/// batch size (joins between CTEs, which the planner estimates at one row, were quadratic).
/// Task rows are locked before run rows, as [`LOCK_RUN_TASKS`] makes a cancel do.
const COMPLETE_BATCH: &str = "WITH d AS MATERIALIZED (SELECT * FROM unnest($2::text[], $3::text[], \
     $4::text[], $5::int4[], $6::text[], $7::text[], $8::text[], $9::int4[], $10::int8[], $1::text[], $12::text[]) \
     AS d(id, output, next_id, next_position, next_name, next_kind, next_queue, next_max_attempts, next_available_at, \
     token, next_traceparent)), \
     done AS (UPDATE tasks t SET state = 'succeeded', output = d.output, last_outcome = 'success', \
     last_error = NULL, lease_expires_at = NULL, lease_token = NULL, finished_at = $11 FROM d \
     WHERE t.id = d.id AND t.lease_token = d.token AND t.state = 'running' \
     RETURNING t.id, t.run_id, t.output, d.next_id, d.next_position, d.next_name, \
     d.next_kind, d.next_queue, d.next_max_attempts, d.next_available_at, d.next_traceparent), \
     next AS (INSERT INTO tasks (id, run_id, position, name, kind, queue, state, attempt, max_attempts, \
     available_at, created_at, traceparent) SELECT done.next_id, done.run_id, done.next_position, done.next_name, \
     done.next_kind, done.next_queue, 'available', 0, done.next_max_attempts, GREATEST(done.next_available_at, $11), \
     $11, done.next_traceparent FROM done JOIN workflow_runs r ON r.id = done.run_id WHERE done.next_id IS NOT NULL \
     AND r.status IN ('pending', 'running') RETURNING queue), \
     finished AS (UPDATE workflow_runs r SET status = 'succeeded', output = done.output, finished_at = $11 \
     FROM done WHERE r.id = done.run_id AND done.next_id IS NULL AND r.status IN ('pending', 'running')), \
     woken AS (SELECT pg_notify('compozy_tasks', q.queue) FROM (SELECT DISTINCT queue FROM next) q) \
     SELECT done.id, (SELECT count(*) FROM woken) AS woken FROM done";

/// A cancel's first step: its run's live task rows, locked in id order before the run's row.
/// A completion locks a task's row, then its run's; a cancel that took the run first deadlocked
/// with it, and could take a whole batch of other runs' successes down as the victim.
const LOCK_RUN_TASKS: &str =
    "SELECT id FROM tasks WHERE run_id = $1 AND state IN ('available', 'running') ORDER BY id FOR UPDATE";

/// Retention's batches (runs and sweeps) go one at a time across processes. Two pruners' batches
/// lock rows the other's deletes need: a run's retry (its `retry_of` is set to NULL when the run
/// goes) sits in another status's batch, and a sweep and a run batch delete the same delivery
/// rows in different orders; either deadlocked. A batch is short, so the wait is too.
const ONE_PRUNER: &str = "SELECT pg_advisory_xact_lock(hashtextextended('compozy.retention', 0))";

/// Leases a stopping process still holds, but not rows a completion batch is writing now (its
/// flusher can outlive the shutdown's wait): released in another order, the two deadlocked.
const RELEASE: &str = "UPDATE tasks SET state = 'available', attempt = attempt - 1, available_at = $2, \
     lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL WHERE id IN (SELECT id FROM tasks \
     WHERE lease_owner = $1 AND state = 'running' FOR UPDATE SKIP LOCKED) AND state = 'running'";

#[derive(Clone, Debug)]
pub struct PostgresDriver {
    store: Store,
}

impl PostgresDriver {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    async fn conn(&self) -> Result<PoolConnection<sqlx::Postgres>, WorkerError> {
        match self.store.acquire().await? {
            StoreConn::Postgres(c) => Ok(c),
            StoreConn::Sqlite(_) => Err(WorkerError::Config("the PostgreSQL driver was given a SQLite store".into())),
        }
    }

    async fn cancel_once(&self, p: &CancelRunParams<'_>) -> Result<bool, WorkerError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await?;
        sqlx::query(LOCK_RUN_TASKS).bind(p.run_id).execute(&mut *tx).await?;
        let n = sqlx::query(sql::CANCEL_RUN).bind(p.run_id).bind(p.now).execute(&mut *tx).await?.rows_affected();
        if n == 1 {
            sqlx::query(sql::CANCEL_TASKS).bind(p.run_id).bind(p.now).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }
}

impl Driver for PostgresDriver {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn store(&self) -> &Store {
        &self.store
    }

    fn insert_runs<'a>(&'a self, p: InsertRunsParams<'a>) -> DriverFuture<'a, ()> {
        boxed(async move {
            let mut queues: Vec<&str> = p.runs.iter().map(|r| r.first.queue.as_str()).collect();
            queues.sort_unstable();
            queues.dedup();
            let mut conn = self.conn().await?;
            let mut tx = conn.begin().await?;
            insert_runs(&mut tx, p.runs, p.now).await?;
            p.companions.insert(TxConn::Postgres(&mut tx)).await?;
            for queue in &queues {
                sqlx::query(NOTIFY).bind(*queue).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn insert_retry<'a>(&'a self, p: InsertRetryParams<'a>) -> DriverFuture<'a, bool> {
        boxed(async move {
            let mut conn = self.conn().await?;
            let run = p.run;
            let stored = async {
                let mut tx = conn.begin().await?;
                sqlx::query(sql::INSERT_RETRY_RUN)
                    .bind(&run.id)
                    .bind(&run.workflow_id)
                    .bind(&run.input)
                    .bind(p.now)
                    .bind(p.retry_of)
                    .execute(&mut *tx)
                    .await?;
                insert_first_tasks(&mut tx, std::slice::from_ref(run), p.now).await?;
                sqlx::query(NOTIFY).bind(&run.first.queue).execute(&mut *tx).await?;
                tx.commit().await
            }
            .await;
            unless_already_retried(stored)
        })
    }

    fn claim<'a>(&'a self, p: ClaimParams<'a>) -> DriverFuture<'a, Vec<Claimed>> {
        boxed(async move {
            let mut conn = self.conn().await?;
            let rows = sqlx::query(CLAIM)
                .bind(p.owner)
                .bind(p.lease_until)
                .bind(p.now)
                .bind(p.queue)
                .bind(p.limit)
                .fetch_all(&mut *conn)
                .await?;
            Ok(all(&rows, rows::claimed)?)
        })
    }

    fn extend_leases<'a>(&'a self, p: ExtendLeasesParams<'a>) -> DriverFuture<'a, HashSet<String>> {
        boxed(async move {
            let (ids, tokens): (Vec<&str>, Vec<&str>) =
                p.attempts.iter().map(|(id, token)| (id.as_str(), token.as_str())).unzip();
            let mut conn = self.conn().await?;
            let held: Vec<String> =
                sqlx::query_scalar(EXTEND_LEASES).bind(ids).bind(tokens).bind(p.until).fetch_all(&mut *conn).await?;
            Ok(held.into_iter().collect())
        })
    }

    fn complete_batch<'a>(&'a self, p: CompleteBatchParams<'a>) -> DriverFuture<'a, HashSet<String>> {
        boxed(async move {
            let batch = p.successes;
            let mut conn = self.conn().await?;
            let rows = sqlx::query(COMPLETE_BATCH)
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
                .bind(p.now)
                .bind(batch.iter().map(|s| s.next.as_ref().and_then(|n| n.traceparent.as_deref())).collect::<Vec<_>>())
                .fetch_all(&mut *conn)
                .await?;
            Ok(rows.iter().map(|r| r.try_get::<String, _>(0)).collect::<Result<_, _>>()?)
        })
    }

    fn fail<'a>(&'a self, p: FailParams<'a>) -> DriverFuture<'a, Failed> {
        boxed(async move {
            let (task, now) = (p.task, p.now);
            let retry = super::retry_at(&p);
            let (state, ended) = super::end_state(&p);
            let mut conn = self.conn().await?;
            let mut tx = conn.begin().await?;
            let q = sqlx::query(match retry {
                Some(_) => sql::RETRY_TASK,
                None => sql::END_TASK,
            })
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
            // Rows are locked as they are read, so none can be completed by its late owner
            // between the read and the writes below.
            let expired = format!("{} FOR UPDATE SKIP LOCKED", sql::EXPIRED);
            let mut conn = self.conn().await?;
            let mut tx = conn.begin().await?;
            let rows = sqlx::query(sqlx::AssertSqlSafe(expired)).bind(p.now).fetch_all(&mut *tx).await?;
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
            let mut conn = self.conn().await?;
            Ok(sqlx::query(RELEASE).bind(p.owner).bind(p.now).execute(&mut *conn).await?.rows_affected())
        })
    }

    /// Tried twice: a task the run's completion inserted after the first statement's snapshot is
    /// locked after the run, the order a completion or failure of that task takes the other way
    /// round, so PostgreSQL may pick the cancel as a deadlock's victim; the second try sees it.
    fn cancel_run<'a>(&'a self, p: CancelRunParams<'a>) -> DriverFuture<'a, bool> {
        boxed(async move {
            match self.cancel_once(&p).await {
                Err(WorkerError::Database(e)) if is_deadlock(&e) => self.cancel_once(&p).await,
                done => done,
            }
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

    /// The batch's ids are bound as a text array.
    fn run_deletes(&self, dependents: &[Dependent]) -> Vec<RunDelete> {
        sql::run_deletes("= ANY($1)", dependents)
    }

    fn prune_runs<'a>(&'a self, p: PruneRunsParams<'a>) -> DriverFuture<'a, PrunedRuns> {
        boxed(async move {
            // Runs another pruner holds are left to it.
            let expired = format!("{} FOR UPDATE SKIP LOCKED", sql::EXPIRED_RUNS);
            let mut conn = self.conn().await?;
            let mut tx = conn.begin().await?;
            sqlx::query(ONE_PRUNER).execute(&mut *tx).await?;
            let rows = sqlx::query(sqlx::AssertSqlSafe(expired))
                .bind(p.status)
                .bind(p.cutoff)
                .bind(p.limit)
                .fetch_all(&mut *tx)
                .await?;
            let ids = all(&rows, |r| r.try_get::<String, _>(0))?;
            let mut out = PrunedRuns { runs: ids.len(), deleted: Vec::with_capacity(p.deletes.len()) };
            if !ids.is_empty() {
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
            let mut conn = self.conn().await?;
            let mut tx = conn.begin().await?;
            sqlx::query(ONE_PRUNER).execute(&mut *tx).await?;
            let n = sqlx::query(p.statement).bind(p.cutoff).bind(p.limit).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok(n)
        })
    }

    /// PostgreSQL's own (auto)vacuum reuses and returns space.
    fn reclaim_pages<'a>(&'a self, _: ReclaimPagesParams) -> DriverFuture<'a, u64> {
        boxed(async { Ok(0) })
    }
}

/// The runs and their first tasks as two statements of arrays, whatever their number.
async fn insert_runs(tx: &mut sqlx::PgConnection, runs: &[NewRun], now: i64) -> Result<(), sqlx::Error> {
    let col = |f: fn(&NewRun) -> &str| runs.iter().map(f).collect::<Vec<&str>>();
    sqlx::query(INSERT_RUNS)
        .bind(col(|r| &r.id))
        .bind(col(|r| &r.workflow_id))
        .bind(col(|r| &r.input))
        .bind(now)
        .execute(&mut *tx)
        .await?;
    insert_first_tasks(tx, runs, now).await
}

/// The first task of each of `runs`, as one statement of arrays.
async fn insert_first_tasks(tx: &mut sqlx::PgConnection, runs: &[NewRun], now: i64) -> Result<(), sqlx::Error> {
    let col = |f: fn(&NewRun) -> &str| runs.iter().map(f).collect::<Vec<&str>>();
    let task_ids: Vec<String> = runs.iter().map(|_| uuid::Uuid::new_v4().to_string()).collect();
    sqlx::query(INSERT_TASKS)
        .bind(task_ids)
        .bind(col(|r| &r.id))
        .bind(runs.iter().map(|r| r.first.position).collect::<Vec<_>>())
        .bind(col(|r| &r.first.name))
        .bind(col(|r| r.first.kind.as_str()))
        .bind(col(|r| &r.first.queue))
        .bind(runs.iter().map(|r| r.first.max_attempts).collect::<Vec<_>>())
        .bind(runs.iter().map(|r| r.first.available_at).collect::<Vec<_>>())
        .bind(now)
        .bind(runs.iter().map(|r| r.first.traceparent.as_deref()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// One column of the batch's next tasks (NULL where a run has no next task).
/// SQLSTATE 40P01: PostgreSQL chose this transaction as a deadlock's victim and rolled it back.
fn is_deadlock(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "40P01")
}

fn next_column<T>(batch: &[Success], f: impl Fn(&NewTask) -> T) -> Vec<Option<T>> {
    batch.iter().map(|s| s.next.as_ref().map(&f)).collect()
}
