//! Fixed-window rate limiting: atomic INCR+PEXPIRE in Redis when the cache is Redis (instances
//! share one limit), a bounded in-process map otherwise.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use compozy_store::Cache;
use http::HeaderMap;
use parking_lot::Mutex;

use crate::config::{Limit, RateLimitConfig};
use crate::metrics::KeyType;

/// What a request is counted against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RateKey {
    /// Hex of the key's HMAC (never the key).
    ApiKey(String),
    User(String),
    Ip(Option<IpAddr>),
}

impl RateKey {
    pub fn key_type(&self) -> KeyType {
        match self {
            RateKey::ApiKey(_) => KeyType::ApiKey,
            RateKey::User(_) => KeyType::User,
            RateKey::Ip(_) => KeyType::Ip,
        }
    }

    fn text(&self) -> String {
        match self {
            RateKey::ApiKey(h) => format!("k:{h}"),
            RateKey::User(u) => format!("u:{u}"),
            RateKey::Ip(Some(ip)) => format!("ip:{ip}"),
            RateKey::Ip(None) => "ip:unknown".into(),
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
    fail_open_count: AtomicU64,
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
    /// Redis-backed when `cache` is a Redis cache, in-memory otherwise.
    pub fn new(config: RateLimitConfig, cache: Option<Cache>) -> Self {
        let backend = match cache {
            Some(c @ Cache::Redis(_)) => Backend::Redis(c),
            _ => Backend::Memory(MemoryWindows::new(config.memory_max_keys)),
        };
        Self { config, backend, fail_open_count: AtomicU64::new(0), last_warn: AtomicU64::new(0) }
    }

    pub fn in_memory(config: RateLimitConfig) -> Self {
        Self::new(config, None)
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// Requests let through because the backend failed (fail-open).
    pub fn fail_open_count(&self) -> u64 {
        self.fail_open_count.load(Ordering::Relaxed)
    }

    pub fn limit_of(&self, group: &str) -> Limit {
        if group == AUTH_FAILURES {
            return self.config.auth_failures;
        }
        self.config.groups.get(group).copied().unwrap_or(self.config.default)
    }

    /// Counts one request of `key` in `group` and decides.
    pub async fn hit(&self, group: &str, key: &RateKey) -> Result<Decision, Unavailable> {
        self.count(group, key, 1).await
    }

    /// Whether `key` is already over its limit in `group`, without counting.
    pub async fn peek(&self, group: &str, key: &RateKey) -> Result<Decision, Unavailable> {
        self.count(group, key, 0).await
    }

    async fn count(&self, group: &str, key: &RateKey, add: u64) -> Result<Decision, Unavailable> {
        let limit = self.limit_of(group);
        let window = limit.window.as_secs().max(1);
        let now = unix_secs();
        let idx = now / window;
        let reset = (idx + 1) * window - now;
        let used = match &self.backend {
            Backend::Memory(m) => Ok(m.add(group, key, idx, add)),
            Backend::Redis(cache) => self.redis_count(cache, group, key, idx, window, add).await,
        };
        let used = match used {
            Ok(n) => n,
            Err(()) if self.config.fail_open => {
                self.fail_open_count.fetch_add(1, Ordering::Relaxed);
                return Ok(Decision { allowed: true, limit: limit.requests, remaining: limit.requests, reset });
            }
            Err(()) => return Err(Unavailable),
        };
        let allowed = if add == 0 { used < limit.requests } else { used <= limit.requests };
        Ok(Decision { allowed, limit: limit.requests, remaining: limit.requests.saturating_sub(used), reset })
    }

    async fn redis_count(
        &self,
        cache: &Cache,
        group: &str,
        key: &RateKey,
        idx: u64,
        window: u64,
        add: u64,
    ) -> Result<u64, ()> {
        let k = format!("{}{group}:{}:{idx}", self.config.redis_prefix, key.text());
        let result = if add == 0 {
            cache.get(&k).await.map(|v| v.and_then(|b| String::from_utf8(b).ok()?.parse::<u64>().ok()).unwrap_or(0))
        } else {
            cache.incr(&k, Duration::from_secs(window + 1)).await.map(|n| u64::try_from(n).unwrap_or(0))
        };
        result.map_err(|e| self.backend_failed(&e))
    }

    /// Logs a backend failure, at most once per 10 s (every failure is counted).
    fn backend_failed(&self, error: &dyn std::fmt::Display) {
        let now = unix_secs();
        let last = self.last_warn.load(Ordering::Relaxed);
        if now >= last + 10 && self.last_warn.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            let mode =
                if self.config.fail_open { "failing open: requests are NOT limited" } else { "failing closed: 503" };
            tracing::warn!(error = %error, fail_open_total = self.fail_open_count() + 1, "rate-limit backend unavailable, {mode}");
        }
    }
}

fn unix_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// In-process fixed windows keyed by a keyed 64-bit hash of (group, key), bounded in size.
struct MemoryWindows {
    max_keys: usize,
    hasher: RandomState,
    map: Mutex<HashMap<u64, (u64, u64)>>,
}

/// Key of the bucket shared by all new keys once the map is full of live windows.
const OVERFLOW: u64 = 0;

impl MemoryWindows {
    fn new(max_keys: usize) -> Self {
        Self { max_keys: max_keys.max(1), hasher: RandomState::new(), map: Mutex::new(HashMap::new()) }
    }

    fn slot(&self, group: &str, key: &RateKey) -> u64 {
        let mut h = self.hasher.build_hasher();
        group.hash(&mut h);
        key.hash(&mut h);
        h.finish().max(1)
    }

    /// Adds `add` to the current window of the key; returns the window's count.
    fn add(&self, group: &str, key: &RateKey, idx: u64, add: u64) -> u64 {
        let mut slot = self.slot(group, key);
        let mut map = self.map.lock();
        if !map.contains_key(&slot) && map.len() >= self.max_keys {
            map.retain(|_, (w, _)| *w >= idx);
            if map.len() >= self.max_keys {
                slot = OVERFLOW;
            }
        }
        let entry = map.entry(slot).or_insert((idx, 0));
        if entry.0 != idx {
            *entry = (idx, 0);
        }
        entry.1 += add;
        entry.1
    }
}

impl Hash for RateKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            RateKey::ApiKey(s) | RateKey::User(s) => s.hash(state),
            RateKey::Ip(ip) => ip.hash(state),
        }
    }
}

