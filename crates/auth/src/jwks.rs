//! JWK sets (RFC 7517): parsed against an issuer's pinned algorithm, from a file read at start or
//! from an `https://` URL, cached and fetched again when a token names an unknown `kid` (at most
//! once per `auth.jwt.jwks_refetch_interval`) and when the cache is older than
//! `auth.jwt.jwks_cache_ttl`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use parking_lot::{Mutex, RwLock};

use crate::config::JwtAlgorithm;

/// Largest JWKS document accepted from a URL.
const MAX_JWKS_BYTES: usize = 1 << 20;
/// Time allowed for one JWKS fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// One key (a secret, a PEM, or a one-key set without `kid`), or keys chosen by `kid`.
pub(crate) enum KeySet {
    One(DecodingKey),
    ByKid(HashMap<String, DecodingKey>),
}

impl KeySet {
    pub(crate) fn for_kid(&self, kid: Option<&str>) -> Option<&DecodingKey> {
        match self {
            KeySet::One(key) => Some(key),
            KeySet::ByKid(keys) => keys.get(kid?),
        }
    }
}

/// The keys of a JWKS document. Every key must be of the pinned algorithm's family (and, when
/// it names one, that algorithm): a symmetric or foreign key in the set is refused, never a way
/// around the pin.
pub(crate) fn parse(text: &str, algorithm: JwtAlgorithm) -> Result<KeySet, String> {
    use jsonwebtoken::jwk::{AlgorithmParameters as P, JwkSet, KeyAlgorithm};
    let set: JwkSet = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let (family_ok, named): (fn(&P) -> bool, KeyAlgorithm) = match algorithm {
        JwtAlgorithm::RS256 => (|p| matches!(p, P::RSA(_)), KeyAlgorithm::RS256),
        JwtAlgorithm::ES256 => (|p| matches!(p, P::EllipticCurve(_)), KeyAlgorithm::ES256),
        JwtAlgorithm::EdDSA => (|p| matches!(p, P::OctetKeyPair(_)), KeyAlgorithm::EdDSA),
        JwtAlgorithm::HS256 => return Err("a JWKS is for public-key algorithms".into()),
    };
    let mut by_kid = HashMap::new();
    for jwk in &set.keys {
        let kid = jwk.common.key_id.clone().unwrap_or_default();
        if !family_ok(&jwk.algorithm) || jwk.common.key_algorithm.is_some_and(|a| a != named) {
            return Err(format!("key {kid:?} is not a {algorithm:?} key"));
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {kid:?}: {e}"))?;
        by_kid.insert(kid, key);
    }
    match by_kid.len() {
        0 => Err("the set has no keys".into()),
        1 if by_kid.contains_key("") => Ok(KeySet::One(by_kid.into_values().next().ok_or("the set has no keys")?)),
        _ if by_kid.contains_key("") => Err("keys need a `kid` when there are several".into()),
        _ => Ok(KeySet::ByKid(by_kid)),
    }
}

/// How a remote set is kept.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Refresh {
    pub ttl: Duration,
    pub min_interval: Duration,
}

/// A JWKS fetched from an issuer's `https://` URL.
pub(crate) struct RemoteJwks {
    issuer: String,
    url: reqwest::Url,
    client: reqwest::Client,
    algorithm: JwtAlgorithm,
    refresh: Refresh,
    keys: RwLock<Option<Arc<KeySet>>>,
    /// Last successful fetch.
    fetched: Mutex<Option<Instant>>,
    /// Last attempt, successful or not (the refetch rate limit).
    attempted: Mutex<Option<Instant>>,
    /// One fetch at a time; requests that need one wait for it.
    fetching: tokio::sync::Mutex<()>,
}

impl RemoteJwks {
    /// `ca_pem`: the only roots trusted for this URL when given (a private identity provider),
    /// else the system's.
    pub(crate) fn new(
        issuer: &str,
        url: &str,
        ca_pem: Option<&[u8]>,
        algorithm: JwtAlgorithm,
        refresh: Refresh,
    ) -> Result<Self, String> {
        let url = reqwest::Url::parse(url).map_err(|e| format!("jwks_url: {e}"))?;
        if url.scheme() != "https" {
            return Err("jwks_url must be an https:// URL".into());
        }
        if algorithm == JwtAlgorithm::HS256 {
            return Err("a JWKS is for public-key algorithms".into());
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder().https_only(true).timeout(FETCH_TIMEOUT);
        if let Some(pem) = ca_pem {
            let roots = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| format!("jwks_ca_file: {e}"))?;
            builder = builder.tls_certs_only(roots);
        }
        let client = builder.build().map_err(|e| format!("jwks client: {e}"))?;
        Ok(Self {
            issuer: issuer.into(),
            url,
            client,
            algorithm,
            refresh,
            keys: RwLock::new(None),
            fetched: Mutex::new(None),
            attempted: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// The current set when it is fresh and knows `kid`; otherwise the set after a fetch (unless
    /// one was attempted less than `min_interval` ago), or the stale set when the fetch fails.
    pub(crate) async fn keys_for(&self, kid: Option<&str>) -> Option<Arc<KeySet>> {
        let current = self.keys.read().clone();
        let fresh = self.fetched.lock().is_some_and(|t| t.elapsed() < self.refresh.ttl);
        if fresh && current.as_ref().is_some_and(|s| s.for_kid(kid).is_some()) {
            return current;
        }
        let _one = self.fetching.lock().await;
        let recent = self.attempted.lock().is_some_and(|t| t.elapsed() < self.refresh.min_interval);
        if !recent {
            *self.attempted.lock() = Some(Instant::now());
            match self.fetch().await {
                Ok(set) => {
                    *self.keys.write() = Some(Arc::new(set));
                    *self.fetched.lock() = Some(Instant::now());
                }
                Err(e) => tracing::warn!(issuer = %self.issuer, error = %e, "JWKS fetch failed; keeping the keys held"),
            }
        }
        self.keys.read().clone()
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let mut response = self.client.get(self.url.clone()).send().await.map_err(|e| e.without_url().to_string())?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.without_url().to_string())? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("document larger than {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(body).map_err(|_| "document is not UTF-8".to_string())?;
        let set = parse(&text, self.algorithm)?;
        tracing::info!(issuer = %self.issuer, "JWKS fetched");
        Ok(set)
    }
}
