//! The cache: Redis when configured, an in-process map otherwise, behind one API.

mod connection;
pub mod memory;
mod pipeline;
pub mod redis;
pub(crate) mod tls;

use std::time::Duration;

use compozy_core::Readiness;
use compozy_telemetry::Registry;

use crate::config::CacheConfig;
use crate::error::CacheError;
use crate::health::HealthProbe;

pub use self::memory::MemoryCache;
pub use self::redis::RedisCache;

/// Key-value cache with expiry; cheap to clone.
#[derive(Clone, Debug)]
pub enum Cache {
    Redis(RedisCache),
    Memory(MemoryCache),
}

impl Cache {
    /// Redis when `config.url` is set (pinged once; `Unavailable` when unreachable), else the
    /// in-process cache. Only Redis registers `redis_pool_*` metrics.
    pub async fn connect(config: &CacheConfig, registry: &Registry) -> Result<Cache, CacheError> {
        match &config.url {
            Some(url) => Ok(Cache::Redis(RedisCache::connect(config, url.expose(), registry).await?)),
            None => Ok(Cache::Memory(MemoryCache::new(config))),
        }
    }

    /// `"redis"` or `"memory"`.
    pub fn backend(&self) -> &'static str {
        match self {
            Cache::Redis(_) => redis::BACKEND,
            Cache::Memory(_) => memory::BACKEND,
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        match self {
            Cache::Redis(c) => c.get(key).await,
            Cache::Memory(c) => Ok(c.get(key)),
        }
    }

    /// Stores `value` under `key` for `ttl` (a zero `ttl` is rounded up to 1 ms).
    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        match self {
            Cache::Redis(c) => c.set(key, value, ttl).await,
            Cache::Memory(c) => {
                c.set(key, value, ttl);
                Ok(())
            }
        }
    }

    /// Stores `value` only if `key` is absent (or expired); `true` when it was stored.
    pub async fn set_nx(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, CacheError> {
        match self {
            Cache::Redis(c) => c.set_nx(key, value, ttl).await,
            Cache::Memory(c) => Ok(c.set_nx(key, value, ttl)),
        }
    }

    /// Atomically adds one to the integer at `key` (absent counts as 0) and returns the new
    /// value; the first increment sets the expiry to `ttl`, later ones keep it.
    pub async fn incr(&self, key: &str, ttl: Duration) -> Result<i64, CacheError> {
        match self {
            Cache::Redis(c) => c.incr(key, ttl).await,
            Cache::Memory(c) => c.incr(key, ttl),
        }
    }

    /// Removes `key`; `true` when it existed.
    pub async fn del(&self, key: &str) -> Result<bool, CacheError> {
        match self {
            Cache::Redis(c) => c.del(key).await,
            Cache::Memory(c) => Ok(c.del(key)),
        }
    }

    pub async fn ping(&self) -> Result<(), CacheError> {
        match self {
            Cache::Redis(c) => c.ping().await,
            Cache::Memory(_) => Ok(()),
        }
    }

    /// Registers the `cache` readiness check; for Redis also starts a probe pinging every
    /// `interval` (keep the handle: dropping it stops the probe). The in-process cache is always
    /// ready and needs no probe.
    pub fn spawn_health_probe(&self, readiness: &Readiness, interval: Duration) -> Option<HealthProbe> {
        match self {
            Cache::Redis(c) => Some(c.spawn_health_probe(readiness, interval)),
            Cache::Memory(_) => {
                readiness.register("cache", || compozy_core::ComponentState::ready(memory::BACKEND));
                None
            }
        }
    }
}
