//! No-op (`wait 0s`) tasks through the real queue: enqueue rate, drain rate (tasks/s) and
//! schedule-to-start p50/p99 (claim time minus ready time, read back from the task rows).
//!
//! `cargo bench -p compozy-worker --bench queue` (PostgreSQL at 127.0.0.1:5432 trust auth,
//! skipped when unreachable; `BENCH_TASKS` sets the count, default 5000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use compozy_autoload::{AutoloadConfig, Autoloader};
use compozy_core::Secret;
use compozy_store::{Store, StoreConfig};
use compozy_telemetry::{Registry, RegistryOptions};
use compozy_worker::{Worker, WorkerConfig};
use sqlx::{Connection, PgConnection, Row};

const ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let n: usize = std::env::var("BENCH_TASKS").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        bench("sqlite", None, dir.path(), n).await;
        match PgConnection::connect(ADMIN).await {
            Ok(mut admin) => {
                let db = format!("compozy_bench_{}", uuid_like());
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                    .execute(&mut admin)
                    .await
                    .expect("db");
                bench("postgres", Some(format!("postgres://postgres@127.0.0.1:5432/{db}")), dir.path(), n).await;
                let drop = format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)");
                let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut admin).await;
            }
            Err(e) => eprintln!("postgres skipped: {e}"),
        }
    });
}

fn uuid_like() -> String {
    format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()))
}

async fn bench(name: &str, url: Option<String>, data: &std::path::Path, n: usize) {
    let metrics = Registry::new(RegistryOptions::default());
    let config = StoreConfig { url: url.map(Secret::new), ..StoreConfig::default() };
    let store = Store::connect(&config, data, &metrics).await.expect("connect");
    store.migrate().await.expect("migrate");
    let project = tempfile::tempdir().expect("project");
    let wf = "resource: workflow\nid: nop\ntasks:\n  - {id: a, type: wait, duration: 0s}\n";
    std::fs::write(project.path().join("nop.yaml"), wf).expect("write");
    let autoloader = Autoloader::new(AutoloadConfig::default(), project.path(), "bench", &metrics).expect("autoload");
    autoloader.load().await.expect("load");
    let config = WorkerConfig {
        max_concurrent_activities: 32,
        max_concurrent_workflows: 32,
        claim_batch: 32,
        poll_interval: Duration::from_millis(20),
        ..WorkerConfig::default()
    };
    let worker = Worker::new(config, store.clone(), Arc::new(autoloader), &metrics).expect("worker");
    worker.pause();
    let (tx, handle) = spawn_run(&worker);
    let start = Instant::now();
    for _ in 0..n {
        worker.start_run("nop", &serde_json::json!({})).await.expect("start");
    }
    let enqueue = start.elapsed();
    let start = Instant::now();
    worker.resume();
    while pending(&store).await > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drain = start.elapsed();
    let _ = tx.send(());
    let _ = handle.await;
    // Live schedule-to-start: a second batch enqueued one at a time while the worker runs.
    let (p50, p99) = live_latency(&store, &worker, n.min(1000)).await;
    println!(
        "{name}: {n} tasks; enqueue {:.0} runs/s; drain {:.0} tasks/s; schedule-to-start (live, one at a time) p50 {:.1} ms p99 {:.1} ms",
        n as f64 / enqueue.as_secs_f64(),
        n as f64 / drain.as_secs_f64(),
        p50,
        p99
    );
    store.close().await;
}

async fn live_latency(store: &Store, worker: &Worker, n: usize) -> (f64, f64) {
    let (tx, handle) = spawn_run(worker);
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(worker.start_run("nop", &serde_json::json!({})).await.expect("start"));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    while pending(store).await > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = tx.send(());
    let _ = handle.await;
    let mut lags = Vec::with_capacity(n);
    for id in &ids {
        for t in worker.queue().run_tasks(id).await.expect("tasks") {
            lags.push((t.started_at.unwrap_or(t.available_at) - t.available_at) as f64);
        }
    }
    lags.sort_by(f64::total_cmp);
    let at = |q: f64| lags.get(((lags.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(0.0);
    (at(0.5), at(0.99))
}

async fn pending(store: &Store) -> i64 {
    let mut conn = store.acquire().await.expect("conn");
    let q = "SELECT COUNT(*) AS n FROM tasks WHERE state IN ('available', 'running')";
    if let Some(c) = conn.as_postgres() {
        return sqlx::query(q).fetch_one(c).await.expect("count").get("n");
    }
    let c = conn.as_sqlite().expect("sqlite");
    sqlx::query(q).fetch_one(c).await.expect("count").get("n")
}

/// Runs `worker` in a task until the sender is used or dropped.
fn spawn_run(
    worker: &Worker,
) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<Result<(), compozy_worker::WorkerError>>) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let w = worker.clone();
    let handle = tokio::spawn(async move {
        w.run(async {
            let _ = rx.await;
        })
        .await
    });
    (tx, handle)
}
