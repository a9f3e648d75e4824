//! Redis behind a bb8 pool. bb8 keeps cumulative, atomic statistics of every get and every
//! closed connection; the `redis_pool_*` counters are those totals read at collection time, so
//! they equal the true totals however often they are scraped.

use std::time::Duration;

use bb8::Pool;
use compozy_core::Readiness;
use compozy_telemetry::Registry;
use compozy_telemetry::catalog;
use redis::{AsyncConnectionConfig, FromRedisValue};

use crate::config::{CacheConfig, mask_url};
use crate::error::{CacheError, Unavailable};
use crate::health::{HealthProbe, HealthState, spawn_probe};

pub(crate) use super::connection::BACKEND;
use super::connection::pool_get;
pub use super::connection::{RedisConn, RedisManager};
use super::pipeline::Pipeline;

/// Sets the expiry only when the key has none, i.e. on the first increment: INCR and PEXPIRE
/// run as one atomic script.
const INCR_SCRIPT: &str = "local v = redis.call('INCR', KEYS[1]) \
     if redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end \
     return v";

/// Cheap to clone; clones share the pool and the pipeline.
#[derive(Clone)]
pub struct RedisCache {
    pool: Pool<RedisManager>,
    pipeline: Pipeline,
    prefix: String,
    health: std::sync::Arc<HealthState>,
    pool_timeout: Duration,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl RedisCache {
    /// Builds the pool, registers the `redis_pool_*` metrics and pings once.
    pub async fn connect(config: &CacheConfig, url: &str, registry: &Registry) -> Result<RedisCache, CacheError> {
        let client = super::tls::client(url, &config.tls)?;
        let conn_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout));
        let pool = Pool::builder()
            .max_size(config.pool_size.max(1))
            .connection_timeout(config.pool_timeout)
            .idle_timeout(config.idle_timeout)
            .max_lifetime(None)
            .test_on_check_out(true)
            .build_unchecked(RedisManager::new(client, conn_config));
        register_metrics(registry, &pool, config.pool_size.max(1));
        let cache = RedisCache {
            pipeline: Pipeline::spawn(pool.clone(), config.pool_size.max(1) as usize),
            pool,
            prefix: config.prefix.clone(),
            health: HealthState::new(BACKEND),
            pool_timeout: config.pool_timeout,
        };
        cache.ping().await?;
        tracing::info!(url = %mask_url(url), pool_size = config.pool_size, "redis cache connected");
        Ok(cache)
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// A pooled connection (one pool get), for commands this API does not cover.
    pub async fn get_conn(&self) -> Result<bb8::PooledConnection<'_, RedisManager>, CacheError> {
        pool_get(&self.pool).await
    }

    /// Runs `cmd` through the pipeline (with the commands other callers issue meanwhile).
    async fn run<T: FromRedisValue>(&self, cmd: &mut redis::Cmd) -> Result<T, CacheError> {
        use tracing::Instrument;
        // A client span (inside a trace only): the wait for this command's pipelined reply.
        let span = compozy_telemetry::child_span!("redis pipeline", otel.kind = "client", db.system.name = "redis");
        let value = self.pipeline.send(std::mem::take(cmd)).instrument(span).await?;
        T::from_redis_value(value).map_err(|e| CacheError::Command(e.to_string()))
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        self.run(redis::cmd("GET").arg(self.key(key))).await
    }

    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        let ms = ttl_millis(ttl);
        self.run(redis::cmd("SET").arg(self.key(key)).arg(value).arg("PX").arg(ms)).await
    }

    pub async fn set_nx(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, CacheError> {
        let ms = ttl_millis(ttl);
        let reply: Option<String> =
            self.run(redis::cmd("SET").arg(self.key(key)).arg(value).arg("PX").arg(ms).arg("NX")).await?;
        Ok(reply.is_some())
    }

    pub async fn incr(&self, key: &str, ttl: Duration) -> Result<i64, CacheError> {
        let ms = ttl_millis(ttl);
        self.run(redis::cmd("EVAL").arg(INCR_SCRIPT).arg(1).arg(self.key(key)).arg(ms)).await
    }

    pub async fn del(&self, key: &str) -> Result<bool, CacheError> {
        let n: i64 = self.run(redis::cmd("DEL").arg(self.key(key))).await?;
        Ok(n > 0)
    }

    pub async fn ping(&self) -> Result<(), CacheError> {
        self.run::<()>(&mut redis::cmd("PING")).await
    }

    /// Starts a task pinging every `interval` and registers the `cache` readiness check, which
    /// reads the last result without I/O. Dropping the handle stops the probe.
    pub fn spawn_health_probe(&self, readiness: &Readiness, interval: Duration) -> HealthProbe {
        self.health.register(readiness, "cache");
        let cache = self.clone();
        // Longer than the pool timeout, so the pool's own timeout (and its counter) fires first.
        let timeout = self.pool_timeout + Duration::from_secs(1);
        spawn_probe(self.health.clone(), interval, timeout, move || {
            let cache = cache.clone();
            async move {
                cache.ping().await.map_err(|e| match e {
                    CacheError::Unavailable { reason, .. } => reason,
                    _ => Unavailable::Unreachable,
                })
            }
        })
    }
}

/// Gauges from the pool's state and counters from its cumulative statistics, all read at
/// collection time.
fn register_metrics(registry: &Registry, pool: &Pool<RedisManager>, size: u32) {
    registry.observe(&catalog::REDIS_POOL_SIZE, move |emit| emit(&[], f64::from(size)));
    let stat = |def, read: fn(&bb8::State) -> u64| {
        let pool = pool.clone();
        // u64 → f64 is exact below 2^53, far above any realistic count.
        registry.observe(def, move |emit| emit(&[], read(&pool.state()) as f64));
    };
    stat(&catalog::REDIS_POOL_TOTAL_CONNS, |s| u64::from(s.connections));
    stat(&catalog::REDIS_POOL_IDLE_CONNS, |s| u64::from(s.idle_connections));
    stat(&catalog::REDIS_POOL_HITS, |s| s.statistics.get_direct);
    // bb8 counts a get as waited when it found no idle connection (it then opened one or took a
    // returned one): the catalog's miss. A get that then timed out is counted as timed out.
    stat(&catalog::REDIS_POOL_MISSES, |s| s.statistics.get_waited);
    stat(&catalog::REDIS_POOL_TIMEOUTS, |s| s.statistics.get_timed_out);
    stat(&catalog::REDIS_POOL_STALE_CONNS, |s| {
        let st = &s.statistics;
        st.connections_closed_broken
            + st.connections_closed_invalid
            + st.connections_closed_max_lifetime
            + st.connections_closed_idle_timeout
    });
}

/// Expiry in whole milliseconds, at least 1 (Redis rejects `PX 0`).
fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}
