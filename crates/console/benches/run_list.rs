//! The console's run list with a large store: 100,000 runs inserted through the queue's bulk
//! insert, then `GET /console/runs` pages rendered through the console's router with a signed-in
//! session (session lookup, keyset query, HTML), timed one request at a time. Prints the median
//! and p95 per page kind.
//!
//! `cargo bench -p compozy-console --bench run_list` (SQLite always; PostgreSQL at
//! 127.0.0.1:5432 trust auth when reachable). `BENCH_RUNS` sets the count (default 100000),
//! `BENCH_REQUESTS` the requests per page kind (default 200).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use compozy_auth::{AuthConfig, AuthMetrics, Authenticator, ClientAddrs, Guard, Role, Sessions};
use compozy_autoload::{AutoloadConfig, Autoloader};
use compozy_console::{Access, Console, ConsoleConfig, Deps};
use compozy_core::{Readiness, Secret};
use compozy_store::{Cache, CacheConfig, Store, StoreConfig};
use compozy_telemetry::{Registry, RegistryOptions};
use compozy_worker::queue::{NewRun, NewTask};
use compozy_worker::{RunFilter, TaskKind, Worker, WorkerConfig};
use http::Request;
use sqlx::{Connection, PgConnection};
use tower::ServiceExt;

const ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";
const WORKFLOWS: [&str; 5] = ["ingest", "deploy", "notify", "report", "sync"];
const STATUSES: [&str; 3] = ["succeeded", "failed", "cancelled"];

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let runs: usize = std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let requests: usize = std::env::var("BENCH_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        bench("sqlite", None, dir.path(), runs, requests).await;
        match PgConnection::connect(ADMIN).await {
            Ok(mut admin) => {
                let db = format!("compozy_bench_console_{}", std::process::id());
                let create = format!("CREATE DATABASE {db}");
                sqlx::query(sqlx::AssertSqlSafe(create)).execute(&mut admin).await.expect("db");
                let url = format!("postgres://postgres@127.0.0.1:5432/{db}");
                bench("postgres", Some(url), dir.path(), runs, requests).await;
                let drop = format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)");
                let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut admin).await;
            }
            Err(e) => eprintln!("postgres skipped: {e}"),
        }
    });
}

