//! Retention: finished runs go with their tasks, attempts and dependent rows, per final status,
//! in batches, counted by kind; what is not finished (or not old enough) stays; on SQLite the
//! freed pages are given back.

mod common;

use std::time::{Duration, Instant};

use common::{Env, fast, render, spawn};
use compozy_store::StoreConn;
use compozy_worker::retention::{Dependent, KINDS, Pruner, RetentionConfig, Sweep};
use sqlx::Row;

const DELIVERY: Dependent = Dependent { table: "webhook_deliveries", kind: "delivery" };

async fn count(env: &Env, sql: &'static str) -> i64 {
    let mut conn = env.store.acquire().await.expect("connection");
    match &mut conn {
        StoreConn::Postgres(c) => sqlx::query(sql).fetch_one(&mut **c).await.expect("count").get(0),
        StoreConn::Sqlite(c) => sqlx::query(sql).fetch_one(&mut **c).await.expect("count").get(0),
    }
}

async fn exec(env: &Env, sql: &'static str, bind: &str) {
    let mut conn = env.store.acquire().await.expect("connection");
    match &mut conn {
        StoreConn::Postgres(c) => sqlx::query(sql).bind(bind).execute(&mut **c).await.map(drop),
        StoreConn::Sqlite(c) => sqlx::query(sql).bind(bind).execute(&mut **c).await.map(drop),
    }
    .expect("statement");
}

