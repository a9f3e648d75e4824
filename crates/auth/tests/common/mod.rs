//! Test support: a store, the authenticator and a small router behind the middleware.
#![allow(dead_code)]

pub use compozy_testkit::sample;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use compozy_auth::{Limit, RateLimitConfig};
use compozy_store::{Cache, CacheConfig};
use tokio::net::{TcpListener, TcpStream};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Extension};
use axum::routing::get;
use compozy_auth::{AuthConfig, AuthMetrics, AuthUser, Authenticator, Guard, RateLimiter, Role, authenticate};
use compozy_core::Secret;
use compozy_store::{Store, StoreConfig};
use compozy_telemetry::{Format, Registry, RegistryOptions};
use http::{Request, Response};
use http_body_util::BodyExt;
use tower::ServiceExt;

#[allow(unused_imports)]
pub use compozy_testkit::service_missing;

pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const HS_SECRET: &str = "0123456789abcdef0123456789abcdef-test-only";

pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

pub struct Harness {
    pub registry: Arc<Registry>,
    pub auth: Arc<Authenticator>,
    pub limiter: Arc<RateLimiter>,
    pub app: Router,
    _dir: Option<tempfile::TempDir>,
}

/// SQLite in a temp dir, in-memory limiter.
pub async fn harness(config: AuthConfig) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = Registry::new(RegistryOptions::default());
    let store = Store::open(&StoreConfig::default(), dir.path(), &registry).await.expect("store");
    build(config, store, registry, Some(dir), None)
}

/// A store on the PostgreSQL database `db`, with its registry (tests that need the server skip
/// before this).
pub async fn postgres_store(db: &compozy_testkit::postgres::TestDb) -> (Store, Arc<Registry>) {
    let registry = Registry::new(RegistryOptions::default());
    let config = StoreConfig {
        url: Some(Secret::new(format!("postgres://postgres@127.0.0.1:5432/{}", db.name))),
        ..StoreConfig::default()
    };
    let store = Store::open(&config, std::path::Path::new("/nonexistent"), &registry).await.expect("store");
    (store, registry)
}

pub fn build(
    config: AuthConfig,
    store: Store,
    registry: Arc<Registry>,
    dir: Option<tempfile::TempDir>,
    limiter: Option<Arc<RateLimiter>>,
) -> Harness {
    let secret = Secret::new("test-secret-of-at-least-32-bytes!!");
    let auth =
        Arc::new(Authenticator::new(&config, &secret, store, AuthMetrics::new(&registry)).expect("authenticator"));
    let limiter = limiter.unwrap_or_else(|| Arc::new(RateLimiter::in_memory(config.rate_limit.clone())));
    let clients = Arc::new(compozy_auth::ClientAddrs::new(&config.trusted_proxies));
    let guard = |group, role| Guard {
        auth: auth.clone(),
        limiter: Some(limiter.clone()),
        group,
        role,
        clients: clients.clone(),
    };
    let mut api = Router::new().route("/api/v0/things/{id}", get(whoami));
    for (path, route) in compozy_auth::handlers::routes(auth.clone()) {
        if path.starts_with("/api/v0/auth") {
            api = api.route(path, route);
        }
    }
    let api = api.route_layer(axum::middleware::from_fn_with_state(guard("default", None), authenticate));
    let mut admin = Router::new().route("/api/v0/admin/{x}", get(whoami));
    for (path, route) in compozy_auth::handlers::routes(auth.clone()) {
        if path.starts_with("/api/v0/users") {
            admin = admin.route(path, route);
        }
    }
    let admin =
        admin.route_layer(axum::middleware::from_fn_with_state(guard("users", Some(Role::Admin)), authenticate));
    let app = Router::new().route("/public", get(|| async { "public" })).merge(api).merge(admin);
    Harness { registry, auth, limiter, app, _dir: dir }
}

/// The caller: a local user's id, or a token's subject.
async fn whoami(Extension(user): Extension<AuthUser>) -> String {
    match user.principal {
        compozy_auth::Principal::Local(id) => id,
        compozy_auth::Principal::Jwt { subject, .. } => subject,
    }
}

