//! The enqueuer and the reader of `scripts/bench-worker.sh`: puts runs on the real queue through
//! this crate's API and reads the figures back from the task rows once workers drained them.
//!
//! ```text
//! queue_bench enqueue WORKFLOW N        # N runs in bulk transactions (workers should not run yet)
//! queue_bench trickle WORKFLOW N GAP_MS # N runs one at a time, GAP_MS apart (idle workers)
//! queue_bench wait WORKFLOW             # until every task of WORKFLOW's runs ended; prints figures
//! ```
//!
//! `DATABASE_URL` selects PostgreSQL (unset: SQLite in `DATA_DIR`); `PROJECT_DIR` holds the
//! project whose workflows are enqueued. The schema must exist (`compozy migrate`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use compozy_autoload::{AutoloadConfig, Autoloader};
use compozy_core::Secret;
use compozy_store::{Store, StoreConfig, StoreConn};
use compozy_telemetry::{Registry, RegistryOptions};
use compozy_worker::{NewRun, Queue};
use sqlx::Row;

const CHUNK: usize = 1000;

type Error = Box<dyn std::error::Error>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().ok_or_else(|| format!("missing argument {i}; see the file's docs"));
    let count = |i: usize| -> Result<usize, Error> { Ok(arg(i)?.parse()?) };
    let metrics = Registry::new(RegistryOptions::default());
    let store = connect(&metrics).await?;
    match arg(0)?.as_str() {
        "enqueue" => enqueue(&store, &metrics, &arg(1)?, count(2)?).await?,
        "trickle" => trickle(&store, &metrics, &arg(1)?, count(2)?, count(3)? as u64).await?,
        "wait" => report(&store, &arg(1)?).await?,
        other => return Err(format!("unknown command `{other}`").into()),
    }
    store.close().await;
    Ok(())
}

async fn connect(metrics: &Arc<Registry>) -> Result<Store, Error> {
    let url = std::env::var("DATABASE_URL").ok().map(Secret::new);
    let data = std::env::var("DATA_DIR").unwrap_or_else(|_| ".".into());
    let config = StoreConfig { url, ..StoreConfig::default() };
    Ok(Store::connect(&config, std::path::Path::new(&data), metrics).await?)
}

async fn project(metrics: &Arc<Registry>) -> Result<Autoloader, Error> {
    let dir = std::env::var("PROJECT_DIR").map_err(|_| "PROJECT_DIR is not set")?;
    let autoloader = Autoloader::new(AutoloadConfig::default(), std::path::Path::new(&dir), "bench", metrics)?;
    autoloader.load().await?;
    Ok(autoloader)
}

async fn enqueue(store: &Store, metrics: &Arc<Registry>, workflow: &str, n: usize) -> Result<(), Error> {
    let registry = project(metrics).await?.current();
    let wf = registry.workflow(workflow).ok_or("no such workflow")?;
    let queue = Queue::new(store.clone());
    let started = Instant::now();
    let mut left = n;
    while left > 0 {
        let take = left.min(CHUNK);
        let runs: Vec<NewRun> =
            (0..take).map(|_| NewRun::of(wf, &serde_json::json!({}), "default")).collect::<Result<_, _>>()?;
        queue.insert_runs(&runs).await?;
        left -= take;
    }
    println!("enqueued {n} runs in {:.2} s", started.elapsed().as_secs_f64());
    Ok(())
}

async fn trickle(store: &Store, metrics: &Arc<Registry>, workflow: &str, n: usize, gap_ms: u64) -> Result<(), Error> {
    let registry = project(metrics).await?.current();
    let wf = registry.workflow(workflow).ok_or("no such workflow")?;
    let queue = Queue::new(store.clone());
    for _ in 0..n {
        queue.start_run(wf, &serde_json::json!({}), "default").await?;
        tokio::time::sleep(Duration::from_millis(gap_ms)).await;
    }
    Ok(())
}

/// Polled every 100 ms while the workers drain: O(1) through the partial indexes, so the waiter
/// does not compete with the workers for the database (a count over the runs did, heavily). The
/// database holds one phase's runs at a time, so no workflow filter is needed.
const UNFINISHED: &str = "SELECT CAST(CASE WHEN EXISTS (SELECT 1 FROM tasks WHERE state = 'available') \
     OR EXISTS (SELECT 1 FROM tasks WHERE state = 'running') THEN 1 ELSE 0 END AS BIGINT)";
const ENDED: &str = "SELECT t.available_at, t.started_at, t.finished_at, \
     (SELECT COUNT(*) FROM task_attempts a WHERE a.task_id = t.id) + 1 AS attempts \
     FROM tasks t JOIN workflow_runs r ON r.id = t.run_id WHERE r.workflow_id = $1 AND t.state = 'succeeded'";

/// Waits for the drain, then prints tasks/s over first claim → last finish and schedule-to-start.
async fn report(store: &Store, workflow: &str) -> Result<(), Error> {
    while query_i64(store, UNFINISHED).await? > 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows = ended(store, workflow).await?;
    let first = rows.iter().map(|r| r.1).min().unwrap_or(0);
    let last = rows.iter().map(|r| r.2).max().unwrap_or(0);
    let mut lags: Vec<i64> = rows.iter().map(|r| r.1 - r.0).collect();
    lags.sort_unstable();
    let at = |q: f64| lags.get(((lags.len().max(1) - 1) as f64 * q).round() as usize).copied().unwrap_or(0);
    let window = (last - first).max(1) as f64 / 1000.0;
    let attempts: i64 = rows.iter().map(|r| r.3).sum();
    println!(
        "tasks={} attempts={} window_s={:.3} tasks_per_s={:.0} s2s_p50_ms={} s2s_p99_ms={}",
        rows.len(),
        attempts,
        window,
        rows.len() as f64 / window,
        at(0.5),
        at(0.99)
    );
    Ok(())
}

async fn query_i64(store: &Store, sql: &'static str) -> Result<i64, Error> {
    let mut conn = store.acquire().await?;
    Ok(match &mut conn {
        StoreConn::Postgres(c) => sqlx::query_scalar(sql).fetch_one(&mut **c).await?,
        StoreConn::Sqlite(c) => sqlx::query_scalar(sql).fetch_one(&mut **c).await?,
    })
}

/// `(available_at, started_at, finished_at, attempts)` of every succeeded task.
async fn ended(store: &Store, workflow: &str) -> Result<Vec<(i64, i64, i64, i64)>, Error> {
    let mut conn = store.acquire().await?;
    match &mut conn {
        StoreConn::Postgres(c) => {
            sqlx::query(ENDED).bind(workflow).fetch_all(&mut **c).await?.iter().map(tuple).collect()
        }
        StoreConn::Sqlite(c) => {
            sqlx::query(ENDED).bind(workflow).fetch_all(&mut **c).await?.iter().map(tuple).collect()
        }
    }
}

fn tuple<R: Row>(r: &R) -> Result<(i64, i64, i64, i64), Error>
where
    usize: sqlx::ColumnIndex<R>,
    i64: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
{
    Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?))
}
