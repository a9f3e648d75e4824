//! Authentication wiring: one authenticator and one rate limiter per process, and the guard
//! (authentication, role, rate-limit group) put in front of each group of routes.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::middleware::from_fn_with_state;
use axum::routing::MethodRouter;
use compozy_auth::secret_file::resolve_hmac_secret;
use compozy_auth::{AuthConfig, AuthMetrics, Authenticator, ClientAddrs, Guard, RateLimiter, Role, authenticate};
use compozy_store::{Cache, Store};
use compozy_telemetry::Registry;

/// A component's routes, as the server's builder takes them.
pub type Routes = Vec<(&'static str, MethodRouter)>;

pub struct Security {
    auth: Arc<Authenticator>,
    limiter: Arc<RateLimiter>,
    clients: Arc<ClientAddrs>,
}

impl Security {
    /// Keys are hashed with the configured secret, else the one kept in `data_dir`. The limiter
    /// counts in Redis when the cache is Redis (one limit across instances), else in memory.
    pub fn new(
        config: &AuthConfig,
        data_dir: &std::path::Path,
        store: &Store,
        cache: &Cache,
        registry: &Registry,
    ) -> anyhow::Result<Self> {
        let auth = authenticator(config, data_dir, store, registry)?;
        let limiter = Arc::new(RateLimiter::new(config.rate_limit.clone(), Some(cache.clone()), registry));
        let clients = Arc::new(ClientAddrs::new(&config.trusted_proxies));
        Ok(Self { auth: Arc::new(auth), limiter, clients })
    }

    /// `routes` behind authentication, counted against rate-limit `group`, open to `role` (any
    /// authenticated caller when `None`).
    pub fn guard(&self, group: &'static str, role: Option<Role>, routes: Routes) -> Routes {
        let guard = self.guard_of(group, role);
        // `route_layer`: a request for a method the route does not serve still gets its 405.
        routes
            .into_iter()
            .map(|(path, r)| (path, r.route_layer(from_fn_with_state(guard.clone(), authenticate))))
            .collect()
    }

    /// The guard of rate-limit `group` for `role`: what the middleware applies, for components
    /// that authenticate by other means (the console's sign-in form and sessions).
    pub fn guard_of(&self, group: &'static str, role: Option<Role>) -> Guard {
        Guard {
            auth: self.auth.clone(),
            limiter: Some(self.limiter.clone()),
            group,
            role,
            clients: self.clients.clone(),
        }
    }

    /// Whether credentials are required (`auth.enabled`).
    pub fn enabled(&self) -> bool {
        self.auth.enabled()
    }

    /// Console sessions, hashed with the key-hashing secret.
    pub fn sessions(&self, ttl: std::time::Duration) -> compozy_auth::Sessions {
        compozy_auth::Sessions::new(self.auth.clone(), ttl)
    }

    /// The key endpoints (group `auth`, stricter) and the admin-only user endpoints (`users`).
    pub fn own_routes(&self) -> Routes {
        let (keys, users): (Routes, Routes) = compozy_auth::handlers::routes(self.auth.clone())
            .into_iter()
            .partition(|(p, _)| p.starts_with("/api/v0/auth"));
        let mut routes = self.guard("auth", None, keys);
        routes.extend(self.guard("users", Some(Role::Admin), users));
        routes
    }
}

/// The authenticator alone (what `compozy admin create-user` needs).
pub fn authenticator(
    config: &AuthConfig,
    data_dir: &std::path::Path,
    store: &Store,
    registry: &Registry,
) -> anyhow::Result<Authenticator> {
    let secret = resolve_hmac_secret(config.hmac_secret.as_ref(), data_dir).context("auth.hmac_secret")?;
    Authenticator::new(config, &secret, store.clone(), AuthMetrics::new(registry)).context("auth.jwt")
}

/// With authentication off, anyone who reaches the listener can run tools: refuse to listen
/// beyond loopback unless the operator said so in `auth.allow_insecure`.
pub fn check_exposure(config: &AuthConfig, listen: SocketAddr) -> anyhow::Result<()> {
    if config.enabled || listen.ip().is_loopback() {
        return Ok(());
    }
    if config.allow_insecure {
        tracing::warn!(%listen, "authentication is OFF on a non-loopback address (auth.allow_insecure: true)");
        return Ok(());
    }
    anyhow::bail!(
        "auth.enabled is false and server.listen ({listen}) is not a loopback address: anyone reaching it could \
         start workflows and tools. Enable auth, listen on 127.0.0.1, or set auth.allow_insecure: true"
    )
}
