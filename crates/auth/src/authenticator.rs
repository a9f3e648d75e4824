//! Turns a presented credential into an [`AuthUser`], with a warm cache of validated API keys so
//! the hot path does no database round trip.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use compozy_store::Store;
use parking_lot::Mutex;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::config::AuthConfig;
use crate::db::{self, Role};
use crate::jwt::{JwtError, JwtVerifier};
use crate::keys::{self, KeyHash, KeyHasher};
use crate::metrics::{AuthMetrics, Method, Reason};
use crate::principal::Principal;

/// The authenticated caller, put into the request extensions by the middleware.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthUser {
    /// [`Principal::id`]: the local user id, or the opaque id of a JWT principal. Rate limits
    /// count against it, whichever credential of the principal is used.
    pub id: String,
    pub principal: Principal,
    pub role: Role,
    pub method: Method,
    /// The API key used, if any (its id, not the key).
    pub key_id: Option<String>,
}

impl AuthUser {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// A refused credential: the metric reason and what the audit log may name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub method: Method,
    /// Key prefix (`cpz_xxxxxxxx`) or the unverified JWT subject.
    pub subject: Option<String>,
}

struct Warm {
    hash: KeyHash,
    user: AuthUser,
    created_at: i64,
    expires: Instant,
}

/// Validates API keys and JWTs. Cheap to share (`Arc`).
pub struct Authenticator {
    enabled: bool,
    hasher: KeyHasher,
    store: Store,
    jwt: JwtVerifier,
    warm: Mutex<HashMap<KeyHash, Warm>>,
    ttl: Duration,
    capacity: usize,
    max_keys: usize,
    touches: Arc<Semaphore>,
    metrics: AuthMetrics,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("enabled", &self.enabled).field("jwt", &self.jwt).finish_non_exhaustive()
    }
}

impl Authenticator {
    /// `hmac_secret` comes from [`crate::secret_file::resolve_hmac_secret`].
    pub fn new(
        config: &AuthConfig,
        hmac_secret: &compozy_core::Secret,
        store: Store,
        metrics: AuthMetrics,
    ) -> Result<Self, crate::jwt::JwtConfigError> {
        Ok(Self {
            enabled: config.enabled,
            hasher: KeyHasher::new(hmac_secret.expose().as_bytes()),
            store,
            jwt: JwtVerifier::new(&config.jwt)?,
            warm: Mutex::new(HashMap::new()),
            ttl: config.key_cache_ttl,
            capacity: config.key_cache_capacity.max(1),
            max_keys: config.max_keys_per_user,
            // last_used_at writes are best effort: at most this many in flight, else skipped.
            touches: Arc::new(Semaphore::new(8)),
            metrics,
        })
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn metrics(&self) -> &AuthMetrics {
        &self.metrics
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn hasher(&self) -> &KeyHasher {
        &self.hasher
    }

    /// `auth.max_keys_per_user`.
    pub(crate) fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// Validates a bearer token (API key or JWT). Records the token age on success; the caller
    /// records the decision (it may still be refused by the rate limiter).
    pub async fn authenticate(&self, token: &str) -> Result<AuthUser, Refusal> {
        if keys::looks_like_key(token) {
            self.api_key(token).await
        } else if token.bytes().filter(|b| *b == b'.').count() == 2 && !self.jwt.is_empty() {
            self.jwt(token).await
        } else {
            Err(Refusal { reason: Reason::InvalidCredentials, method: Method::Unknown, subject: None })
        }
    }

    async fn api_key(&self, token: &str) -> Result<AuthUser, Refusal> {
        let hash = self.hasher.hash(token);
        let refuse =
            |reason| Refusal { reason, method: Method::ApiKey, subject: Some(keys::shown_prefix(token).into()) };
        if let Some((user, created_at)) = self.warm_hit(&hash) {
            self.metrics.token_age(Method::ApiKey, age_secs(created_at));
            return Ok(user);
        }
        let record = match db::find_key(&self.store, &hash).await {
            Ok(Some(r)) => r,
            Ok(None) => return Err(refuse(Reason::InvalidCredentials)),
            Err(e) => {
                tracing::warn!(error = %e, "api key lookup failed");
                return Err(refuse(Reason::Unknown));
            }
        };
        // The row was found by hash; the constant-time compare guards against a lookup that
        // matched on anything but the full hash (collation, truncation).
        if !bool::from(record.hash.as_slice().ct_eq(&hash)) || record.revoked_at.is_some() {
            return Err(refuse(Reason::InvalidCredentials));
        }
        let user = AuthUser {
            id: record.owner.id(),
            principal: record.owner,
            role: record.role,
            method: Method::ApiKey,
            key_id: Some(record.id.clone()),
        };
        self.remember(hash, &user, record.created_at);
        self.touch(record.id);
        self.metrics.token_age(Method::ApiKey, age_secs(record.created_at));
        Ok(user)
    }

    async fn jwt(&self, token: &str) -> Result<AuthUser, Refusal> {
        match self.jwt.verify(token).await {
            Ok(id) => {
                if let Some(iat) = id.issued_at {
                    self.metrics.token_age(Method::Jwt, age_secs(iat.saturating_mul(1000)));
                }
                let principal = Principal::Jwt { issuer: id.issuer, subject: id.subject };
                Ok(AuthUser { id: principal.id(), principal, role: id.role, method: Method::Jwt, key_id: None })
            }
            Err(e) => Err(Refusal {
                reason: if e == JwtError::Expired { Reason::ExpiredToken } else { Reason::InvalidCredentials },
                method: Method::Jwt,
                subject: crate::jwt::unverified_subject(token),
            }),
        }
    }

    fn warm_hit(&self, hash: &KeyHash) -> Option<(AuthUser, i64)> {
        let mut warm = self.warm.lock();
        let entry = warm.get(hash)?;
        if entry.expires <= Instant::now() || !bool::from(entry.hash.ct_eq(hash)) {
            warm.remove(hash);
            return None;
        }
        Some((entry.user.clone(), entry.created_at))
    }

    fn remember(&self, hash: KeyHash, user: &AuthUser, created_at: i64) {
        let mut warm = self.warm.lock();
        if warm.len() >= self.capacity {
            let now = Instant::now();
            warm.retain(|_, e| e.expires > now);
            if warm.len() >= self.capacity {
                // Still full of live keys: start over rather than grow (a cold miss costs one query).
                warm.clear();
            }
        }
        warm.insert(hash, Warm { hash, user: user.clone(), created_at, expires: Instant::now() + self.ttl });
    }

    /// Drops a key from this process's warm cache (revocation; other instances within the TTL).
    pub fn evict(&self, hash: &[u8]) {
        if let Ok(h) = <KeyHash>::try_from(hash) {
            self.warm.lock().remove(&h);
        }
    }

    /// Drops every warm entry of a user (role change, deletion).
    pub fn evict_user(&self, user_id: &str) {
        self.warm.lock().retain(|_, e| e.user.id != user_id);
    }

    /// Records `last_used_at` in the background, at most once per warm-cache fill.
    fn touch(&self, key_id: String) {
        let Ok(permit) = self.touches.clone().try_acquire_owned() else { return };
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = db::touch_key(&store, &key_id, db::now_millis()).await {
                tracing::debug!(error = %e, "last_used_at update skipped");
            }
            drop(permit);
        });
    }
}

fn age_secs(created_ms: i64) -> f64 {
    (db::now_millis().saturating_sub(created_ms)) as f64 / 1000.0
}
