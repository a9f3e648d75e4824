//! Test support: a store (PostgreSQL or SQLite), a cache (Redis or in-process), a loaded project,
//! a running worker and the webhook routes as one axum router; metric reading.
#![allow(dead_code)]

pub use compozy_testkit::{eventually, sample};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use compozy_autoload::{AutoloadConfig, Autoloader};
use compozy_core::Secret;
use compozy_store::{Cache, CacheConfig, Store, StoreConfig};
use compozy_telemetry::{Format, Registry, RegistryOptions};
use compozy_webhooks::{Webhooks, WebhooksConfig};
use compozy_worker::{Worker, WorkerConfig};
use http::{Request, Response};
use http_body_util::BodyExt;
use tower::ServiceExt;

pub use compozy_testkit::postgres::TestDb;
pub use compozy_testkit::proxy::Proxy;

pub const REDIS_ADDR: &str = "127.0.0.1:6379";
pub const SECRET: &str = "s3cret";

pub const PROJECT: &[(&str, &str)] = &[
    (
        "workflows/gh.yaml",
        r#"resource: workflow
id: gh-flow
triggers:
  - type: webhook
    slug: gh
    source: github
    verify: { method: github, secret: s3cret }
    events:
      - name: push
        filter: 'headers["x-github-event"] == "push"'
        input: { repo: "{{ body.repo }}", commits: "{{ body.commits | length }}" }
        schema: { type: object, required: [repo], properties: { repo: { type: string } } }
      - name: boom
        filter: 'headers["x-github-event"] == "boom" && body.nope == 1'
tasks:
  - { id: a, type: wait, duration: 0s }
"#,
    ),
    (
        "workflows/open.yaml",
        r#"resource: workflow
id: open-flow
triggers:
  - type: webhook
    slug: open
    body_limit: 64
    dedupe: { key: body.id, ttl: 1h }
tasks:
  - { id: a, type: wait, duration: 0s }
"#,
    ),
];

pub struct Env {
    pub name: &'static str,
    _db: Option<TestDb>,
    _data: tempfile::TempDir,
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub cache: Cache,
    pub project: Arc<Autoloader>,
    pub worker: Worker,
    pub metrics: Arc<Registry>,
    pub webhooks: Webhooks,
    pub router: Router,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

pub fn registry() -> Arc<Registry> {
    Registry::new(RegistryOptions::default())
}

pub async fn redis_cache(url: &str) -> Option<Cache> {
    let config = CacheConfig {
        url: Some(Secret::new(url)),
        response_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
        pool_timeout: Duration::from_millis(500),
        // Redis outlives test runs: a prefix per cache keeps one run's dedupe keys from another's.
        prefix: format!("test-{}:", uuid::Uuid::new_v4().simple()),
        ..CacheConfig::default()
    };
    match Cache::connect(&config, &registry()).await {
        Ok(c) => Some(c),
        Err(e) => {
            compozy_testkit::service_missing("Redis", e);
            None
        }
    }
}

pub async fn memory_cache() -> Cache {
    Cache::connect(&CacheConfig::default(), &registry()).await.expect("memory cache")
}

pub fn fast_worker() -> WorkerConfig {
    WorkerConfig {
        poll_interval: Duration::from_millis(50),
        refresh_interval: Duration::from_millis(100),
        heartbeat_interval: Duration::from_millis(200),
        shutdown_timeout: Duration::from_secs(2),
        ..WorkerConfig::default()
    }
}

impl Env {
    /// PostgreSQL + Redis (None when either is missing), then SQLite + in-process cache.
    pub async fn both(config: WebhooksConfig) -> Vec<Env> {
        let mut out = Vec::new();
        if let Some(db) = TestDb::create().await
            && let Some(cache) = redis_cache(&format!("redis://{REDIS_ADDR}")).await
        {
            let url = db.url();
            out.push(Env::open("postgres+redis", Some(db), Some(url), cache, config.clone()).await);
        }
        out.push(Env::embedded(config).await);
        out
    }

