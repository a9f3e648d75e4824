//! PostgreSQL (server mode): connection options and migrations.

use std::str::FromStr;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::{POSTGRES_DEFAULT_MAX_CONNECTIONS, POSTGRES_DEFAULT_MAX_LIFETIME, StoreConfig, mask_url};
use crate::error::StoreError;

pub(crate) const BACKEND: &str = "postgres";

/// sqlx's Postgres migrator holds `pg_advisory_lock` while it runs, so concurrent start-ups
/// apply each migration once.
pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

pub(crate) fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Parses `url` (user and password percent-decoded by sqlx) and builds a lazy pool: nothing is
/// connected until the first acquire.
pub(crate) fn pool(config: &StoreConfig, url: &str) -> Result<(PgPool, u32), StoreError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Config(format!("cannot parse database url {}: {e}", mask_url(url))))?
        .application_name("compozy");
    let max = config.max_connections.unwrap_or(POSTGRES_DEFAULT_MAX_CONNECTIONS);
    let pool = PgPoolOptions::new()
        .max_connections(max)
        .min_connections(config.min_connections.min(max))
        .acquire_timeout(config.acquire_timeout)
        .idle_timeout(config.idle_timeout)
        .max_lifetime(config.max_lifetime_or(Some(POSTGRES_DEFAULT_MAX_LIFETIME)))
        .test_before_acquire(true)
        .connect_lazy_with(options);
    Ok((pool, max))
}

/// Retention deletes finished runs, and only (auto)vacuum makes their space reusable: a server
/// that runs without autovacuum grows by every pruned row (docs/storage.md). Said once at start;
/// a server that cannot answer is left to the ping's error.
pub(crate) async fn warn_if_autovacuum_off(pool: &PgPool) {
    let setting: Result<String, _> = sqlx::query_scalar("SHOW autovacuum").fetch_one(pool).await;
    if matches!(setting.as_deref(), Ok("off")) {
        tracing::warn!(
            "PostgreSQL runs with autovacuum off: rows deleted by retention are never reclaimed and the \
             database keeps growing; turn autovacuum on or schedule VACUUM (docs/storage.md)"
        );
    }
}
