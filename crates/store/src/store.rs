//! The store the engine uses: PostgreSQL or SQLite behind one type, with an instrumented pool.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use compozy_core::Readiness;
use compozy_telemetry::Registry;
use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool};

use crate::config::StoreConfig;
use crate::error::{StoreError, Unavailable};
use crate::health::{HealthProbe, HealthState, spawn_probe};
use crate::metrics::{self, AcquireEnd, AcquireMetrics};
use crate::{postgres, sqlite};

#[derive(Clone)]
enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

struct Inner {
    pool: Pool,
    backend: &'static str,
    metrics: AcquireMetrics,
    health: Arc<HealthState>,
    query_timeout: Duration,
    acquire_timeout: Duration,
    /// SQLite only: the file lock that serializes migrations.
    migrate_lock: Option<PathBuf>,
}

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.inner.backend).finish_non_exhaustive()
    }
}

/// A pooled connection, returned to the pool when dropped. Run sqlx queries on the backend's
/// connection: `sqlx::query("...").execute(conn.as_postgres()?)`, or match on the variants.
#[derive(Debug)]
pub enum StoreConn {
    Postgres(PoolConnection<Postgres>),
    Sqlite(PoolConnection<Sqlite>),
}

impl StoreConn {
    pub fn as_postgres(&mut self) -> Option<&mut PgConnection> {
        match self {
            StoreConn::Postgres(c) => Some(&mut **c),
            StoreConn::Sqlite(_) => None,
        }
    }

    pub fn as_sqlite(&mut self) -> Option<&mut SqliteConnection> {
        match self {
            StoreConn::Sqlite(c) => Some(&mut **c),
            StoreConn::Postgres(_) => None,
        }
    }

    /// Closes the connection instead of returning it to the pool (after an error that may have
    /// left session state behind, such as a held advisory lock).
    async fn discard(self) {
        let _ = match self {
            StoreConn::Postgres(c) => c.close().await,
            StoreConn::Sqlite(c) => c.close().await,
        };
    }
}

/// Records the wait of one acquire when dropped, so cancelled acquires are recorded too.
struct AcquireTimer<'a> {
    metrics: &'a AcquireMetrics,
    start: Instant,
    end: AcquireEnd,
}

impl Drop for AcquireTimer<'_> {
    fn drop(&mut self) {
        self.metrics.record(self.start.elapsed(), self.end);
    }
}

/// The backend `config` selects, with its (lazy, not yet connected) pool.
struct Selected {
    pool: Pool,
    backend: &'static str,
    max: u32,
    defs: &'static metrics::PoolDefs,
    migrate_lock: Option<PathBuf>,
}

fn select(config: &StoreConfig, data_dir: &Path) -> Result<Selected, StoreError> {
    match config.url.as_ref().map(|s| s.expose()) {
        Some(url) if postgres::is_postgres_url(url) => {
            let (pool, max) = postgres::pool(config, url)?;
            let backend = postgres::BACKEND;
            Ok(Selected { pool: Pool::Postgres(pool), backend, max, defs: &metrics::POSTGRES, migrate_lock: None })
        }
        Some(_) => Err(StoreError::Config("database.url must start with postgres:// or postgresql://".into())),
        None => {
            let (pool, max) = sqlite::pool(config, data_dir)?;
            let migrate_lock = Some(sqlite::migrate_lock_path(data_dir));
            Ok(Selected {
                pool: Pool::Sqlite(pool),
                backend: sqlite::BACKEND,
                max,
                defs: &metrics::SQLITE,
                migrate_lock,
            })
        }
    }
}

impl Store {
    /// Builds the pool for `config` (PostgreSQL when `url` is set, else SQLite in `data_dir`),
    /// registers its metrics on `registry` and pings the database once.
    ///
    /// Fails with `Unavailable` when the database cannot be reached within `acquire_timeout`.
    pub async fn connect(config: &StoreConfig, data_dir: &Path, registry: &Registry) -> Result<Store, StoreError> {
        let Selected { pool, backend, max, defs, migrate_lock } = select(config, data_dir)?;
        let gauges: Arc<dyn metrics::PoolGauges> = match &pool {
            Pool::Postgres(p) => Arc::new(p.clone()),
            Pool::Sqlite(p) => Arc::new(p.clone()),
        };
        let inner = Inner {
            pool,
            backend,
            metrics: metrics::register_pool(registry, defs, gauges, max),
            health: HealthState::new(backend),
            query_timeout: config.query_timeout,
            acquire_timeout: config.acquire_timeout,
            migrate_lock,
        };
        let store = Store { inner: Arc::new(inner) };
        store.ping().await?;
        tracing::info!(backend, max_connections = max, "store connected");
        if let Pool::Postgres(pool) = &store.inner.pool {
            postgres::warn_if_autovacuum_off(pool).await;
        }
        Ok(store)
    }