async fn wait_for(env: &Env, sql: &'static str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(env, sql).await < n {
        assert!(Instant::now() < deadline, "{}: `{sql}` never reached {n}", env.name());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const INSERT_DELIVERY: &str = "INSERT INTO webhook_deliveries (id, slug, source, event, workflow_id, run_id, \
     result, created_at) VALUES ($1 || '-d', 'hook', 'generic', 'e', 'noop', $1, 'accepted', 0)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_runs_are_deleted_with_their_rows_per_status_and_counted() {
    for env in Env::both().await {
        let (worker, _) = env.worker(fast());
        let (stop, handle) = spawn(&worker);
        let mut succeeded = Vec::new();
        for _ in 0..7 {
            succeeded.push(worker.start_run("noop", &serde_json::json!({})).await.expect("start"));
        }
        let failed = worker.start_run("failing", &serde_json::json!({})).await.expect("start");
        let cancelled = worker.start_run("long", &serde_json::json!({})).await.expect("start");
        let running = worker.start_run("long", &serde_json::json!({})).await.expect("start");
        wait_for(&env, "SELECT COUNT(*) FROM workflow_runs WHERE status IN ('succeeded', 'failed')", 8).await;
        wait_for(&env, "SELECT COUNT(*) FROM tasks WHERE state = 'running'", 2).await;
        assert!(worker.queue().cancel_run(&cancelled).await.expect("cancel"));
        for run in succeeded.iter().chain([&failed, &cancelled, &running]) {
            exec(&env, INSERT_DELIVERY, run).await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;

        // Cancelled runs are kept an hour; a batch of 3 makes the pass take several.
        let config = RetentionConfig {
            succeeded: Duration::from_millis(1),
            failed: Duration::from_millis(1),
            cancelled: Duration::from_secs(3600),
            batch_size: 3,
            ..RetentionConfig::default()
        };
        let registry = common::registry();
        let pruner = Pruner::new(worker.queue().clone(), config, vec![DELIVERY], vec![], &registry).expect("pruner");
        for kind in KINDS {
            assert!(render(&registry).contains(&format!("compozy_retention_deleted_total{{kind=\"{kind}\"}} 0")));
        }
        let pruned = pruner.prune().await.expect("prune");
        let name = env.name();
        assert_eq!(pruned.get("run"), Some(&8), "{name}: {pruned:?}");
        // Two tasks per noop run, one for the failed run, whose three attempts failed.
        assert_eq!(pruned.get("task"), Some(&15), "{name}: {pruned:?}");
        assert_eq!(pruned.get("attempt"), Some(&3), "{name}: {pruned:?}");
        assert_eq!(pruned.get("delivery"), Some(&8), "{name}: {pruned:?}");
        let text = render(&registry);
        assert!(text.contains("compozy_retention_deleted_total{kind=\"run\"} 8"), "{name}: {text}");
        assert!(text.contains("compozy_retention_deleted_total{kind=\"task\"} 15"), "{name}: {text}");

        assert_eq!(count(&env, "SELECT COUNT(*) FROM workflow_runs").await, 2, "{name}: cancelled and running stay");
        assert_eq!(count(&env, "SELECT COUNT(*) FROM webhook_deliveries").await, 2, "{name}");
        assert_eq!(count(&env, "SELECT COUNT(*) FROM tasks").await, 2, "{name}");
        assert_eq!(count(&env, "SELECT COUNT(*) FROM task_attempts").await, 0, "{name}");
        // A second pass finds nothing more.
        assert!(pruner.prune().await.expect("prune").values().all(|n| *n == 0), "{name}");
        let _ = stop.send(());
        handle.await.expect("worker stopped");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_keeps_forever_and_sweeps_run_in_batches() {
    for env in Env::both().await {
        let (worker, _) = env.worker(fast());
        let (stop, handle) = spawn(&worker);
        let run = worker.start_run("noop", &serde_json::json!({})).await.expect("start");
        wait_for(&env, "SELECT COUNT(*) FROM workflow_runs WHERE status = 'succeeded'", 1).await;
        let _ = stop.send(());
        handle.await.expect("worker stopped");
        const INSERT: &str = "INSERT INTO webhook_deliveries (id, slug, source, event, workflow_id, run_id, \
             result, created_at) SELECT $1, 'hook', 'generic', 'e', 'noop', id, 'accepted', 0 FROM workflow_runs";
        for i in 0..7 {
            exec(&env, INSERT, &format!("{run}-{i}")).await;
        }
        let sweep = Sweep {
            kind: "delivery",
            keep: Duration::from_millis(1),
            statement: "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries \
                        WHERE created_at < $1 ORDER BY created_at LIMIT $2)",
        };
        let config = RetentionConfig {
            succeeded: Duration::ZERO,
            failed: Duration::ZERO,
            cancelled: Duration::ZERO,
            batch_size: 2,
            ..RetentionConfig::default()
        };
        let pruner = Pruner::new(worker.queue().clone(), config, vec![DELIVERY], vec![sweep], &common::registry())
            .expect("pruner");
        let pruned = pruner.prune().await.expect("prune");
        assert_eq!(pruned.get("delivery"), Some(&7), "{}: {pruned:?}", env.name());
        assert_eq!(pruned.get("run"), None, "{}: {pruned:?}", env.name());
        assert_eq!(count(&env, "SELECT COUNT(*) FROM workflow_runs").await, 1, "{}", env.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_gives_pruned_pages_back() {
    let env = Env::sqlite().await;
    assert_eq!(count(&env, "PRAGMA auto_vacuum").await, 2, "a new database is INCREMENTAL");
    let (worker, _) = env.worker(fast());
    let input = serde_json::json!({ "pad": "x".repeat(2000) });
    for _ in 0..4 {
        let runs: Vec<_> = (0..500).map(|_| worker.new_run("noop", &input).expect("new run")).collect();
        worker.queue().insert_runs(&runs).await.expect("enqueue");
    }
    exec(&env, "UPDATE workflow_runs SET status = 'succeeded', finished_at = 0 WHERE $1 = $1", "").await;
    let before = count(&env, "PRAGMA page_count").await;
    let config = RetentionConfig { succeeded: Duration::from_millis(1), ..RetentionConfig::default() };
    let pruner = Pruner::new(worker.queue().clone(), config, vec![], vec![], &common::registry()).expect("pruner");
    assert_eq!(pruner.prune().await.expect("prune").get("run"), Some(&2000));
    let after = count(&env, "PRAGMA page_count").await;
    let free = count(&env, "PRAGMA freelist_count").await;
    assert!(after * 4 < before, "the file kept its pages: {before} -> {after}");
    assert!(free <= after / 10 + 1, "free pages beyond a tenth stayed: {free} of {after}");
}

/// Deleting a retried run leaves its retry standing, unlinked (`ON DELETE SET NULL`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_outlives_the_run_it_retries() {
    for env in Env::both().await {
        let (worker, _) = env.worker(fast());
        let original = worker.start_run("long", &serde_json::json!({})).await.expect("start");
        assert!(worker.queue().cancel_run(&original).await.expect("cancel"));
        let retry = worker.retry_run(&original).await.expect("retry");
        tokio::time::sleep(Duration::from_millis(5)).await;
        let config = RetentionConfig { cancelled: Duration::from_millis(1), ..RetentionConfig::default() };
        let pruner = Pruner::new(worker.queue().clone(), config, vec![], vec![], &common::registry()).expect("pruner");
        assert_eq!(pruner.prune().await.expect("prune").get("run"), Some(&1), "{}", env.name());
        let kept = worker.queue().get_run(&retry).await.expect("get").expect("the retry stays");
        assert_eq!((kept.status.as_str(), kept.retry_of), ("pending", None), "{}", env.name());
    }
}

/// Two processes pruning at once (a backlog after downtime): one takes the failed runs, the
/// other the cancelled ones, and each batch holds the retry of a run in the other batch. Deleting
/// a run sets its retry's `retry_of` to NULL, which locks that retry: without one pruner at a
/// time, each waits for the other's batch (`deadlock detected`, a batch rolled back).
/// A third connection holds the runs' task rows until both pruners are waiting, so both have
/// taken their batch before either deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pruners_at_once_do_not_deadlock_on_retries_across_their_batches() {
    let Some(env) = Env::postgres().await else { return };
    let mut holder = env.store.acquire().await.expect("connection");
    let StoreConn::Postgres(holder) = &mut holder else { unreachable!("a PostgreSQL env") };
    let seed = [
        "INSERT INTO workflow_runs (id, workflow_id, status, input, created_at, finished_at, retry_of) VALUES \
         ('x1', 'noop', 'failed', '{}', 1, 1, NULL), ('x2', 'noop', 'cancelled', '{}', 2, 2, NULL), \
         ('y1', 'noop', 'cancelled', '{}', 3, 3, 'x1'), ('y2', 'noop', 'failed', '{}', 4, 4, 'x2')",
        "INSERT INTO tasks (id, run_id, position, name, kind, queue, state, max_attempts, available_at, created_at) \
         SELECT id || '-t', id, 0, 'pause', 'wait', 'default', 'succeeded', 1, 0, 0 FROM workflow_runs",
    ];
    for sql in seed {
        sqlx::query(sql).execute(&mut **holder).await.expect("seed");
    }
    let (worker, _) = env.worker(fast());
    let pruner = |failed: u64, cancelled: u64| {
        let config = RetentionConfig {
            succeeded: Duration::ZERO,
            failed: Duration::from_millis(failed),
            cancelled: Duration::from_millis(cancelled),
            ..RetentionConfig::default()
        };
        Pruner::new(worker.queue().clone(), config, vec![], vec![], &common::registry()).expect("pruner")
    };
    let (failed_runs, cancelled_runs) = (pruner(1, 0), pruner(0, 1));

    sqlx::query("BEGIN").execute(&mut **holder).await.expect("begin");
    sqlx::query("SELECT id FROM tasks FOR UPDATE").execute(&mut **holder).await.expect("lock the tasks");
    let a = tokio::spawn(async move { failed_runs.prune().await });
    let b = tokio::spawn(async move { cancelled_runs.prune().await });
    let waiting = "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND wait_event_type = 'Lock'";
    wait_for(&env, waiting, 2).await;
    sqlx::query("COMMIT").execute(&mut **holder).await.expect("release the tasks");

    for (name, pruned) in [("failed", a.await), ("cancelled", b.await)] {
        let pruned = pruned.expect("joined").unwrap_or_else(|e| panic!("the {name} pruner: {e}"));
        assert_eq!(pruned.get("run"), Some(&2), "{name}: {pruned:?}");
    }
    assert_eq!(count(&env, "SELECT COUNT(*) FROM workflow_runs").await, 0);
}
