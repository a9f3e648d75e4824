//! Expired leases: the worker that held them died (or lost the store for longer than a lease).
//! Each counts as a failed attempt: re-queued while attempts remain, dead-lettered otherwise.

use compozy_store::StoreConn;
use sqlx::{Connection, Row};

use super::complete::{Ended, insert_attempt};
use super::{Queue, in_tx, sql};
use crate::clock::now_ms;
use crate::error::WorkerError;

const LEASE_EXPIRED: &str = "lease expired";

/// What one rescue did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rescued {
    /// Kinds of the tasks re-queued (each a retry).
    pub requeued: Vec<String>,
    /// `(run, queue)` of the tasks dead-lettered because they had no attempts left.
    pub dead: Vec<(String, String)>,
}

struct Expired {
    id: String,
    run_id: String,
    kind: String,
    queue: String,
    attempt: i32,
    max_attempts: i32,
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
        kind: r.try_get("kind")?,
        queue: r.try_get("queue")?,
        attempt: r.try_get("attempt")?,
        max_attempts: r.try_get("max_attempts")?,
        owner: r.try_get("lease_owner")?,
        started_at: r.try_get("started_at")?,
    })
}

impl Queue {
    /// Re-queues tasks whose lease expired, or dead-letters those with no attempts left (failing
    /// their runs), recording the lost attempt of each.
    pub async fn rescue(&self) -> Result<Rescued, WorkerError> {
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
                let last = t.attempt >= t.max_attempts;
                let update = if last { sql::RESCUE_DEAD_ONE } else { sql::RESCUE_ONE };
                sqlx::query(update).bind(&t.id).bind(now).execute(&mut *tx).await?;
                let ended = Ended { task_id: &t.id, attempt: t.attempt, worker: t.owner.as_deref(),
                    started_at: t.started_at.unwrap_or(now), finished_at: now, outcome: "error",
                    error: Some(LEASE_EXPIRED), output: None };
                insert_attempt!(tx, ended);
                if last {
                    sqlx::query(sql::FAIL_RUN).bind(&t.run_id).bind("lease expired on the last attempt").bind(now)
                        .execute(&mut *tx).await?;
                    out.dead.push((t.run_id, t.queue));
                } else {
                    out.requeued.push(t.kind);
                }
            }
            out
        });
        Ok(out)
    }
}
