//! Storage for the Compozy engine: PostgreSQL or embedded SQLite behind one [`Store`], Redis or an
//! in-process map behind one [`Cache`], pools that report the catalog's pool metrics, embedded
//! migrations, and health probes feeding readiness.

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
pub use config::{CacheConfig, StoreConfig, mask_url};
pub use error::{CacheError, RETRY_AFTER, StoreError, Unavailable};
pub use health::HealthProbe;
pub use instances::Instance;
pub use sqlite::DB_FILE;
pub use store::{Store, StoreConn};