/// The client address: the peer, unless the peer is a trusted proxy, in which case the rightmost
/// `X-Forwarded-For` entry that is not itself a trusted proxy (leftmost entries are
/// client-controlled and never believed).
pub fn client_ip(peer: Option<SocketAddr>, headers: &HeaderMap, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = peer?.ip().to_canonical();
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>();
    for part in forwarded.iter().rev().flat_map(|v| v.rsplit(',')) {
        match part.trim().parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&ip.to_canonical()) => continue,
            Ok(ip) => return Some(ip.to_canonical()),
            Err(_) => return Some(peer),
        }
    }
    Some(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().expect("header"));
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().expect("ip");
        let peer = Some(SocketAddr::new(proxy, 1234));
        let h = headers("6.6.6.6, 198.51.100.7");
        assert_eq!(client_ip(peer, &h, &[proxy]), Some("198.51.100.7".parse().expect("ip")));
        assert_eq!(client_ip(peer, &h, &[]), Some(proxy));
        assert_eq!(client_ip(peer, &headers("garbage"), &[proxy]), Some(proxy));
    }

    #[test]
    fn the_memory_store_stays_bounded() {
        let m = MemoryWindows::new(4);
        for i in 0..100u32 {
            m.add("g", &RateKey::User(i.to_string()), 7, 1);
        }
        assert!(m.map.lock().len() <= 5);
    }
}
