//! The delivery log: one row per accepted delivery, inserted in the run's transaction.

use compozy_store::Store;
use compozy_worker::runs::{TxConn, TxFuture};
use serde::Serialize;
use sqlx::Row;

const INSERT: &str = "INSERT INTO webhook_deliveries (id, slug, source, event, workflow_id, run_id, result, \
     dedupe_key, replay_of, payload, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'accepted', $7, $8, $9, $10)";

const COLUMNS: &str = "id, slug, source, event, workflow_id, run_id, result, dedupe_key, replay_of, created_at, \
     payload IS NOT NULL AS has_payload";

/// A delivery to store with its run.
#[derive(Clone, Debug)]
pub struct NewDelivery {
    pub id: String,
    pub slug: String,
    pub source: String,
    pub event: String,
    pub workflow_id: String,
    pub dedupe_key: Option<String>,
    pub replay_of: Option<String>,
    pub payload: Option<String>,
    pub created_at: i64,
}

impl NewDelivery {
    /// The statement [`compozy_worker::Worker::start_run_with`] runs inside its transaction.
    /// It owns the record, so the future borrows only the transaction and the run id.
    pub fn insert<'c>(self, conn: TxConn<'c>, run_id: &'c str) -> TxFuture<'c> {
        Box::pin(async move {
            macro_rules! bound {
                () => {
                    sqlx::query(INSERT)
                        .bind(&self.id)
                        .bind(&self.slug)
                        .bind(&self.source)
                        .bind(&self.event)
                        .bind(&self.workflow_id)
                        .bind(run_id)
                        .bind(&self.dedupe_key)
                        .bind(&self.replay_of)
                        .bind(&self.payload)
                        .bind(self.created_at)
                };
            }
            match conn {
                TxConn::Postgres(c) => bound!().execute(c).await.map(|_| ()),
                TxConn::Sqlite(c) => bound!().execute(c).await.map(|_| ()),
            }
        })
    }
}

/// One delivery as the log shows it (the payload itself only through replay).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Delivery {
    pub id: String,
    pub slug: String,
    pub source: String,
    pub event: String,
    pub workflow_id: String,
    pub run_id: String,
    pub result: String,
    pub replay_of: Option<String>,
    pub payload_kept: bool,
    pub created_at: i64,
}

/// Filters and keyset cursor of a listing.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub slug: Option<String>,
    pub result: Option<String>,
    /// Unix ms: deliveries at or after.
    pub since: Option<i64>,
    /// `(created_at, id)` of the last delivery of the previous page.
    pub before: Option<(i64, String)>,
    pub limit: u32,
}

fn decode<R: Row>(r: &R) -> Result<Delivery, sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
    i64: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
    bool: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Delivery {
        id: r.try_get("id")?,
        slug: r.try_get("slug")?,
        source: r.try_get("source")?,
        event: r.try_get("event")?,
        workflow_id: r.try_get("workflow_id")?,
        run_id: r.try_get("run_id")?,
        result: r.try_get("result")?,
        replay_of: r.try_get("replay_of")?,
        payload_kept: r.try_get("has_payload")?,
        created_at: r.try_get("created_at")?,
    })
}

fn list_sql() -> String {
    format!(
        "SELECT {COLUMNS} FROM webhook_deliveries WHERE ($1 IS NULL OR slug = $1) AND ($2 IS NULL OR result = $2) \
         AND created_at >= $3 AND (created_at < $4 OR (created_at = $4 AND id < $5)) \
         ORDER BY created_at DESC, id DESC LIMIT $6"
    )
}

/// Newest first.
pub async fn list(store: &Store, f: &Filter) -> Result<Vec<Delivery>, compozy_store::StoreError> {
    let sql = list_sql();
    let (before_at, before_id) = f.before.clone().unwrap_or((i64::MAX, String::new()));
    // Without a cursor every id qualifies at created_at = i64::MAX (none exist), so any id works.
    let limit = i64::from(f.limit.clamp(1, 500));
    let since = f.since.unwrap_or(0);
    let mut conn = store.acquire().await?;
    let rows = compozy_store::on_conn!(&mut conn, c => {
        let q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
        let rows = q
            .bind(&f.slug)
            .bind(&f.result)
            .bind(since)
            .bind(before_at)
            .bind(&before_id)
            .bind(limit)
            .fetch_all(&mut **c)
            .await;
        rows.and_then(|rs| rs.iter().map(decode).collect())
    });
    rows.map_err(store_error)
}

/// A stored delivery and its kept payload, for replay.
pub async fn get_with_payload(
    store: &Store,
    id: &str,
) -> Result<Option<(Delivery, Option<String>)>, compozy_store::StoreError> {
    let sql = format!("SELECT {COLUMNS}, payload FROM webhook_deliveries WHERE id = $1");
    let mut conn = store.acquire().await?;
    let row = compozy_store::on_conn!(&mut conn, c => sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(id)
        .fetch_optional(&mut **c)
        .await
        .and_then(|r| r.map(|r| Ok((decode(&r)?, r.try_get("payload")?))).transpose()));
    row.map_err(store_error)
}

/// Drops payloads older than `cutoff` (Unix ms); returns how many.
pub async fn prune_payloads(store: &Store, cutoff: i64) -> Result<u64, compozy_store::StoreError> {
    const SQL: &str = "UPDATE webhook_deliveries SET payload = NULL WHERE payload IS NOT NULL AND created_at < $1";
    let mut conn = store.acquire().await?;
    let done = compozy_store::on_conn!(&mut conn, c => {
        sqlx::query(SQL).bind(cutoff).execute(&mut **c).await.map(|r| r.rows_affected())
    });
    done.map_err(store_error)
}

fn store_error(e: sqlx::Error) -> compozy_store::StoreError {
    compozy_store::StoreError::Database(e)
}
