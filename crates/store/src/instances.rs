//! The `instances` table: engine processes sharing the store and their heartbeats.
//!
//! The same SQL runs on both backends (sqlx accepts `$n` placeholders on SQLite too). Times are
//! Unix milliseconds from the writing process's clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::Row;

use crate::error::StoreError;
use crate::store::Store;

/// One engine process as last reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    /// What the process runs (`server`, `worker`, `all`, ...).
    pub role: String,
    pub started_at: SystemTime,
    pub heartbeat_at: SystemTime,
}

const UPSERT: &str = "INSERT INTO instances (id, role, started_at, heartbeat_at) VALUES ($1, $2, $3, $3) \
     ON CONFLICT (id) DO UPDATE SET role = excluded.role, started_at = excluded.started_at, \
     heartbeat_at = excluded.heartbeat_at";
const HEARTBEAT: &str = "UPDATE instances SET heartbeat_at = $2 WHERE id = $1";
const LIST: &str = "SELECT id, role, started_at, heartbeat_at FROM instances WHERE heartbeat_at >= $1 ORDER BY id";
const REMOVE: &str = "DELETE FROM instances WHERE id = $1";
const PRUNE: &str = "DELETE FROM instances WHERE heartbeat_at < $1";

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn decode<R: Row>(row: &R) -> Result<Instance, sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Instance {
        id: row.try_get("id")?,
        role: row.try_get("role")?,
        started_at: from_millis(row.try_get("started_at")?),
        heartbeat_at: from_millis(row.try_get("heartbeat_at")?),
    })
}

impl Store {
    /// Records (or re-records, after a restart) the process `id` as started now.
    pub async fn register_instance(&self, id: &str, role: &str) -> Result<Instance, StoreError> {
        let now = SystemTime::now();
        let at = millis(now);
        self.bounded(async {
            let mut conn = self.acquire().await?;
            on_conn!(&mut conn, c => sqlx::query(UPSERT).bind(id).bind(role).bind(at).execute(&mut **c).await.map(|_| ()))
                .map_err(|e| self.map_err(e))
        })
        .await?;
        let t = from_millis(at);
        Ok(Instance { id: id.into(), role: role.into(), started_at: t, heartbeat_at: t })
    }

    /// Marks `id` alive now; `false` when no such instance is registered.
    pub async fn heartbeat(&self, id: &str) -> Result<bool, StoreError> {
        let at = millis(SystemTime::now());
        self.bounded(async {
            let mut conn = self.acquire().await?;
            on_conn!(&mut conn, c => sqlx::query(HEARTBEAT).bind(id).bind(at).execute(&mut **c).await
                .map(|r| r.rows_affected() == 1))
            .map_err(|e| self.map_err(e))
        })
        .await
    }

    /// Instances whose last heartbeat is at most `stale_after` old, ordered by id.
    pub async fn list_instances(&self, stale_after: Duration) -> Result<Vec<Instance>, StoreError> {
        let since = millis(SystemTime::now().checked_sub(stale_after).unwrap_or(UNIX_EPOCH));
        self.bounded(async {
            let mut conn = self.acquire().await?;
            on_conn!(&mut conn, c => {
                let rows = sqlx::query(LIST).bind(since).fetch_all(&mut **c).await;
                rows.and_then(|rows| rows.iter().map(decode).collect::<Result<Vec<_>, _>>())
            })
            .map_err(|e| self.map_err(e))
        })
        .await
    }

    /// Forgets every instance silent for longer than `older_than` (processes that died without
    /// deregistering); returns how many. A live one that was only cut off registers again at its
    /// next heartbeat.
    pub async fn prune_instances(&self, older_than: Duration) -> Result<u64, StoreError> {
        let before = millis(SystemTime::now().checked_sub(older_than).unwrap_or(UNIX_EPOCH));
        self.bounded(async {
            let mut conn = self.acquire().await?;
            on_conn!(&mut conn, c => sqlx::query(PRUNE).bind(before).execute(&mut **c).await.map(|r| r.rows_affected()))
                .map_err(|e| self.map_err(e))
        })
        .await
    }

    /// Forgets `id` (at shutdown); `false` when it was not registered.
    pub async fn remove_instance(&self, id: &str) -> Result<bool, StoreError> {
        self.bounded(async {
            let mut conn = self.acquire().await?;
            on_conn!(&mut conn, c => sqlx::query(REMOVE).bind(id).execute(&mut **c).await
                .map(|r| r.rows_affected() == 1))
            .map_err(|e| self.map_err(e))
        })
        .await
    }
}