async fn bench(name: &str, url: Option<String>, data: &std::path::Path, runs: usize, requests: usize) {
    let registry = Registry::new(RegistryOptions::default());
    let config = StoreConfig { url: url.map(Secret::new), ..StoreConfig::default() };
    let store = Store::connect(&config, data, &registry).await.expect("connect");
    store.migrate().await.expect("migrate");
    let project = tempfile::tempdir().expect("project");
    let autoloader = Autoloader::new(AutoloadConfig::default(), project.path(), "bench", &registry).expect("autoload");
    // The worker is built, never run: the runs stay as inserted.
    let worker =
        Worker::new(WorkerConfig::default(), store.clone(), Arc::new(autoloader.clone()), &registry).expect("worker");
    let started = Instant::now();
    insert(&worker, runs).await;
    let inserted = started.elapsed();

    let cache = Cache::connect(&CacheConfig::default(), &registry).await.expect("cache");
    let webhooks =
        compozy_webhooks::Webhooks::new(Default::default(), worker.clone(), cache, &registry).expect("hooks");
    let auth = Arc::new(
        Authenticator::new(
            &AuthConfig::default(),
            &Secret::new("b".repeat(32)),
            store.clone(),
            AuthMetrics::new(&registry),
        )
        .expect("auth"),
    );
    let (_, key) = compozy_auth::create_user_with_key(&auth, "bench@example.com", Role::Admin).await.expect("user");
    let user = auth.authenticate(&key).await.expect("key");
    let sessions = Sessions::new(auth.clone(), Duration::from_secs(3600));
    let cookie = format!("compozy_console={}", sessions.open(&user).await.expect("session").cookie);
    // No limiter: the bench key would exceed any per-principal limit; the in-memory limiter's
    // cost is measured in crates/auth/benches.
    let guard = Guard { auth, limiter: None, group: "console", role: None, clients: Arc::new(ClientAddrs::new(&[])) };
    let console = Console::new(Deps {
        config: ConsoleConfig::default(),
        registry: registry.clone(),
        readiness: Readiness::default(),
        worker: worker.clone(),
        webhooks,
        autoloader,
        access: Some(Access { guard, sessions }),
        version: "bench",
        commit: "bench",
    })
    .expect("console");
    let router = console.routes().into_iter().fold(Router::new(), |r, (path, route)| r.route(&path, route));

    // A cursor 50,000 runs deep (or half-way), as the "older runs" link would carry it.
    let deep = {
        let mut filter = RunFilter { limit: 500, ..RunFilter::default() };
        for _ in 0..(runs / 2 / 500).max(1) {
            let page = worker.queue().list_runs(&filter).await.expect("page");
            let last = page.last().expect("runs");
            filter.before = Some((last.created_at, last.id.clone()));
        }
        let (at, id) = filter.before.expect("cursor");
        compozy_core::cursor::encode(at, &id)
    };
    println!("{name}: {runs} runs inserted in {:.1} s", inserted.as_secs_f64());
    let pages = [
        ("first page", "/console/runs".to_string()),
        ("50,000 deep", format!("/console/runs?cursor={deep}")),
        ("status=failed", "/console/runs?status=failed".to_string()),
        ("workflow=deploy", "/console/runs?workflow=deploy".to_string()),
        // The worst case: a filter nothing matches walks the whole index to prove it.
        ("no match", "/console/runs?workflow=none".to_string()),
        ("run detail", format!("/console/runs/run-{:07}", runs / 2)),
    ];
    for (label, path) in pages {
        let mut times = Vec::with_capacity(requests);
        for i in 0..requests + 10 {
            let request = Request::get(&path).header("cookie", &cookie).body(Body::empty()).expect("request");
            let t = Instant::now();
            let response = router.clone().oneshot(request).await.expect("infallible");
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
            let elapsed = t.elapsed();
            assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
            // A list page shows a full page of runs (none for the filter that matches nothing).
            let rows = String::from_utf8_lossy(&body).matches("<tr data-run=").count();
            let expected = match label {
                "no match" => 0,
                "run detail" => rows,
                _ => 50,
            };
            assert_eq!(rows, expected, "{path}");
            if i >= 10 {
                times.push(elapsed);
            }
        }
        times.sort();
        let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        println!(
            "{name}: {label:<16} median {:>6.2} ms  p95 {:>6.2} ms  ({requests} requests)",
            at(0.5).as_secs_f64() * 1000.0,
            at(0.95).as_secs_f64() * 1000.0
        );
    }
    store.close().await;
}

/// `runs` runs over five workflows, inserted 1,000 per transaction, then given a mix of
/// statuses (the insert makes them pending) so the status filter has something to find.
async fn insert(worker: &Worker, runs: usize) {
    let queue = worker.queue();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    for chunk in (0..runs).collect::<Vec<_>>().chunks(1000) {
        let batch: Vec<NewRun> = chunk
            .iter()
            .map(|i| {
                let id = format!("run-{i:07}");
                NewRun {
                    id: id.clone(),
                    workflow_id: WORKFLOWS[i % WORKFLOWS.len()].to_string(),
                    input: format!("{{\"n\": {i}}}"),
                    first: NewTask {
                        run_id: id,
                        position: 0,
                        name: "a".into(),
                        kind: TaskKind::Wait,
                        queue: "bench".into(),
                        max_attempts: 1,
                        available_at: now + 86_400_000,
                        traceparent: None,
                    },
                }
            })
            .collect();
        queue.insert_runs(&batch).await.expect("insert");
    }
    let store = queue.store();
    for (n, status) in STATUSES.iter().enumerate() {
        // Runs numbered 0, 1, 2 modulo 5 end succeeded, failed, cancelled; the rest stay pending.
        let sql = format!(
            "UPDATE workflow_runs SET status = '{status}', started_at = created_at, finished_at = created_at + 1000 \
             WHERE CAST(substr(id, 5) AS INTEGER) % 5 = {n}"
        );
        let mut conn = store.acquire().await.expect("conn");
        compozy_store::on_conn!(&mut conn, c => {
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).execute(&mut **c).await.expect("update");
        });
    }
}
