//! Test support: service gating, per-test databases, a cuttable TCP proxy, metric reading.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use compozy_core::Secret;
use compozy_store::StoreConfig;
use compozy_telemetry::{Format, Registry, RegistryOptions};
use tokio::net::TcpStream;

pub const PG_ADDR: &str = "127.0.0.1:5432";
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
pub const REDIS_ADDR: &str = "127.0.0.1:6379";

pub use compozy_testkit::service_missing;

pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

pub fn registry() -> Arc<Registry> {
    Registry::new(RegistryOptions::default())
}

pub fn render(registry: &Arc<Registry>) -> String {
    compozy_telemetry::render(registry, Format::Prometheus)
}

/// The value of the label-less sample `name` in `text`.
pub fn sample(text: &str, name: &str) -> f64 {
    compozy_testkit::sample_opt(text, name).unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
}

/// Polls `cond` every 50 ms; panics after `limit` (a guard against hangs, not a timing check).
pub async fn wait_until<F: Fn() -> bool>(what: &str, limit: Duration, cond: F) {
    let deadline = tokio::time::Instant::now() + limit;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "gave up waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Awaits `f`, failing the test if it hangs past `limit`.
pub async fn no_hang<T>(limit: Duration, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, f).await.expect("operation hung past its guard")
}

pub use compozy_testkit::postgres::TestDb;

/// Where a store test runs: a fresh PostgreSQL database or a fresh SQLite directory.
pub enum Fixture {
    Postgres(TestDb),
    Sqlite(tempfile::TempDir),
}

impl Fixture {
    pub async fn postgres() -> Option<Fixture> {
        TestDb::create().await.map(Fixture::Postgres)
    }

    pub fn sqlite() -> Fixture {
        Fixture::Sqlite(tempfile::tempdir().expect("tempdir"))
    }

    pub fn config(&self) -> StoreConfig {
        let url = match self {
            Fixture::Postgres(db) => Some(Secret::new(db.url())),
            Fixture::Sqlite(_) => None,
        };
        StoreConfig { url, ..StoreConfig::default() }
    }

    pub fn data_dir(&self) -> PathBuf {
        match self {
            Fixture::Postgres(_) => PathBuf::from("/nonexistent-unused"),
            Fixture::Sqlite(dir) => dir.path().to_path_buf(),
        }
    }

    /// Metric name prefix of this backend's pool families.
    pub fn metric_prefix(&self) -> &'static str {
        match self {
            Fixture::Postgres(_) => "compozy_postgres",
            Fixture::Sqlite(_) => "compozy_sqlite",
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Fixture::Postgres(_) => "postgres",
            Fixture::Sqlite(_) => "sqlite",
        }
    }

    pub async fn cleanup(self) {
        if let Fixture::Postgres(db) = self {
            db.drop_db().await;
        }
    }
}

/// `true` when Redis answers; otherwise reports it through [`service_missing`].
pub async fn redis_up() -> bool {
    match TcpStream::connect(REDIS_ADDR).await {
        Ok(_) => true,
        Err(e) => {
            service_missing("Redis", e);
            false
        }
    }
}

#[allow(unused_imports)] // not every test binary cuts a connection
pub use compozy_testkit::proxy::Proxy;

pub fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Everything logged on this thread while its guard lives (every level, no colours). Use it in a
/// `current_thread` test, so that the thread-local subscriber sees every task, sqlx's included.
#[derive(Clone, Default)]
pub struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    pub fn start() -> (Captured, tracing::subscriber::DefaultGuard) {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("log buffer").clone()).expect("utf8")
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
