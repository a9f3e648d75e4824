//! `auth.*` configuration.

use std::net::IpAddr;
use std::time::Duration;

use compozy_core::Secret;
use serde::{Deserialize, Serialize};

/// `auth.*`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// When false the middleware lets every request through as anonymous and records nothing.
    pub enabled: bool,
    /// Lets `enabled: false` serve on a non-loopback address (refused otherwise).
    pub allow_insecure: bool,
    /// Server secret keying HMAC-SHA-256 of API keys. Unset: generated once and kept in
    /// `<data_dir>/auth_hmac_secret` (mode 0600); see [`crate::secret_file`].
    pub hmac_secret: Option<Secret>,
    /// How long a validated key is trusted without asking the database: the revocation bound on
    /// other instances (revocation evicts locally at once).
    #[serde(with = "humantime_serde")]
    pub key_cache_ttl: Duration,
    /// Most validated keys kept in the warm cache.
    pub key_cache_capacity: usize,
    pub jwt: JwtConfig,
    pub rate_limit: RateLimitConfig,
    /// Peers whose `X-Forwarded-For` is believed (the rightmost untrusted address is the client).
    pub trusted_proxies: Vec<IpAddr>,
    /// Active (unrevoked) keys a principal may hold; minting beyond it answers 409.
    pub max_keys_per_user: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            allow_insecure: false,
            hmac_secret: None,
            key_cache_ttl: Duration::from_secs(30),
            key_cache_capacity: 10_000,
            jwt: JwtConfig::default(),
            rate_limit: RateLimitConfig::default(),
            trusted_proxies: Vec::new(),
            max_keys_per_user: 25,
        }
    }
}

/// `auth.jwt.*`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    pub issuers: Vec<IssuerConfig>,
    /// Clock skew tolerated on `exp` and `nbf`.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// How long a JWKS fetched from `jwks_url` is used before it is fetched again.
    #[serde(with = "humantime_serde")]
    pub jwks_cache_ttl: Duration,
    /// Least time between two fetches of one issuer's JWKS (a token with an unknown `kid` asks
    /// for one; this bounds what a stream of made-up `kid`s can cost the identity provider).
    #[serde(with = "humantime_serde")]
    pub jwks_refetch_interval: Duration,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            leeway: Duration::from_secs(30),
            jwks_cache_ttl: Duration::from_secs(600),
            jwks_refetch_interval: Duration::from_secs(30),
        }
    }
}

/// One trusted token issuer; its algorithm is pinned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Expected `iss`.
    pub issuer: String,
    /// Accepted `aud` values (one must match).
    pub audiences: Vec<String>,
    pub algorithm: JwtAlgorithm,
    /// HS256 shared secret.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// RS256 / ES256 / EdDSA public key, PEM.
    #[serde(default)]
    pub public_key_pem: Option<String>,
    /// Or a JWKS file (RFC 7517) of such keys, chosen by the token's `kid`; read at start.
    #[serde(default)]
    pub jwks_file: Option<std::path::PathBuf>,
    /// Or the `https://` URL the issuer publishes its JWKS at (fetched, cached, refreshed).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// PEM roots trusted for `jwks_url` instead of the system's (a private identity provider).
    #[serde(default)]
    pub jwks_ca_file: Option<std::path::PathBuf>,
    /// Claim holding the role (`admin` or `user`); absent means `user`.
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
}

fn default_role_claim() -> String {
    "role".into()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    HS256,
    RS256,
    ES256,
    EdDSA,
}

/// `auth.rate_limit.*`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// Limit of route groups without their own entry.
    pub default: Limit,
    /// Per route group (the name given to [`crate::RateLimiter::layer`]), e.g. `auth`.
    pub groups: std::collections::BTreeMap<String, Limit>,
    /// Failed authentications allowed per client address per window; beyond it failures are
    /// answered 429 (a valid credential is never refused by it).
    pub auth_failures: Limit,
    /// Let requests through when Redis cannot answer (logged and counted); false refuses with 503.
    pub fail_open: bool,
    /// Entries (group, principal or address) kept by the in-memory limiter; when full, expired
    /// windows go, then the least recently used entries.
    pub memory_max_keys: usize,
    /// Prefix of the limiter's Redis keys.
    pub redis_prefix: String,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        let mut groups = std::collections::BTreeMap::new();
        groups.insert("auth".to_string(), Limit { requests: 20, window: Duration::from_secs(60) });
        groups.insert("users".to_string(), Limit { requests: 30, window: Duration::from_secs(60) });
        Self {
            enabled: true,
            default: Limit { requests: 100, window: Duration::from_secs(60) },
            groups,
            auth_failures: Limit { requests: 10, window: Duration::from_secs(300) },
            fail_open: true,
            memory_max_keys: 100_000,
            redis_prefix: "rl:".into(),
        }
    }
}

/// `requests` per fixed `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub requests: u64,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_the_default_and_unknown_keys_are_refused() {
        let c: AuthConfig = serde_json::from_str("{}").expect("parse");
        assert_eq!(c, AuthConfig::default());
        assert!(serde_json::from_str::<AuthConfig>(r#"{"enabeld": false}"#).is_err());
        let shown = serde_json::to_string(&AuthConfig {
            hmac_secret: Some(Secret::new("super-secret-value-of-32-bytes-or-more")),
            ..AuthConfig::default()
        })
        .expect("serialize");
        assert!(!shown.contains("super-secret"), "{shown}");
    }
}