    /// PostgreSQL (None when missing) and SQLite, both behind the in-process cache.
    pub async fn with_memory_cache(config: WebhooksConfig) -> Vec<Env> {
        let mut out = Vec::new();
        if let Some(db) = TestDb::create().await {
            let (url, cache) = (db.url(), memory_cache().await);
            out.push(Env::open("postgres+memory", Some(db), Some(url), cache, config.clone()).await);
        }
        out.push(Env::embedded(config).await);
        out
    }

    pub async fn embedded(config: WebhooksConfig) -> Env {
        Env::open("sqlite+memory", None, None, memory_cache().await, config).await
    }

    pub async fn open(
        name: &'static str,
        db: Option<TestDb>,
        url: Option<String>,
        cache: Cache,
        config: WebhooksConfig,
    ) -> Env {
        let data = tempfile::tempdir().expect("data dir");
        let store_config = StoreConfig { url: url.map(Secret::new), ..StoreConfig::default() };
        let store = Store::connect(&store_config, data.path(), &registry()).await.expect("store");
        store.migrate().await.expect("migrate");
        let dir = tempfile::tempdir().expect("project dir");
        for (path, text) in PROJECT {
            write(dir.path(), path, text);
        }
        let project =
            Arc::new(Autoloader::new(AutoloadConfig::default(), dir.path(), "test", &registry()).expect("autoloader"));
        project.load().await.expect("project loads");
        let metrics = registry();
        let worker = Worker::new(fast_worker(), store.clone(), project.clone(), &registry()).expect("worker");
        let webhooks = Webhooks::new(config, worker.clone(), cache.clone(), &metrics).expect("webhooks");
        project.on_reload({
            let webhooks = webhooks.clone();
            move |registry| webhooks.prime_metrics(registry)
        });
        let mut router = Router::new();
        for (path, route) in
            compozy_webhooks::routes(&webhooks).into_iter().chain(compozy_webhooks::admin_routes(&webhooks))
        {
            router = router.route(path, route);
        }
        Env { name, _db: db, _data: data, dir, store, cache, project, worker, metrics, webhooks, router, stop: None }
    }

    /// Starts the worker (runs get executed).
    pub fn run_worker(&mut self) {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let w = self.worker.clone();
        tokio::spawn(async move {
            let _ = w
                .run(async move {
                    let _ = rx.await;
                })
                .await;
        });
        self.stop = Some(tx);
    }

    pub async fn send(&self, req: Request<Body>) -> (u16, http::HeaderMap, serde_json::Value) {
        let resp: Response<Body> = self.router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, headers, json)
    }

    pub fn text(&self) -> String {
        compozy_telemetry::render(&self.metrics, Format::Prometheus)
    }

    /// `compozy_webhook_deliveries_total{source,result}`.
    pub fn deliveries(&self, source: &str, result: &str) -> f64 {
        sample(&self.text(), &format!("compozy_webhook_deliveries_total{{source=\"{source}\",result=\"{result}\"}}"))
    }

    /// The sum of every `compozy_webhook_deliveries_total` series.
    pub fn deliveries_sum(&self) -> f64 {
        self.text()
            .lines()
            .filter(|l| l.starts_with("compozy_webhook_deliveries_total{"))
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
            .sum()
    }

    pub async fn reload_with(&self, path: &str, text: &str) {
        write(self.dir.path(), path, text);
        self.project.reload().await.expect("project reloads");
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

fn write(root: &std::path::Path, path: &str, text: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write resource");
}

/// A signed GitHub-style delivery to `/api/v0/hooks/gh`.
pub fn github(event: &str, body: &str, delivery: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/api/v0/hooks/gh")
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-hub-signature-256", compozy_webhooks::verify::sign::github(SECRET, body.as_bytes()));
    if let Some(id) = delivery {
        b = b.header("x-github-delivery", id);
    }
    b.body(Body::from(body.to_string())).expect("request")
}

pub fn post(path: &str, body: &str) -> Request<Body> {
    Request::post(path).body(Body::from(body.to_string())).expect("request")
}
