//! Per-request cost of the HTTP metrics layer, in process (no sockets):
//! - `router_*`: a bare axum router; the router with our per-route tag (axum boxes every
//!   per-route layer, so the tag alone costs allocations that the engine's stack already pays
//!   for its per-route body check); that tagged router inside our metrics layer; the bare
//!   router inside the `axum-prometheus` layer.
//! - `stack_*`: the engine's full middleware stack with and without the metrics layer.
//!
//! Allocations per request of each variant are counted and printed after the timings.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::{MethodRouter, get};
use compozy_server::http_metrics::HttpMetrics;
use compozy_server::layers::metrics::MetricsLayer;
use compozy_server::layers::route_tag::RouteTagLayer;
use compozy_server::{AppBuilder, MonitoringConfig, ServerConfig};
use compozy_telemetry::{Registry, RegistryOptions};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use http_body_util::BodyExt;
use tower::{Service, ServiceExt};

#[global_allocator]
static GLOBAL: compozy_testkit::CountingAllocator = compozy_testkit::CountingAllocator;

const PATH: &str = "/api/v0/ping";

fn route() -> MethodRouter {
    get(|| async { "pong" })
}

fn request() -> Request<Body> {
    Request::get(PATH).body(Body::empty()).expect("request")
}

/// One request through `svc`, body read to the end and dropped (which records our metrics).
async fn call<S, B>(svc: &S) -> usize
where
    S: Service<Request<Body>, Response = http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let response = svc.clone().oneshot(request()).await.expect("response");
    response.into_body().collect().await.expect("body").to_bytes().len()
}

fn tagged() -> Router {
    Router::new().route(PATH, route().layer(RouteTagLayer(1)))
}

fn ours() -> impl Service<
    Request<Body>,
    Response = http::Response<impl http_body::Body<Error = impl std::fmt::Debug>>,
    Error = std::convert::Infallible,
> + Clone {
    let registry = Registry::new(RegistryOptions::default());
    let metrics = Arc::new(HttpMetrics::new(&registry, &[PATH]));
    tower::ServiceBuilder::new().layer(MetricsLayer::new(metrics)).service(tagged())
}

fn axum_prometheus() -> Router {
    let (layer, _handle) = axum_prometheus::PrometheusMetricLayer::pair();
    Router::new().route(PATH, route()).layer(layer)
}

fn stack() -> compozy_server::App {
    let registry = Registry::new(RegistryOptions::default());
    AppBuilder::new(ServerConfig::default(), MonitoringConfig::default(), registry, Default::default())
        .route(PATH, route())
        .build()
}

fn allocations<S, B>(rt: &tokio::runtime::Runtime, svc: &S) -> f64
where
    S: Service<Request<Body>, Response = http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    rt.block_on(async {
        for _ in 0..1000 {
            call(svc).await;
        }
        let before = compozy_testkit::allocations();
        for _ in 0..10_000 {
            call(svc).await;
        }
        (compozy_testkit::allocations() - before) as f64 / 10_000.0
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let bare = Router::new().route(PATH, route());
    let tagged = tagged();
    let ours = ours();
    // axum-prometheus spawns its upkeep task, so it must be built inside the runtime.
    let theirs = rt.block_on(async { axum_prometheus() });
    let app = stack();
    let full = app.service();
    let unmetered = app.service_unmetered();

    let mut g = c.benchmark_group("per_request");
    g.bench_function("router_bare", |b| b.to_async(&rt).iter(|| call(&bare)));
    g.bench_function("router_tagged", |b| b.to_async(&rt).iter(|| call(&tagged)));
    g.bench_function("router_tagged_with_our_metrics", |b| b.to_async(&rt).iter(|| call(&ours)));
    g.bench_function("router_with_axum_prometheus", |b| b.to_async(&rt).iter(|| call(&theirs)));
    g.bench_function("stack_without_metrics", |b| b.to_async(&rt).iter(|| call(&unmetered)));
    g.bench_function("stack_full", |b| b.to_async(&rt).iter(|| call(&full)));
    g.finish();

    eprintln!("allocations per request:");
    eprintln!("  router_bare                 {:.2}", allocations(&rt, &bare));
    eprintln!("  router_tagged               {:.2}", allocations(&rt, &tagged));
    eprintln!("  router_tagged_with_metrics  {:.2}", allocations(&rt, &ours));
    eprintln!("  router_with_axum_prometheus {:.2}", allocations(&rt, &theirs));
    eprintln!("  stack_without_metrics       {:.2}", allocations(&rt, &unmetered));
    eprintln!("  stack_full                  {:.2}", allocations(&rt, &full));
}

criterion_group!(benches, bench);
criterion_main!(benches);
