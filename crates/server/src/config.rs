//! The `server` and `monitoring` configuration blocks.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use compozy_core::Secret;
use serde::{Deserialize, Serialize};

/// The engine's default listen address: loopback, so a fresh `compozy serve` exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5001";

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the API (and, unless `monitoring.listen` is set, of `/metrics`).
    pub listen: SocketAddr,
    /// Longest time a handler may take to produce a response (503 after it).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Largest request body accepted, in bytes (413 beyond it).
    pub body_limit: usize,
    /// How long shutdown waits for in-flight requests before closing connections.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// How long `/readyz` answers 503 before the listener closes on shutdown, so load
    /// balancers stop sending first (0 to close at once).
    #[serde(with = "humantime_serde")]
    pub drain_delay: Duration,
    /// Longest time from accepting a connection to its first complete request head; a
    /// connection that has sent no whole head by then is closed.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// How long a keep-alive connection may stay without a new request (HTTP/1.1: from the end
    /// of a response to the next complete request head) before the server closes it.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Connections served at once; more are closed at accept. `0` derives the cap from the
    /// process's file limit, leaving room for the store, the cache and files.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 5001))),
            request_timeout: Duration::from_secs(30),
            body_limit: 2 * 1024 * 1024,
            shutdown_timeout: Duration::from_secs(30),
            drain_delay: Duration::ZERO,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            max_connections: 0,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitoringConfig {
    /// Prefix of every engine metric. Shipped alerts and dashboards assume `compozy`.
    pub namespace: String,
    /// Path of the scrape endpoint.
    pub path: String,
    /// Serve `/metrics` on this address instead of the API listener.
    pub listen: Option<SocketAddr>,
    /// When set, scrapes must send `Authorization: Bearer <token>`.
    pub bearer_token: Option<Secret>,
    /// Default series cap per metric family (the cardinality guard).
    pub series_limit: usize,
    /// Per-family caps by metric name, e.g. `compozy_auth_rate_limit_hits_total: 500`.
    pub series_limits: BTreeMap<String, usize>,
    pub otlp: OtlpConfig,
    pub tracing: TracingConfig,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        Self {
            namespace: "compozy".into(),
            path: "/metrics".into(),
            listen: None,
            bearer_token: None,
            series_limit: 2000,
            series_limits: BTreeMap::new(),
            otlp: OtlpConfig::default(),
            tracing: TracingConfig::default(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// Collector base URL (`http://collector:4318`); push is off when unset.
    pub endpoint: Option<String>,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Extra request headers, e.g. `authorization: "Bearer ${OTLP_TOKEN}"`.
    pub headers: BTreeMap<String, Secret>,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(10),
            headers: BTreeMap::new(),
        }
    }
}

/// Spans exported over OTLP (docs/tracing.md).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    /// `false` exports no spans even when an endpoint is set.
    pub enabled: bool,
    /// Collector base URL for spans; unset, spans go to `monitoring.otlp.endpoint` (with its
    /// headers and timeout). Tracing is off when neither is set.
    pub endpoint: Option<String>,
    /// Share of new traces sampled, 0 to 1; a request that arrives with a `traceparent` keeps
    /// its caller's decision (parent-based sampling).
    pub sample_ratio: f64,
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self { enabled: true, endpoint: None, sample_ratio: 0.01 }
    }
}

impl MonitoringConfig {
    /// The collector spans are exported to, when tracing is on.
    pub fn traces_endpoint(&self) -> Option<&str> {
        if !self.tracing.enabled {
            return None;
        }
        self.tracing.endpoint.as_deref().or(self.otlp.endpoint.as_deref())
    }
}

/// A configuration value that failed validation: which key, what was found, what was expected.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: `{key}` = {value:?}: expected {expected}")]
pub struct InvalidConfig {
    pub key: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl MonitoringConfig {
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let ns = &self.namespace;
        let valid_ns = ns.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && ns.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid_ns {
            return Err(InvalidConfig {
                key: "monitoring.namespace",
                value: ns.clone(),
                expected: "lower-case letters, digits and _, not starting with a digit",
            });
        }
        let p = &self.path;
        let reserved = ["/", "/healthz", "/readyz"].contains(&p.as_str()) || p.starts_with("/api/");
        let bad_segment = p.split('/').any(|seg| seg.starts_with([':', '*']));
        if !p.starts_with('/') || reserved || bad_segment || p.contains(['?', '#', '{', '}', ' ']) {
            return Err(InvalidConfig {
                key: "monitoring.path",
                value: p.clone(),
                expected: "an absolute path outside /api/, other than /healthz and /readyz, without ?, #, {}, : or * segments",
            });
        }
        if self.bearer_token.as_ref().is_some_and(|t| t.expose().trim().is_empty()) {
            return Err(InvalidConfig {
                key: "monitoring.bearer_token",
                value: "(empty)".into(),
                expected: "a non-empty token, or no key at all",
            });
        }
        if self.series_limit == 0 {
            return Err(InvalidConfig { key: "monitoring.series_limit", value: "0".into(), expected: "at least 1" });
        }
        if let Some(endpoint) = &self.otlp.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(InvalidConfig {
                key: "monitoring.otlp.endpoint",
                value: endpoint.clone(),
                expected: "an http:// or https:// URL",
            });
        }
        if let Some(endpoint) = &self.tracing.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(InvalidConfig {
                key: "monitoring.tracing.endpoint",
                value: endpoint.clone(),
                expected: "an http:// or https:// URL",
            });
        }
        if !(0.0..=1.0).contains(&self.tracing.sample_ratio) {
            return Err(InvalidConfig {
                key: "monitoring.tracing.sample_ratio",
                value: self.tracing.sample_ratio.to_string(),
                expected: "a number from 0 to 1",
            });
        }
        Ok(())
    }
}

impl ServerConfig {
    /// The connection cap in force: `max_connections`, or the one derived from the current soft
    /// file limit ([`crate::connections::derived_limit`]).
    pub fn connection_limit(&self) -> usize {
        if self.max_connections > 0 {
            return self.max_connections;
        }
        crate::connections::derived_limit(rustix::process::getrlimit(rustix::process::Resource::Nofile).current)
    }

    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if self.body_limit == 0 {
            return Err(InvalidConfig { key: "server.body_limit", value: "0".into(), expected: "at least 1 byte" });
        }
        if self.header_read_timeout.is_zero() {
            return Err(InvalidConfig {
                key: "server.header_read_timeout",
                value: "0s".into(),
                expected: "a positive duration",
            });
        }
        if self.idle_timeout.is_zero() {
            return Err(InvalidConfig {
                key: "server.idle_timeout",
                value: "0s".into(),
                expected: "a positive duration",
            });
        }
        if self.request_timeout.is_zero() {
            return Err(InvalidConfig {
                key: "server.request_timeout",
                value: "0s".into(),
                expected: "a positive duration",
            });
        }
        Ok(())
    }
}
