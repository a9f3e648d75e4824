//! Authentication (API keys, JWT), the auth middleware, rate limiting and the user/key API.
//!
//! Wiring (server start-up; compiled as a doctest, so it cannot drift from the API):
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use axum::{Router, middleware::from_fn_with_state, routing::get};
//! # use compozy_auth::{AuthConfig, AuthMetrics, Authenticator, ClientAddrs, Guard, RateLimiter, authenticate, secret_file};
//! # fn wire(config: AuthConfig, data_dir: &std::path::Path, store: compozy_store::Store,
//! #     cache: compozy_store::Cache, registry: &compozy_telemetry::Registry) -> Result<(), Box<dyn std::error::Error>> {
//! let secret = secret_file::resolve_hmac_secret(config.hmac_secret.as_ref(), data_dir)?;
//! let auth = Arc::new(Authenticator::new(&config, &secret, store.clone(), AuthMetrics::new(registry))?);
//! let limiter = Arc::new(RateLimiter::new(config.rate_limit.clone(), Some(cache.clone()), registry));
//! let clients = Arc::new(ClientAddrs::new(&config.trusted_proxies));
//! let guard = |group, role| Guard { auth: auth.clone(), limiter: Some(limiter.clone()), group, role, clients: clients.clone() };
//! // Per route group, as a route layer (so the route template is known):
//! let api: Router = Router::new()
//!     .route("/api/v0/executions", get(|| async { "runs" }))
//!     .route_layer(from_fn_with_state(guard("default", None), authenticate));
//! // Serve with `into_make_service_with_connect_info::<SocketAddr>()` so the peer address is known.
//! # Ok(()) }
//! ```
//!
//! See `docs/security.md` for the design and what is logged.

pub mod authenticator;
pub mod client_addr;
pub mod config;
pub mod db;
pub mod handlers;
pub(crate) mod jwks;
pub mod jwt;
pub mod keys;
pub mod metrics;
pub mod middleware;
pub mod principal;
pub mod problem;
pub mod ratelimit;
pub mod secret_file;
pub mod sessions;

pub use authenticator::{AuthUser, Authenticator, Refusal};
pub use client_addr::ClientAddrs;
pub use config::{AuthConfig, IssuerConfig, JwtAlgorithm, JwtConfig, Limit, RateLimitConfig};
pub use db::{Role, User};
pub use handlers::{AdminError, create_user_with_key};
pub use metrics::{AuthMetrics, Method, Reason};
pub use middleware::{Guard, authenticate};
pub use principal::Principal;
pub use ratelimit::{RateKey, RateLimiter};
pub use sessions::Sessions;
