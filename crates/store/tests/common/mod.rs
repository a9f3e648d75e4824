//! Test support: service gating, per-test databases, a cuttable TCP proxy, metric reading.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use compozy_core::Secret;
use compozy_store::StoreConfig;
use compozy_telemetry::{Format, Registry, RegistryOptions};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

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
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
        .trim()
        .parse()
        .expect("numeric sample")
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

/// A TCP forwarder that can be cut (every connection dropped, new ones closed at once) and
/// restored, standing in for a network outage between a pool and its server.
pub struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    cut_tx: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let up = Arc::new(AtomicBool::new(true));
        let (cut_tx, cut_rx) = watch::channel(0u64);
        let target = target.to_string();
        let flag = up.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !flag.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                tokio::spawn(forward(client, target.clone(), cut_rx.clone()));
            }
        });
        Proxy { addr, up, cut_tx, task }
    }

    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut_tx.send_modify(|g| *g += 1);
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut_tx.send_modify(|g| *g += 1);
    }
}

async fn forward(mut client: TcpStream, target: String, mut cut: watch::Receiver<u64>) {
    cut.borrow_and_update();
    let Ok(mut server) = TcpStream::connect(&target).await else { return };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = cut.changed() => {}
    }
}

pub fn path(p: &Path) -> String {
    p.display().to_string()
}