impl Harness {
    pub async fn call(&self, req: Request<Body>) -> (http::StatusCode, http::HeaderMap, String) {
        call(&self.app, req).await
    }

    pub fn metrics(&self) -> String {
        compozy_telemetry::render(&self.registry, Format::Prometheus)
    }

    /// A user and its key, created through the bootstrap function.
    pub async fn user(&self, role: Role) -> (String, String) {
        let (user, key) = compozy_auth::create_user_with_key(&self.auth, &format!("{}@example.com", unique("u")), role)
            .await
            .expect("create user");
        (user.id, key)
    }
}

pub async fn call(app: &Router, req: Request<Body>) -> (http::StatusCode, http::HeaderMap, String) {
    let response: Response<Body> = app.clone().oneshot(req).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (parts.status, parts.headers, String::from_utf8_lossy(&bytes).into_owned())
}

/// GET `path` from `ip` with the given headers.
pub fn get_from(path: &str, ip: &str, headers: &[(&str, &str)]) -> Request<Body> {
    request("GET", path, ip, headers, Body::empty())
}

pub fn request(method: &str, path: &str, ip: &str, headers: &[(&str, &str)], body: Body) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut req = b.body(body).expect("request");
    let addr: SocketAddr = format!("{ip}:40000").parse().expect("addr");
    req.extensions_mut().insert(ConnectInfo(addr));
    req
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

pub fn attempts(text: &str, outcome: &str, reason: &str, method: &str) -> f64 {
    sample(
        text,
        &format!("compozy_auth_attempts_total{{outcome=\"{outcome}\",reason=\"{reason}\",method=\"{method}\"}}"),
    )
}

pub fn limits(prefix: &str, requests: u64) -> RateLimitConfig {
    RateLimitConfig {
        default: Limit { requests, window: Duration::from_secs(60) },
        redis_prefix: prefix.into(),
        ..RateLimitConfig::default()
    }
}

pub async fn redis(url: &str) -> Option<Cache> {
    let config = CacheConfig {
        url: Some(Secret::new(url)),
        response_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
        pool_timeout: Duration::from_millis(500),
        ..CacheConfig::default()
    };
    match Cache::connect(&config, &Registry::new(RegistryOptions::default())).await {
        Ok(c) => Some(c),
        Err(e) => {
            service_missing("Redis", e);
            None
        }
    }
}

/// A TCP proxy to Redis that can be cut.
pub async fn proxy() -> (String, tokio::task::JoinHandle<()>, Arc<tokio::sync::Notify>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cut = Arc::new(tokio::sync::Notify::new());
    let cut2 = cut.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else { return };
            let cut = cut2.clone();
            tokio::spawn(async move {
                let Ok(mut outbound) = TcpStream::connect("127.0.0.1:6379").await else { return };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    () = cut.notified() => {}
                }
            });
        }
    });
    (format!("redis://{addr}"), task, cut)
}

/// A log sink for `tracing_subscriber::fmt().with_writer(...)`.
#[derive(Clone, Default)]
pub struct LogBuf(pub Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuf {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

/// A harness whose limiter counts in Redis through a cuttable proxy.
pub async fn behind_proxy(
    rate_limit: RateLimitConfig,
) -> Option<(Harness, Arc<tokio::sync::Notify>, tokio::task::JoinHandle<()>)> {
    redis(REDIS_URL).await?;
    let (url, task, cut) = proxy().await;
    let cache = redis(&url).await.expect("redis via proxy");
    let config = compozy_auth::AuthConfig { rate_limit, ..Default::default() };
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = Registry::new(RegistryOptions::default());
    let limiter = Arc::new(RateLimiter::new(config.rate_limit.clone(), Some(cache), &registry));
    let store =
        compozy_store::Store::open(&compozy_store::StoreConfig::default(), dir.path(), &registry).await.expect("store");
    Some((build(config, store, registry, Some(dir), Some(limiter)), cut, task))
}

/// `compozy_rate_limit_unavailable_total{decision}` in the harness's registry.
pub fn unavailable(h: &Harness, decision: &str) -> f64 {
    sample(&h.metrics(), &format!("compozy_rate_limit_unavailable_total{{decision=\"{decision}\"}}"))
}
