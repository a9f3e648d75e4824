//! The application: routes from every component, the middleware stack, health endpoints.
//!
//! Stack order, outermost first: metrics → request id → catch panic → problem normalisation
//! → body limit → timeout → router (→ per-route tag and declared-length check → handler).
//! The metrics layer sits outside everything that can refuse a request, so refusals are
//! measured; the request id is set just inside it, so the metrics layer reads it from the
//! response for its log line; panics are caught inside both, so a panic is recorded as the
//! 500 actually sent, with its request id.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use compozy_core::{ComponentState, Readiness};
use compozy_telemetry::{Format, Registry, render};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::json;
use tower::layer::util::{Identity, Stack};
use tower::util::MapResponseLayer;
use tower::{Layer, ServiceBuilder};
use tower_http::timeout::TimeoutLayer;

use crate::config::{MonitoringConfig, ServerConfig};
use crate::connections::Connections;
use crate::http_metrics::HttpMetrics;
use crate::layers::body_limit::{BodyLimitLayer, DeclaredLengthLayer};
use crate::layers::catch_panic::CatchPanicLayer;
use crate::layers::metrics::{MetricsLayer, MetricsService};
use crate::layers::request_id::RequestIdLayer;
use crate::layers::route_tag::RouteTagLayer;
use crate::openapi;
use crate::problem::{Problem, ProblemType, normalize};

/// axum's extractors refuse bodies over 2 MiB unless told otherwise.
const AXUM_DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// Shared state of the built-in endpoints.
#[derive(Clone)]
struct Probes {
    registry: Arc<Registry>,
    readiness: Readiness,
    bearer: Option<Arc<str>>,
}

/// Collects routes from components, then builds the served application.
pub struct AppBuilder {
    server: ServerConfig,
    monitoring: MonitoringConfig,
    registry: Arc<Registry>,
    readiness: Readiness,
    routes: Vec<(String, MethodRouter)>,
    /// Routes outside the API (the console's pages): served and measured like the others, not
    /// part of the OpenAPI document.
    pages: Vec<(String, MethodRouter)>,
}

impl AppBuilder {
    pub fn new(
        server: ServerConfig,
        monitoring: MonitoringConfig,
        registry: Arc<Registry>,
        readiness: Readiness,
    ) -> Self {
        Self { server, monitoring, registry, readiness, routes: Vec::new(), pages: Vec::new() }
    }

    /// Adds a route; `path` is an axum template such as `/api/v0/executions/{id}` and becomes
    /// the `path` label of its requests.
    pub fn route(mut self, path: &str, method_router: MethodRouter) -> Self {
        self.routes.push((path.to_string(), method_router));
        self
    }

