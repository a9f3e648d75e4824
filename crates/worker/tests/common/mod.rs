//! Test support: per-test databases (PostgreSQL or SQLite), a project on disk, workers, metric reading.
#![allow(dead_code, unused_imports)]

pub use compozy_testkit::{eventually, sample};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use compozy_autoload::{AutoloadConfig, Autoloader};
use compozy_core::Secret;
use compozy_store::{Store, StoreConfig};
use compozy_telemetry::{Format, Registry, RegistryOptions};
use compozy_worker::{Worker, WorkerConfig};

pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub use compozy_testkit::postgres::TestDb;

pub enum Backend {
    Postgres(TestDb),
    Sqlite(tempfile::TempDir),
}

/// One test's world: a migrated store, a loaded project, a metrics registry per worker.
pub struct Env {
    pub backend: Backend,
    pub store: Store,
    pub project: Arc<Autoloader>,
    pub dir: tempfile::TempDir,
}

pub const PROJECT: &[(&str, &str)] = &[
    ("tools/echo.yaml", "resource: tool\nid: echo\ncommand: sh\nargs: [\"-c\", \"cat\"]\n"),
    ("tools/fail.yaml", "resource: tool\nid: fail\ncommand: sh\nargs: [\"-c\", \"echo boom >&2; exit 3\"]\n"),
    ("tools/forever.yaml", "resource: tool\nid: forever\ncommand: sh\nargs: [\"-c\", \"sleep 1000 & sleep 1000\"]\n"),
    ("tools/noisy.yaml", "resource: tool\nid: noisy\ncommand: sh\nargs: [\"-c\", \"yes | head -c 100000000\"]\n"),
    (
        "tools/env.yaml",
        "resource: tool\nid: env\ncommand: sh\nargs: [\"-c\", \"printf '{\\\"v\\\": \\\"%s\\\", \\\"home\\\": \\\"%s\\\"}' \\\"$ONLY\\\" \\\"$HOME\\\"\"]\nenv:\n  ONLY: configured\n",
    ),
    (
        "workflows/noop.yaml",
        "resource: workflow\nid: noop\ntasks:\n  - {id: a, type: wait, duration: 0s}\n  - {id: b, type: wait, duration: 0s}\n",
    ),
    (
        "workflows/slow.yaml",
        "resource: workflow\nid: slow\ntasks:\n  - id: a\n    type: wait\n    duration: 1500ms\n    retry: {max_attempts: 3, backoff: {initial: 10ms, max: 10ms}}\n",
    ),
    (
        "workflows/pipe.yaml",
        "resource: workflow\nid: pipe\ntasks:\n  - {id: first, type: tool, tool: echo, input: {x: \"{{ input.x }}\"}}\n  - {id: second, type: tool, tool: echo, input: {prev: \"{{ tasks.first.output.x }}\", all: \"{{ input }}\"}}\n  - {id: third, type: tool, tool: env}\n",
    ),
    (
        "workflows/failing.yaml",
        "resource: workflow\nid: failing\ntasks:\n  - id: a\n    type: tool\n    tool: fail\n    retry: {max_attempts: 3, backoff: {initial: 20ms, max: 100ms, multiplier: 2}}\n",
    ),
    (
        "workflows/hang.yaml",
        "resource: workflow\nid: hang\ntasks:\n  - {id: a, type: tool, tool: forever, timeout: 300ms}\n",
    ),
    ("workflows/noisy.yaml", "resource: workflow\nid: noisy\ntasks:\n  - {id: a, type: tool, tool: noisy}\n"),
    ("workflows/long.yaml", "resource: workflow\nid: long\ntasks:\n  - {id: a, type: wait, duration: 1h}\n"),
];

impl Env {
    pub async fn postgres() -> Option<Env> {
        let db = TestDb::create().await?;
        let url = db.url();
        Some(Env::open(Backend::Postgres(db), Some(url)).await)
    }

    pub async fn sqlite() -> Env {
        Env::open(Backend::Sqlite(tempfile::tempdir().expect("tempdir")), None).await
    }

    pub async fn both() -> Vec<Env> {
        let mut out: Vec<Env> = Env::postgres().await.into_iter().collect();
        if std::env::var("NO_SQLITE").is_err() {
            out.push(Env::sqlite().await);
        }
        out
    }

    async fn open(backend: Backend, url: Option<String>) -> Env {
        let data = match &backend {
            Backend::Sqlite(d) => d.path().to_path_buf(),
            Backend::Postgres(_) => "/nonexistent-unused".into(),
        };
        let config = StoreConfig { url: url.map(Secret::new), ..StoreConfig::default() };
        let store = Store::connect(&config, &data, &registry()).await.expect("connect");
        store.migrate().await.expect("migrate");
        let dir = tempfile::tempdir().expect("project dir");
        for (path, text) in PROJECT {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write resource");
        }
        let autoloader =
            Autoloader::new(AutoloadConfig::default(), dir.path(), "test", &registry()).expect("autoloader");
        autoloader.load().await.expect("project loads");
        Env { backend, store, project: Arc::new(autoloader), dir }
    }

    /// Writes one more resource and reloads the project.
    pub async fn add(&self, path: &str, text: &str) {
        let p = self.dir.path().join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write resource");
        self.project.reload().await.expect("project reloads");
    }

    pub fn name(&self) -> &'static str {
        match self.backend {
            Backend::Postgres(_) => "postgres",
            Backend::Sqlite(_) => "sqlite",
        }
    }

    pub fn worker(&self, config: WorkerConfig) -> (Worker, Arc<Registry>) {
        let metrics = registry();
        let worker = Worker::new(config, self.store.clone(), self.project.clone(), &metrics).expect("worker");
        (worker, metrics)
    }
}

/// Short intervals so tests finish quickly.
pub fn fast() -> WorkerConfig {
    WorkerConfig {
        max_concurrent_activities: 4,
        max_concurrent_workflows: 4,
        claim_batch: 4,
        lease: Duration::from_millis(1000),
        heartbeat_interval: Duration::from_millis(200),
        poll_interval: Duration::from_millis(50),
        refresh_interval: Duration::from_millis(50),
        shutdown_timeout: Duration::from_secs(5),
        ..WorkerConfig::default()
    }
}

pub fn registry() -> Arc<Registry> {
    Registry::new(RegistryOptions::default())
}

pub fn render(registry: &Arc<Registry>) -> String {
    compozy_telemetry::render(registry, Format::Prometheus)
}

/// Spawns `worker.run` until the returned sender fires (or the handle is aborted).
pub fn spawn(worker: &Worker) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let w = worker.clone();
    let handle = tokio::spawn(async move {
        w.run(async move {
            let _ = rx.await;
        })
        .await
        .expect("worker run");
    });
    (tx, handle)
}

pub fn path(p: &Path) -> String {
    p.display().to_string()
}
