//! Storage for the Compozy engine: PostgreSQL or embedded SQLite behind one [`Store`], Redis or an
//! in-process map behind one [`Cache`], pools that report the catalog's pool metrics, embedded
//! migrations, and health probes feeding readiness.

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
pub use sqlite::DB_FILE;
pub use store::{Store, StoreConn};
