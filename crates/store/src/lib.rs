//! Storage for the Compozy engine: PostgreSQL or embedded SQLite behind one [`Store`], Redis or an
//! in-process map behind one [`Cache`], pools that report the catalog's pool metrics, embedded
//! migrations, and health probes feeding readiness.
//!
//! Wiring (compiled as a doctest):
//!
//! ```no_run
//! # async fn wire(database: compozy_store::StoreConfig, redis: compozy_store::CacheConfig) -> Result<(), Box<dyn std::error::Error>> {
//! use compozy_store::{Cache, Store};
//! use compozy_telemetry::{Registry, RegistryOptions};
//!
//! let registry = Registry::new(RegistryOptions::default());
//! let readiness = compozy_core::Readiness::default();
//! // Connect, register the pool metrics, migrate when `database.auto_migrate` is set.
//! let store = Store::open(&database, std::path::Path::new(".compozy"), &registry).await?;
//! let cache = Cache::connect(&redis, &registry).await?; // Redis when `redis.url` is set
//! // Keep the probes alive: dropping one stops it. The in-process cache has none.
//! let _store_probe = store.spawn_health_probe(&readiness, database.health_check_interval);
//! let _cache_probe = cache.spawn_health_probe(&readiness, redis.health_check_interval);
//! # Ok(()) }
//! ```

/// Runs `$body` with `$c` bound to the backend's connection of a [`StoreConn`]: one text for
/// both backends (sqlx's query builders are generic over the connection type).
#[macro_export]
macro_rules! on_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::StoreConn::Postgres($c) => $body,
            $crate::StoreConn::Sqlite($c) => $body,
        }
    };
}

pub mod cache;
pub mod config;
pub mod error;
mod health;
mod instances;
mod metrics;
mod postgres;
mod sqlite;
mod store;

pub use cache::Cache;
pub use config::{CacheConfig, RedisTls, StoreConfig, mask_url};
pub use error::{CacheError, RETRY_AFTER, StoreError, Unavailable};
pub use health::HealthProbe;
pub use instances::Instance;
pub use sqlite::{DB_FILE, WAL_SIZE_LIMIT_BYTES, begin_write};
pub use store::{Store, StoreConn};
