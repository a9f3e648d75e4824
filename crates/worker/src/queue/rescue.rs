//! Expired leases: the worker that held them died (or lost the store for longer than a lease).
//! The task did not fail, so a rescue re-queues it at once without consuming its attempts; a
//! task whose leases keep expiring (it kills its workers) is dead-lettered past `max_rescues`.
//! Each rescue is an attempt of the history, with outcome `rescued`.

use compozy_store::StoreConn;
use sqlx::{Connection, Row};

use super::complete::{Ended, insert_attempt};
use super::{Queue, in_tx, sql};
use crate::clock::now_ms;
use crate::error::WorkerError;

const LEASE_EXPIRED: &str = "lease expired: its worker died or stalled";

/// What one rescue did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rescued {
    /// Queues of the tasks re-queued.
    pub requeued: Vec<String>,
    /// `(run, queue)` of the tasks dead-lettered because their leases expired too often.
    pub dead: Vec<(String, String)>,
}

struct Expired {
    id: String,
    run_id: String,
    name: String,
    queue: String,
    attempt: i32,
    rescues: i32,
    owner: Option<String>,
    started_at: Option<i64>,
}

fn decode<R: Row>(r: &R) -> Result<Expired, sqlx::Error>
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

impl Queue {
    /// Re-queues tasks whose lease expired, or dead-letters those already rescued `max_rescues`
    /// times (failing their runs), recording the lost attempt of each.
    pub async fn rescue(&self, max_rescues: u32) -> Result<Rescued, WorkerError> {
        let max_rescues = i32::try_from(max_rescues).unwrap_or(i32::MAX);
        let now = now_ms();
        // Rows are locked as they are read (PostgreSQL), so none can be completed by its late
        // owner between the read and the writes below; SQLite has its single writer.
        let expired =
            if self.postgres { format!("{} FOR UPDATE SKIP LOCKED", sql::EXPIRED) } else { sql::EXPIRED.into() };
        let _writer = self.writer().await;
        let mut conn = self.store.acquire().await?;
        let out = in_tx!(&mut conn, tx => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(expired)).bind(now).fetch_all(&mut *tx).await?;
            let mut out = Rescued::default();
            for row in &rows {
                let t = decode(row)?;
                let last = t.rescues >= max_rescues;
                let (update, reason) = if last {
                    (sql::RESCUE_DEAD_ONE, format!("{LEASE_EXPIRED}; rescued {} times already (worker.max_rescues): \
                        the task keeps killing its workers", t.rescues))
                } else {
                    (sql::RESCUE_ONE, LEASE_EXPIRED.to_string())
                };
                sqlx::query(update).bind(&t.id).bind(now).bind(&reason).execute(&mut *tx).await?;
                let ended = Ended { task_id: &t.id, attempt: t.attempt, worker: t.owner.as_deref(),
                    started_at: t.started_at.unwrap_or(now), finished_at: now, outcome: "rescued",
                    error: Some(&reason), output: None };
                insert_attempt!(tx, ended);
                if last {
                    sqlx::query(sql::FAIL_RUN).bind(&t.run_id).bind(format!("task `{}`: {reason}", t.name))
                        .bind(now).execute(&mut *tx).await?;
                    out.dead.push((t.run_id, t.queue));
                } else {
                    out.requeued.push(t.queue);
                }
            }
            out
        });
        Ok(out)
    }
}
