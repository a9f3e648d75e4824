//! Fixed-window rate limiting: atomic INCR+PEXPIRE in Redis when the cache is Redis (instances
//! share one limit), a bounded in-process table otherwise. Both backends make the same decision
//! for the same sequence of requests: window `n` of a limit is `[n·w, (n+1)·w)` seconds since the
//! epoch, and a request is allowed while its window's count (itself included) is within the limit.

mod memory;

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use compozy_store::Cache;
use compozy_telemetry::{Counter, Registry, RegistryOptions, catalog};

use crate::config::{Limit, RateLimitConfig};
use crate::metrics::KeyType;
use memory::MemoryWindows;

/// What a request is counted against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RateKey {
    /// A principal: a local user id, or the opaque id of a JWT (issuer, subject).
    User(String),
    Ip(Option<IpAddr>),
}

impl RateKey {
    pub fn key_type(&self) -> KeyType {
        match self {
            RateKey::User(_) => KeyType::User,
            RateKey::Ip(_) => KeyType::Ip,
        }
    }

    fn text(&self) -> String {
        match self {
            RateKey::User(u) => format!("u:{u}"),
            RateKey::Ip(Some(ip)) => format!("ip:{ip}"),
            RateKey::Ip(None) => "ip:unknown".into(),
        }
    }
}

impl Hash for RateKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            RateKey::User(s) => s.hash(state),
            RateKey::Ip(ip) => ip.hash(state),
        }
    }
}

/// The verdict and what the `RateLimit-*` headers say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the window resets.
    pub reset: u64,
}

/// The backend could not answer and the limiter is configured to fail closed.
#[derive(Debug, thiserror::Error)]
#[error("rate-limit backend unavailable")]
pub struct Unavailable;

enum Backend {
    Redis(Cache),
    Memory(MemoryWindows),
}

/// The limiter; share it (`Arc`) between route groups.
pub struct RateLimiter {
    config: RateLimitConfig,
    backend: Backend,
    /// `compozy_rate_limit_unavailable_total{decision="allowed"}`, then `"refused"`.
    unavailable: [Arc<Counter>; 2],
    last_warn: AtomicU64,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match self.backend {
            Backend::Redis(_) => "redis",
            Backend::Memory(_) => "memory",
        };
        f.debug_struct("RateLimiter").field("backend", &backend).finish_non_exhaustive()
    }
}

/// Name of the pseudo-group that counts authentication failures per client address.
pub const AUTH_FAILURES: &str = "auth_failures";

impl RateLimiter {
    /// Redis-backed when `cache` is a Redis cache, in-memory otherwise. Registers
    /// `compozy_rate_limit_unavailable_total` at zero for both decisions.
    pub fn new(config: RateLimitConfig, cache: Option<Cache>, registry: &Registry) -> Self {
        let backend = match cache {
            Some(c @ Cache::Redis(_)) => Backend::Redis(c),
            _ => Backend::Memory(MemoryWindows::new(config.memory_max_keys)),
        };
        let family = registry.counter(&catalog::RATE_LIMIT_UNAVAILABLE);
        let unavailable = [family.get(&["allowed"]), family.get(&["refused"])];
        Self { config, backend, unavailable, last_warn: AtomicU64::new(0) }
    }

    /// An in-memory limiter with a registry of its own (tests, benches).
    pub fn in_memory(config: RateLimitConfig) -> Self {
        Self::new(config, None, &Registry::new(RegistryOptions::default()))
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// Decisions let through because the backend failed (fail-open).
    pub fn fail_open_count(&self) -> u64 {
        self.unavailable[0].get()
    }

    pub fn limit_of(&self, group: &str) -> Limit {
        if group == AUTH_FAILURES {
            return self.config.auth_failures;
        }
        self.config.groups.get(group).copied().unwrap_or(self.config.default)
    }

    /// Counts one request of `key` in `group` and decides.
    pub async fn hit(&self, group: &str, key: &RateKey) -> Result<Decision, Unavailable> {
        self.hit_at(group, key, unix_secs()).await
    }

    /// [`Self::hit`] at `now` seconds since the epoch (tests drive the clock with it).
    pub async fn hit_at(&self, group: &str, key: &RateKey, now: u64) -> Result<Decision, Unavailable> {
        let limit = self.limit_of(group);
        let window = limit.window.as_secs().max(1);
        let idx = now / window;
        let reset = (idx + 1) * window - now;
        let used = match &self.backend {
            Backend::Memory(m) => Ok(m.add(group, key, window, now, 1)),
            Backend::Redis(cache) => self.redis_incr(cache, group, key, idx, window).await,
        };
        let used = match used {
            Ok(n) => n,
            Err(()) if self.config.fail_open => {
                self.unavailable[0].inc();
                return Ok(Decision { allowed: true, limit: limit.requests, remaining: limit.requests, reset });
            }
            Err(()) => {
                self.unavailable[1].inc();
                return Err(Unavailable);
            }
        };
        let allowed = used <= limit.requests;
        Ok(Decision { allowed, limit: limit.requests, remaining: limit.requests.saturating_sub(used), reset })
    }

    async fn redis_incr(&self, cache: &Cache, group: &str, key: &RateKey, idx: u64, window: u64) -> Result<u64, ()> {
        let k = format!("{}{group}:{}:{idx}", self.config.redis_prefix, key.text());
        match cache.incr(&k, Duration::from_secs(window + 1)).await {
            Ok(n) => Ok(u64::try_from(n).unwrap_or(0)),
            Err(e) => {
                self.backend_failed(&e);
                Err(())
            }
        }
    }

    /// Keys held by the in-memory table (0 for Redis).
    pub fn memory_len(&self) -> usize {
        match &self.backend {
            Backend::Memory(m) => m.len(),
            Backend::Redis(_) => 0,
        }
    }

    /// Logs a backend failure, at most once per 10 s (every decision is counted).
    fn backend_failed(&self, error: &dyn std::fmt::Display) {
        let now = unix_secs();
        let last = self.last_warn.load(Ordering::Relaxed);
        if now >= last + 10 && self.last_warn.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            let mode =
                if self.config.fail_open { "failing open: requests are NOT limited" } else { "failing closed: 503" };
            tracing::warn!(error = %error, "rate-limit backend unavailable, {mode}");
        }
    }
}

pub(crate) fn unix_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
