//! The worker's memory stays flat however many runs it executes: after a warm-up, thousands more
//! runs leave Rust's live heap where it was (SQLite's own allocations are not counted; the soak,
//! scripts/soak.sh, watches the whole process).

mod common;

use std::time::{Duration, Instant};

use common::{Env, fast, spawn};
use compozy_store::StoreConn;
use compozy_testkit::{CountingAllocator, live_bytes};
use compozy_worker::{Worker, WorkerConfig};
use sqlx::Row;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const WARM_UP: usize = 2_000;
const MEASURED: usize = 8_000;
/// Still queued when the second reading is taken: the leak this guards against lived only
/// while a backlog kept every claim full, and was given back once the queue ran dry.
const TAIL: usize = 2_000;
/// Live heap growth allowed over `MEASURED` runs: connections' statement caches and buffers
/// settling (≈ 450 KB on PostgreSQL, nothing on SQLite). Keeping the ≈ 155 B per task of the
/// worker's unjoined tasks would be 2.5 MB.
const SLACK: i64 = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_heap_stays_flat_over_thousands_of_runs() {
    for env in Env::both().await {
        let config =
            WorkerConfig { max_concurrent_activities: 16, max_concurrent_workflows: 16, claim_batch: 16, ..fast() };
        let (worker, _metrics) = env.worker(config);
        let started = Instant::now();
        // A backlog first, so that every claim is a full batch while the readings are taken.
        enqueue(&worker, WARM_UP + MEASURED + TAIL).await;
        let (stop, handle) = spawn(&worker);
        let before = live_heap_after(&env, WARM_UP).await;
        let after = live_heap_after(&env, WARM_UP + MEASURED).await;
        let _ = stop.send(());
        handle.await.expect("worker stopped");
        let grown = after - before;
        eprintln!(
            "{}: live heap {before} -> {after} B over {MEASURED} runs ({} B per run), {:?} in all",
            env.name(),
            grown / MEASURED as i64,
            started.elapsed()
        );
        assert!(grown < SLACK, "{}: the live heap grew {grown} B over {MEASURED} runs", env.name());
    }
}

/// Enqueues `n` two-task runs in bulk.
async fn enqueue(worker: &Worker, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let runs: Vec<_> =
            chunk.iter().map(|_| worker.new_run("noop", &serde_json::json!({})).expect("new run")).collect();
        worker.queue().insert_runs(&runs).await.expect("enqueue");
    }
}

/// The live heap once `done` runs have succeeded (the worker still busy with the rest).
async fn live_heap_after(env: &Env, done: usize) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(300);
    while succeeded(env).await < done {
        assert!(Instant::now() < deadline, "{}: runs did not finish", env.name());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    live_bytes()
}
async fn succeeded(env: &Env) -> usize {
    const SQL: &str = "SELECT COUNT(*) FROM workflow_runs WHERE status = 'succeeded'";
    let mut conn = env.store.acquire().await.expect("connection");
    let n: i64 = match &mut conn {
        StoreConn::Postgres(c) => sqlx::query(SQL).fetch_one(&mut **c).await.expect("count").get(0),
        StoreConn::Sqlite(c) => sqlx::query(SQL).fetch_one(&mut **c).await.expect("count").get(0),
    };
    usize::try_from(n).unwrap_or(0)
}
