//! Authentication (API keys, JWT), the auth middleware, rate limiting and the user/key API.
//!
//! Wiring: [`secret_file::resolve_hmac_secret`] → [`Authenticator::new`] →
//! [`RateLimiter::new`] → a [`Guard`] per route group, applied with
//! `axum::middleware::from_fn_with_state(guard, middleware::authenticate)`.

pub mod authenticator;
pub mod config;
pub mod db;
pub mod handlers;
pub mod jwt;
pub mod keys;
pub mod metrics;
pub mod middleware;
pub mod problem;
pub mod ratelimit;
pub mod secret_file;

pub use authenticator::{AuthUser, Authenticator, Refusal};
pub use config::{AuthConfig, IssuerConfig, JwtAlgorithm, JwtConfig, Limit, RateLimitConfig};
pub use db::{Role, User};
pub use handlers::{AdminError, create_user_with_key};
pub use metrics::{AuthMetrics, Method, Reason};
pub use middleware::{Guard, authenticate};
pub use ratelimit::{RateKey, RateLimiter};