    /// [`Store::connect`], then [`Store::migrate`] when `auto_migrate` is set.
    pub async fn open(config: &StoreConfig, data_dir: &Path, registry: &Registry) -> Result<Store, StoreError> {
        let store = Store::connect(config, data_dir, registry).await?;
        if config.auto_migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// `"postgres"` or `"sqlite"`.
    pub fn backend(&self) -> &'static str {
        self.inner.backend
    }

    /// A pooled connection. The wait is recorded in `*_connection_wait_duration_seconds` on every
    /// call, successful or not; a timeout also counts in `*_connection_timeouts_total`, a connect
    /// that failed at once in `*_connection_errors_total`.
    pub async fn acquire(&self) -> Result<StoreConn, StoreError> {
        use tracing::Instrument;
        let mut timer = AcquireTimer { metrics: &self.inner.metrics, start: Instant::now(), end: AcquireEnd::Done };
        // A client span only inside a request's or a task's trace (never a root of its own).
        let span = compozy_telemetry::child_span!(
            "store.acquire",
            otel.kind = "client",
            db.system.name = if self.inner.backend == "postgres" { "postgresql" } else { "sqlite" },
        );
        let result = async {
            match &self.inner.pool {
                Pool::Postgres(p) => p.acquire().await.map(StoreConn::Postgres),
                Pool::Sqlite(p) => p.acquire().await.map(StoreConn::Sqlite),
            }
        }
        .instrument(span)
        .await;
        timer.end = AcquireEnd::of(&result);
        drop(timer);
        result.map_err(|e| StoreError::from_sqlx(self.inner.backend, e))
    }

    /// Runs `op` bounded by `query_timeout`; a timeout is `Unavailable`.
    pub(crate) async fn bounded<T>(&self, op: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        match tokio::time::timeout(self.inner.query_timeout, op).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable { backend: self.inner.backend, reason: Unavailable::Timeout }),
        }
    }

    pub(crate) fn map_err(&self, e: sqlx::Error) -> StoreError {
        StoreError::from_sqlx(self.inner.backend, e)
    }

    /// Checks that a connection can be had and answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.bounded(async {
            let mut conn = self.acquire().await?;
            let result = match &mut conn {
                StoreConn::Postgres(c) => c.ping().await,
                StoreConn::Sqlite(c) => c.ping().await,
            };
            result.map_err(|e| self.map_err(e))
        })
        .await
    }

    /// Applies pending migrations. Idempotent; concurrent callers (other processes included)
    /// serialize: on PostgreSQL on an advisory lock, on SQLite on a lock file in the data directory.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let _file_lock = match &self.inner.migrate_lock {
            Some(path) => Some(sqlite::lock_migrations(path.clone()).await?),
            None => None,
        };
        let mut conn = self.acquire().await?;
        let result = match &mut conn {
            StoreConn::Postgres(c) => postgres::MIGRATOR.run(&mut **c).await,
            StoreConn::Sqlite(c) => sqlite::MIGRATOR.run(&mut **c).await,
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                // The failed run may still hold the migration lock on this session.
                conn.discard().await;
                Err(match e {
                    sqlx::migrate::MigrateError::Execute(e) => self.map_err(e),
                    e => StoreError::Migrate(e.to_string()),
                })
            }
        }
    }

    /// Starts a task that pings every `interval` and registers the `store` readiness check,
    /// which reads the last result without I/O. Keep the handle: dropping it stops the probe.
    pub fn spawn_health_probe(&self, readiness: &Readiness, interval: Duration) -> HealthProbe {
        self.inner.health.register(readiness, "store");
        let store = self.clone();
        // Longer than the acquire timeout, so the pool's own timeout (and its counter) fires first.
        let timeout = self.inner.acquire_timeout + Duration::from_secs(1);
        spawn_probe(self.inner.health.clone(), interval, timeout, move || {
            let store = store.clone();
            async move {
                store.ping().await.map_err(|e| match e {
                    StoreError::Unavailable { reason, .. } => reason,
                    _ => Unavailable::Unreachable,
                })
            }
        })
    }

    /// Closes every connection; later operations fail with `Unavailable`.
    pub async fn close(&self) {
        match &self.inner.pool {
            Pool::Postgres(p) => p.close().await,
            Pool::Sqlite(p) => p.close().await,
        }
    }
}