    /// Adds several routes at once (a component's `routes()`).
    pub fn routes(mut self, routes: impl IntoIterator<Item = (&'static str, MethodRouter)>) -> Self {
        self.routes.extend(routes.into_iter().map(|(p, r)| (p.to_string(), r)));
        self
    }

    /// Adds routes that are not part of the API (web pages): like [`AppBuilder::routes`], but
    /// left out of `/api/v0/openapi.json`.
    pub fn pages(mut self, routes: impl IntoIterator<Item = (String, MethodRouter)>) -> Self {
        self.pages.extend(routes);
        self
    }

    pub fn build(self) -> App {
        let draining = Arc::new(AtomicBool::new(false));
        let flag = draining.clone();
        self.readiness.register("server", move || {
            if flag.load(Ordering::Relaxed) {
                ComponentState::not_ready("http", "shutting down")
            } else {
                ComponentState::ready("http")
            }
        });
        let probes = Probes {
            registry: self.registry.clone(),
            readiness: self.readiness.clone(),
            bearer: self.monitoring.bearer_token.as_ref().map(|s| Arc::from(s.expose())),
        };
        let separate_metrics = self.monitoring.listen.is_some();
        let mut routes: Vec<(String, MethodRouter)> =
            vec![("/healthz".into(), get(healthz)), ("/readyz".into(), get(readyz).with_state(probes.clone()))];
        if !separate_metrics {
            routes.push((self.monitoring.path.clone(), get(metrics).with_state(probes.clone())));
        }
        routes.extend(self.routes);
        let document = {
            let mut templates: Vec<&str> = routes.iter().map(|(p, _)| p.as_str()).collect();
            templates.push(openapi::PATH);
            openapi::body(&templates, &self.monitoring.path)
        };
        routes.push((openapi::PATH.into(), get(openapi::serve).with_state(document)));
        routes.extend(self.pages);
        let templates: Vec<&str> = routes.iter().map(|(p, _)| p.as_str()).collect();
        let http_metrics = Arc::new(HttpMetrics::new(&self.registry, &templates));
        let mut router = Router::new();
        for (index, (path, method_router)) in routes.into_iter().enumerate() {
            // Index 0 of the metrics table is `unmatched`, so route i is tagged i + 1.
            // One `layer` call: axum boxes the route once per call, so both go in together.
            let per_route = (RouteTagLayer(index + 1), DeclaredLengthLayer(self.server.body_limit));
            router = router.route(&path, method_router.layer(per_route));
        }
        router = router.fallback(not_found);
        if self.server.body_limit > AXUM_DEFAULT_BODY_LIMIT {
            router = router.layer(DefaultBodyLimit::max(self.server.body_limit));
        }
        let metrics_router = separate_metrics
            .then(|| Router::new().route(&self.monitoring.path, get(metrics).with_state(probes)).fallback(not_found));
        let metrics_layer = MetricsLayer::new(http_metrics.clone());
        let connections = Arc::new(Connections::new(&self.registry, self.server.connection_limit()));
        App { server: self.server, router, http_metrics, metrics_layer, metrics_router, draining, connections }
    }
}

/// The built application, ready to serve.
pub struct App {
    pub(crate) server: ServerConfig,
    router: Router,
    http_metrics: Arc<HttpMetrics>,
    metrics_layer: MetricsLayer,
    pub(crate) metrics_router: Option<Router>,
    pub(crate) draining: Arc<AtomicBool>,
    connections: Arc<Connections>,
}

/// Every layer but the metrics layer, around the router: the baseline of overhead
/// measurements, and what the metrics layer wraps.
pub type UnmeteredService = <UnmeteredStack as tower::Layer<Router>>::Service;

/// The full middleware stack around the router, as served to hyper.
pub type HttpService = MetricsService<UnmeteredService>;

type UnmeteredStack = Stack<
    TimeoutLayer,
    Stack<
        BodyLimitLayer,
        Stack<MapResponseLayer<fn(Response) -> Response>, Stack<CatchPanicLayer, Stack<RequestIdLayer, Identity>>>,
    >,
>;

impl App {
    /// The application as one tower service (what the listener serves; tests and benchmarks
    /// call it directly).
    pub fn service(&self) -> HttpService {
        self.metrics_layer.layer(self.service_unmetered())
    }

    /// The same stack without the metrics layer.
    pub fn service_unmetered(&self) -> UnmeteredService {
        let normalize: fn(Response) -> Response = normalize;
        ServiceBuilder::new()
            .layer(RequestIdLayer)
            .layer(CatchPanicLayer)
            .layer(MapResponseLayer::new(normalize))
            .layer(BodyLimitLayer(self.server.body_limit))
            .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, self.server.request_timeout))
            .service(self.router.clone())
    }

    pub fn http_metrics(&self) -> &Arc<HttpMetrics> {
        &self.http_metrics
    }

    /// The open-connection count and cap of the listeners.
    pub fn connections(&self) -> &Arc<Connections> {
        &self.connections
    }

    /// Marks the server as draining: `/readyz` answers 503 from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn shutdown_timeout(&self) -> Duration {
        self.server.shutdown_timeout
    }
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

async fn readyz(State(probes): State<Probes>) -> Response {
    let states = probes.readiness.states();
    let ready = states.iter().all(|(_, s)| s.ready);
    let components: serde_json::Map<String, serde_json::Value> =
        states.into_iter().map(|(name, state)| (name, serde_json::to_value(state).unwrap_or_default())).collect();
    let body = json!({"status": if ready { "ready" } else { "not_ready" }, "components": components});
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut response = (status, axum::Json(body)).into_response();
    if !ready {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response
}

async fn metrics(State(probes): State<Probes>, headers: HeaderMap) -> Response {
    if let Some(token) = &probes.bearer
        && !bearer_matches(&headers, token)
    {
        let mut response = ProblemType::Unauthorized.with("a valid bearer token is required").into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"metrics\""));
        return response;
    }
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let text = render(&probes.registry, format);
    let mut response = Response::new(Body::from(text));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    response
}

/// Whether the request presents the configured bearer token. Digests of both sides are
/// compared in constant time, so neither the token nor its length leaks through timing.
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    let Some((scheme, presented)) = value.split_once(' ') else { return false };
    if !scheme.eq_ignore_ascii_case("bearer") || presented.is_empty() {
        return false;
    }
    bool::from(Sha256::digest(presented.trim().as_bytes()).ct_eq(&Sha256::digest(token.as_bytes())))
}

async fn not_found() -> Problem {
    ProblemType::NotFound.with("no route matches this path")
}
