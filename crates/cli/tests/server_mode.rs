//! `compozy serve` in server mode (PostgreSQL + Redis) and with the quickstart project: the
//! store, cache and autoload through the binary, and an outage of PostgreSQL behind a proxy
//! the test can cut: 503 with Retry-After, readiness and `compozy_server_ready` follow, and
//! the engine recovers on its own.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::proxy::Proxy;
use common::services::{TestDb, redis_up};
use common::{BIN, Engine};
use compozy_testkit::service_missing;

const QUICKSTART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/quickstart/compozy.yaml");

#[test]
fn postgres_outage_answers_503_and_recovers_on_its_own() {
    let Some(db) = TestDb::create("outage") else {
        return service_missing("PostgreSQL", "cannot create a database with psql");
    };
    if !redis_up() {
        return service_missing("Redis", "127.0.0.1:6379 refused");
    }
    let proxy = Proxy::start("127.0.0.1:5432");
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [
        ("COMPOZY_DATABASE_URL", format!("postgres://postgres@{}/{}", proxy.addr, db.0)),
        ("COMPOZY_DATABASE_ACQUIRE_TIMEOUT", "1s".into()),
        ("COMPOZY_DATABASE_HEALTH_CHECK_INTERVAL", "200ms".into()),
        ("COMPOZY_REDIS_URL", "redis://127.0.0.1:6379".into()),
    ];
    let engine = Engine::start(dir.path(), &[], &env);

    let (status, _, body) = engine.get("/readyz");
    assert_eq!(status, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(ready["components"]["store"]["backend"], "postgres");
    assert_eq!(ready["components"]["cache"]["backend"], "redis");
    // The worker registers from its own task, shortly after the listener is up.
    engine.eventually("the worker registers", |e| e.get("/api/v0/instances").2.contains("\"role\":\"worker\""));
    assert_eq!(engine.metric("compozy_postgres_max_open_connections"), Some(25.0));
    assert_eq!(engine.metric("compozy_redis_pool_size"), Some(10.0));
    assert_eq!(engine.metric("compozy_server_ready"), Some(1.0));

    proxy.cut();
    let started = Instant::now();
    let (status, head, body) = engine.get("/api/v0/instances");
    assert_eq!(status, 503, "{body}");
    assert!(head.contains("retry-after: 5") && head.contains("application/problem+json"), "{head}");
    assert!(!body.contains("postgres://"), "no internals in the answer: {body}");
    assert!(started.elapsed() < Duration::from_secs(10), "failed fast, within the acquire timeout");
    engine.eventually("readiness reports the store down", |e| e.get("/readyz").0 == 503);
    let (_, _, body) = engine.get("/readyz");
    assert!(body.contains("\"store\":{\"backend\":\"postgres\""), "{body}");
    assert_eq!(engine.metric("compozy_server_ready"), Some(0.0));
    assert!(engine.metric("compozy_postgres_connection_timeouts_total").is_some());
    assert_eq!(engine.get("/healthz").0, 200, "the process stays up");

    proxy.restore();
    engine.eventually("the store is back", |e| e.get("/api/v0/instances").0 == 200);
    engine.eventually("ready again", |e| e.get("/readyz").0 == 200);
    assert_eq!(engine.metric("compozy_server_ready"), Some(1.0));
}

#[test]
fn quickstart_resources_reload_and_validate_through_the_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::start(dir.path(), &["--config", QUICKSTART], &[]);
    let (status, _, body) = engine.get("/api/v0/resources/workflows");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let ids: Vec<_> = v["data"].as_array().expect("list").iter().map(|w| w["id"].as_str().unwrap_or("")).collect();
    assert_eq!(ids, ["github-push", "hello"]);
    assert_eq!(engine.get("/api/v0/resources/workflows/HELLO").0, 200, "ids are case-insensitive");
    assert_eq!(engine.get("/api/v0/resources/workflows/nope").0, 404);
    assert_eq!(engine.get("/api/v0/resources/gadgets").0, 404);
    let (status, _, body) = engine.request("POST", "/api/v0/admin/reload", &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(engine.metric("compozy_autoload_last_reload_successful{project=\"quickstart\"}"), Some(1.0));
    assert_eq!(
        engine.metric("compozy_autoload_configs_loaded_total{project=\"quickstart\",type=\"workflow\"}"),
        Some(4.0)
    );
    assert_eq!(engine.metric("compozy_sqlite_max_open_connections"), Some(4.0));
    let (_, _, ready) = engine.get("/readyz");
    assert!(ready.contains("\"autoload\":{\"backend\":\"files\",\"ready\":true}"), "{ready}");

    // A run of the `hello` workflow (one `wait` task) through the durable queue.
    let (status, _, body) = engine.request("POST", "/api/v0/workflows/hello/executions", &[]);
    assert_eq!(status, 202, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let id = v["data"]["execution_id"].as_str().expect("execution id").to_string();
    engine.eventually("the run succeeds", |e| e.get(&format!("/api/v0/executions/{id}")).2.contains("\"succeeded\""));
    assert_eq!(
        engine.metric("compozy_worker_activity_duration_seconds_count{activity_type=\"wait\",outcome=\"success\"}"),
        Some(1.0)
    );
    assert_eq!(engine.request("POST", "/api/v0/workflows/nope/executions", &[]).0, 404);

    let out = Command::new(BIN).args(["--config", QUICKSTART, "validate", "--format", "json"]).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["resources"]["workflow"], 2);

    let bad = tempfile::tempdir().expect("tempdir");
    std::fs::write(bad.path().join("broken.yaml"), "resource: workflow\nid: x\ntasks: [\n").expect("write");
    let out = Command::new(BIN).args(["validate"]).arg(bad.path()).current_dir(bad.path()).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("broken.yaml:"), "{text}");
}
