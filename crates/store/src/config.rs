//! Configuration of the store (`database.*`) and the cache (`cache.*`).

use std::path::PathBuf;
use std::time::Duration;

use compozy_core::Secret;
use serde::{Deserialize, Serialize};

/// `database.*`: PostgreSQL when `url` is set, embedded SQLite in the data directory otherwise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `postgres://user:pass@host:port/db?sslmode=...`; user and password percent-encoded.
    /// Unset: SQLite at `<data_dir>/compozy.db`.
    pub url: Option<Secret>,
    /// Pool size; unset means 25 for PostgreSQL and 4 for SQLite (one writer at a time anyway).
    pub max_connections: Option<u32>,
    /// Connections kept open even when idle.
    pub min_connections: u32,
    /// Longest wait for a pooled connection before the operation fails as unavailable.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// Idle connections are closed after this long; unset keeps them.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,
    /// Connections are closed after this age; `0s` never. Unset: 5 minutes on PostgreSQL (a
    /// failover or a connection pooler's rebalancing reaches every connection), never on SQLite
    /// (a local file; each connection is a thread with its own page cache, and recycling them
    /// only churned memory).
    #[serde(with = "humantime_serde")]
    pub max_lifetime: Option<Duration>,
    /// Upper bound on one store operation (acquire plus query), so a dead network cannot hang it.
    #[serde(with = "humantime_serde")]
    pub query_timeout: Duration,
    /// Period of the readiness probe.
    #[serde(with = "humantime_serde")]
    pub health_check_interval: Duration,
    /// Run pending migrations at start-up.
    pub auto_migrate: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: None,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            idle_timeout: Some(Duration::from_secs(60)),
            max_lifetime: None,
            query_timeout: Duration::from_secs(30),
            health_check_interval: Duration::from_secs(10),
            auto_migrate: true,
        }
    }
}

/// Default pool size of the PostgreSQL store.
pub const POSTGRES_DEFAULT_MAX_CONNECTIONS: u32 = 25;
/// Default pool size of the SQLite store.
pub const SQLITE_DEFAULT_MAX_CONNECTIONS: u32 = 4;
/// Default connection lifetime of the PostgreSQL store.
pub const POSTGRES_DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(300);

impl StoreConfig {
    /// The lifetime the pool enforces: the configured one (`0s`: none), else `default`.
    pub(crate) fn max_lifetime_or(&self, default: Option<Duration>) -> Option<Duration> {
        match self.max_lifetime {
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
            None => default,
        }
    }
}

/// `cache.*`: Redis when `url` is set, an in-process cache otherwise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// `redis://[user:pass@]host:port/db`, or `rediss://` for TLS. Unset: in-process cache
    /// (single instance only).
    pub url: Option<Secret>,
    /// CA and client certificate for `rediss://` URLs.
    pub tls: RedisTls,
    /// Prepended to every key, so several deployments can share one Redis.
    pub prefix: String,
    /// Most connections the Redis pool opens.
    pub pool_size: u32,
    /// Longest wait for a pooled connection (including opening one) before failing as unavailable.
    #[serde(with = "humantime_serde")]
    pub pool_timeout: Duration,
    /// Longest time to open one TCP connection to Redis.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest wait for the reply to one command.
    #[serde(with = "humantime_serde")]
    pub response_timeout: Duration,
    /// Idle connections are closed after this long; unset keeps them.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,
    /// Period of the readiness probe.
    #[serde(with = "humantime_serde")]
    pub health_check_interval: Duration,
    /// In-process cache only: most entries kept; expired entries go first when full.
    pub max_entries: usize,
    /// In-process cache only: how often expired entries are swept.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            url: None,
            tls: RedisTls::default(),
            prefix: "compozy:".into(),
            pool_size: 10,
            pool_timeout: Duration::from_secs(4),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(3),
            idle_timeout: Some(Duration::from_secs(300)),
            health_check_interval: Duration::from_secs(10),
            max_entries: 10_000,
            sweep_interval: Duration::from_secs(60),
        }
    }
}

/// `redis.tls.*`: files for `rediss://` URLs (PEM).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisTls {
    /// CA certificates to trust instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain, when the server asks for one (with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key.
    pub key_file: Option<PathBuf>,
}

impl RedisTls {
    pub(crate) fn is_set(&self) -> bool {
        self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some()
    }
}

/// `url` with its password replaced by `***`, for logs and error messages.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if userinfo.contains(':') { format!("{user}:***") } else { user.to_string() };
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_the_password_only() {
        assert_eq!(mask_url("postgres://u:p%20w@h:5432/db?x=1"), "postgres://u:***@h:5432/db?x=1");
        assert_eq!(mask_url("redis://:secret@h:6379/0"), "redis://:***@h:6379/0");
        assert_eq!(mask_url("redis://h:6379"), "redis://h:6379");
        assert_eq!(mask_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(mask_url("garbage with secret"), "***");
    }

    #[test]
    fn defaults_and_unknown_keys() {
        let c: StoreConfig =
            serde_json::from_str(r#"{"acquire_timeout":"250ms","url":"postgres://x"}"#).expect("parse");
        assert_eq!(c.acquire_timeout, Duration::from_millis(250));
        assert!(c.auto_migrate);
        assert_eq!(c.url.as_ref().map(Secret::expose), Some("postgres://x"));
        assert!(serde_json::from_str::<StoreConfig>(r#"{"max_conns":3}"#).is_err());
        let shown = serde_json::to_string(&c).expect("serialize");
        assert!(!shown.contains("postgres://x"), "{shown}");
        let cache: CacheConfig = serde_json::from_str("{}").expect("parse");
        assert_eq!((cache.pool_size, cache.pool_timeout), (10, Duration::from_secs(4)));
    }

    #[test]
    fn max_lifetime_unset_is_the_backend_default_and_zero_is_never() {
        let of = |yaml: &str| serde_json::from_str::<StoreConfig>(yaml).expect("parse");
        let pg = Some(POSTGRES_DEFAULT_MAX_LIFETIME);
        assert_eq!(of("{}").max_lifetime_or(pg), pg);
        assert_eq!(of("{}").max_lifetime_or(None), None);
        assert_eq!(of(r#"{"max_lifetime": "0s"}"#).max_lifetime_or(pg), None);
        assert_eq!(of(r#"{"max_lifetime": "90s"}"#).max_lifetime_or(None), Some(Duration::from_secs(90)));
    }
}
