//! The delivery log: one row per accepted delivery, inserted in its run's transaction.

use std::collections::HashMap;

use compozy_store::{Store, StoreConn};
use compozy_worker::driver::{StoredFuture, TxConn, TxFuture};
use compozy_worker::retention::{Dependent, Sweep};
use compozy_worker::{Companion, WorkerError};
use serde::Serialize;
use sqlx::Row;

const INSERT: &str = "INSERT INTO webhook_deliveries (id, slug, source, event, workflow_id, run_id, result, \
     dedupe_key, replay_of, payload, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'accepted', $7, $8, $9, $10)";

/// PostgreSQL: a group of deliveries (arrays `$1`–`$10`) in one statement.
const INSERT_MANY: &str = "INSERT INTO webhook_deliveries (id, slug, source, event, workflow_id, run_id, result, \
     dedupe_key, replay_of, payload, created_at) SELECT id, slug, source, event, workflow_id, run_id, 'accepted', \
     dedupe_key, replay_of, payload, created_at FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], \
     $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::int8[]) AS d(id, slug, source, event, \
     workflow_id, run_id, dedupe_key, replay_of, payload, created_at)";

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
    /// The run it started.
    pub run_id: String,
    pub dedupe_key: Option<String>,
    /// Not stored: a delivery with the same `dedupe_key` logged at or after this (Unix ms) makes
    /// this one a duplicate (its dedupe TTL). `None`: the log is not asked (docs/webhooks.md).
    pub dedupe_since: Option<i64>,
    pub replay_of: Option<String>,
    pub payload: Option<String>,
    pub created_at: i64,
}

/// Stored in the transaction of the runs they started (see [`compozy_worker::Starter`]); the
/// log is the durable record behind the dedupe cache, asked once per batch.
impl Companion for NewDelivery {
    fn stored_before<'c>(rows: &'c [Self], store: &'c Store) -> StoredFuture<'c> {
        Box::pin(async move {
            let keyed = rows.iter().filter_map(|d| Some((d.dedupe_key.as_deref()?, d.dedupe_since?)));
            let Some(since) = keyed.clone().map(|(_, since)| since).min() else { return Ok(Vec::new()) };
            let keys: Vec<&str> = keyed.map(|(key, _)| key).collect();
            let found: HashMap<String, i64> = logged_since(store, &keys, since).await?.into_iter().collect();
            let stored_at = |d: &NewDelivery| {
                Some(*found.get(d.dedupe_key.as_deref()?)?)
                    .filter(|at| d.dedupe_since.is_some_and(|since| *at >= since))
            };
            Ok(rows.iter().map(stored_at).collect())
        })
    }

    fn insert_all<'c>(rows: &'c [Self], conn: TxConn<'c>) -> TxFuture<'c> {
        Box::pin(async move {
            match conn {
                TxConn::Postgres(c) => {
                    let text = |f: fn(&NewDelivery) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
                    let opt =
                        |f: fn(&NewDelivery) -> &Option<String>| rows.iter().map(|d| f(d).clone()).collect::<Vec<_>>();
                    sqlx::query(INSERT_MANY)
                        .bind(text(|d| &d.id))
                        .bind(text(|d| &d.slug))
                        .bind(text(|d| &d.source))
                        .bind(text(|d| &d.event))
                        .bind(text(|d| &d.workflow_id))
                        .bind(text(|d| &d.run_id))
                        .bind(opt(|d| &d.dedupe_key))
                        .bind(opt(|d| &d.replay_of))
                        .bind(opt(|d| &d.payload))
                        .bind(rows.iter().map(|d| d.created_at).collect::<Vec<_>>())
                        .execute(c)
                        .await?;
                }
                TxConn::Sqlite(c) => {
                    for d in rows {
                        sqlx::query(INSERT)
                            .bind(&d.id)
                            .bind(&d.slug)
                            .bind(&d.source)
                            .bind(&d.event)
                            .bind(&d.workflow_id)
                            .bind(&d.run_id)
                            .bind(&d.dedupe_key)
                            .bind(&d.replay_of)
                            .bind(&d.payload)
                            .bind(d.created_at)
                            .execute(&mut *c)
                            .await?;
                    }
                }
            }
            Ok(())
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
    #[serde(serialize_with = "compozy_core::timestamp::serialize")]
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

/// The newest delivery logged at or after `since` (Unix ms) per key of `keys`.
async fn logged_since(store: &Store, keys: &[&str], since: i64) -> Result<Vec<(String, i64)>, WorkerError> {
    let mut conn = store.acquire().await?;
    let found = match &mut conn {
        StoreConn::Postgres(c) => {
            sqlx::query_as(LOGGED_SINCE_PG).persistent(false).bind(keys).bind(since).fetch_all(&mut **c).await
        }
        StoreConn::Sqlite(c) => {
            let keys = serde_json::to_string(keys).unwrap_or_default();
            sqlx::query_as(LOGGED_SINCE_SQLITE).persistent(false).bind(keys).bind(since).fetch_all(&mut **c).await
        }
    };
    Ok(found?)
}

/// Both served by `webhook_deliveries_dedupe_idx` and planned at every execution (not prepared):
/// a plan cached while the table was small scanned it whole ever after. On PostgreSQL one
/// newest-first lookup per key, so the index wins even without statistics (`= ANY` with none,
/// as on a fresh or never-analysed table, was estimated at 1 % of the rows per key and scanned
/// the table: accepted deliveries fell from 4,800/s to 3,500/s).
const LOGGED_SINCE_PG: &str = "SELECT k.key, d.created_at FROM unnest($1::text[]) AS k(key) CROSS JOIN LATERAL \
     (SELECT created_at FROM webhook_deliveries WHERE dedupe_key = k.key AND created_at >= $2 \
     ORDER BY created_at DESC LIMIT 1) d";
const LOGGED_SINCE_SQLITE: &str = "SELECT dedupe_key, MAX(created_at) FROM webhook_deliveries \
     WHERE dedupe_key IN (SELECT value FROM json_each($1)) AND created_at >= $2 GROUP BY dedupe_key";

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

/// Clears up to `$2` kept payloads of deliveries older than `$1`.
const PRUNE_PAYLOADS: &str = "UPDATE webhook_deliveries SET payload = NULL WHERE id IN (SELECT id FROM \
     webhook_deliveries WHERE payload IS NOT NULL AND created_at < $1 ORDER BY created_at LIMIT $2)";

/// Deletes up to `$2` deliveries older than `$1`.
const PRUNE_DELIVERIES: &str = "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries \
     WHERE created_at < $1 ORDER BY created_at LIMIT $2)";

/// What the engine's retention pruner does for webhooks: kept payloads cleared after
/// `webhooks.retention`, delivery rows deleted after `webhooks.delivery_retention`.
pub fn sweeps(config: &crate::WebhooksConfig) -> Vec<Sweep> {
    vec![
        Sweep { kind: "payload", keep: config.retention, statement: PRUNE_PAYLOADS },
        Sweep { kind: "delivery", keep: config.delivery_retention, statement: PRUNE_DELIVERIES },
    ]
}

/// Delivery rows go with the run they started (they would by `ON DELETE CASCADE`; deleted
/// explicitly, they are counted).
pub const RUN_DEPENDENT: Dependent = Dependent { table: "webhook_deliveries", kind: "delivery" };

fn store_error(e: sqlx::Error) -> compozy_store::StoreError {
    compozy_store::StoreError::Database(e)
}
