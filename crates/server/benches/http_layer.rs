//! Per-request cost of the HTTP metrics layer, in process (no sockets):
//! - `router_*`: a bare axum router; the router with our per-route tag (axum boxes every
//!   per-route layer, so the tag alone costs allocations that the engine's stack already pays
//!   for its per-route body check); that tagged router inside our metrics layer; the bare
//!   router inside the `axum-prometheus` layer.
//! - `stack_*`: the engine's full middleware stack with and without the metrics layer.
//! - `stack_full_traced_*`: the full stack with tracing on (a server span per request, exported
//!   over OTLP to a sink in this process) at sample ratios 0, 0.01 and 1.
//!
//! Allocations per request of each variant are counted and printed after the timings, then the
//! layer's cost in the stack is measured once more as a paired difference: batches of the two
//! stack variants alternated many times, the median of the per-batch differences printed. Load
//! from other processes drifts over seconds, so it hits both sides of a pair alike, where
//! criterion's separate runs of each variant would see it on one side only.

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
    for (name, tracer) in tracers() {
        let _on = Traced::on(&tracer);
        g.bench_function(format!("stack_full_traced_{name}"), |b| b.to_async(&rt).iter(|| call(&full)));
    }
    g.finish();

    eprintln!("allocations per request:");
    eprintln!("  router_bare                 {:.2}", allocations(&rt, &bare));
    eprintln!("  router_tagged               {:.2}", allocations(&rt, &tagged));
    eprintln!("  router_tagged_with_metrics  {:.2}", allocations(&rt, &ours));
    eprintln!("  router_with_axum_prometheus {:.2}", allocations(&rt, &theirs));
    eprintln!("  stack_without_metrics       {:.2}", allocations(&rt, &unmetered));
    eprintln!("  stack_full                  {:.2}", allocations(&rt, &full));
}

/// Median and quartiles over `rounds` of the per-request difference `b − a` in ns, each round
/// timing one batch of `a` then one of `b` (the order alternates between rounds).
fn paired_difference<A, B, BA, BB>(rt: &tokio::runtime::Runtime, a: &A, b: &B, rounds: usize) -> [f64; 3]
where
    A: Service<Request<Body>, Response = http::Response<BA>> + Clone,
    A::Error: std::fmt::Debug,
    BA: http_body::Body,
    BA::Error: std::fmt::Debug,
    B: Service<Request<Body>, Response = http::Response<BB>> + Clone,
    B::Error: std::fmt::Debug,
    BB: http_body::Body,
    BB::Error: std::fmt::Debug,
{
    const BATCH: u32 = 250;
    rt.block_on(async {
        let mut diffs = Vec::with_capacity(rounds);
        for round in 0..rounds {
            let time_a = async {
                let start = std::time::Instant::now();
                for _ in 0..BATCH {
                    call(a).await;
                }
                start.elapsed().as_nanos() as f64 / f64::from(BATCH)
            };
            let time_b = async {
                let start = std::time::Instant::now();
                for _ in 0..BATCH {
                    call(b).await;
                }
                start.elapsed().as_nanos() as f64 / f64::from(BATCH)
            };
            let (ta, tb) = if round % 2 == 0 {
                let ta = time_a.await;
                (ta, time_b.await)
            } else {
                let tb = time_b.await;
                (time_a.await, tb)
            };
            diffs.push(tb - ta);
        }
        diffs.sort_by(f64::total_cmp);
        [diffs[rounds / 4], diffs[rounds / 2], diffs[rounds * 3 / 4]]
    })
}

fn paired(_: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let app = stack();
    let [q1, median, q3] = paired_difference(&rt, &app.service_unmetered(), &app.service(), 2_000);
    eprintln!("metrics layer in the stack (tracing off), paired (2,000 alternated batches of 250 requests):");
    eprintln!("  median {median:+.0} ns per request (quartiles {q1:+.0} .. {q3:+.0} ns)");
    let full = app.service();
    for (name, tracer) in tracers() {
        let [q1, median, q3] = paired_tracing(&rt, &full, &tracer, 1_000);
        eprintln!("tracing on at ratio {name} vs off, full stack, paired (1,000 alternated batches of 250 requests):");
        eprintln!("  median {median:+.0} ns per request (quartiles {q1:+.0} .. {q3:+.0} ns)");
    }
}

// ---- Tracing on ------------------------------------------------------------------------------

/// A subscriber with the exporter's layer at one sample ratio.
struct Tracer {
    dispatch: tracing::Dispatch,
    _tracing: compozy_telemetry::traces::Tracing,
}

/// While alive: tracing on, and `tracer`'s subscriber this thread's (the benchmark runtime
/// runs on it). Dropped: tracing off again.
struct Traced(#[allow(dead_code)] tracing::dispatcher::DefaultGuard);

impl Traced {
    fn on(tracer: &Tracer) -> Traced {
        compozy_telemetry::traces::force_enabled(true);
        Traced(tracing::dispatcher::set_default(&tracer.dispatch))
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        compozy_telemetry::traces::force_enabled(false);
    }
}

/// The OTLP sink the exporters post to, and its runtime (which also runs their requests).
fn sink() -> &'static (tokio::runtime::Runtime, String) {
    static SINK: std::sync::OnceLock<(tokio::runtime::Runtime, String)> = std::sync::OnceLock::new();
    SINK.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind sink");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let app = Router::new().route("/v1/traces", axum::routing::post(|| async { "" }));
        rt.spawn(async move { axum::serve(listener, app).await });
        (rt, url)
    })
}

fn tracers() -> Vec<(&'static str, Tracer)> {
    use tracing_subscriber::layer::SubscriberExt;
    let (rt, url) = sink();
    let tracers = [("0", 0.0), ("0.01", 0.01), ("1", 1.0)].map(|(name, ratio)| {
        let options = compozy_telemetry::traces::TracingOptions {
            endpoint: url.clone(),
            headers: Vec::new(),
            timeout: std::time::Duration::from_secs(5),
            sample_ratio: ratio,
            service_name: "bench".into(),
            service_version: "0".into(),
        };
        let tracing = compozy_telemetry::traces::Tracing::start(&options, rt.handle().clone()).expect("tracer");
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(tracing.layer()));
        (name, Tracer { dispatch, _tracing: tracing })
    });
    // `start` turns tracing on; each measurement turns it on only while it runs.
    compozy_telemetry::traces::force_enabled(false);
    tracers.into()
}

/// [`paired_difference`] of one service with tracing off (`a`) and on with `tracer` (`b`).
fn paired_tracing<S, B>(rt: &tokio::runtime::Runtime, svc: &S, tracer: &Tracer, rounds: usize) -> [f64; 3]
where
    S: Service<Request<Body>, Response = http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    const BATCH: u32 = 250;
    let batch = |traced: bool| {
        let _on = traced.then(|| Traced::on(tracer));
        rt.block_on(async {
            let start = std::time::Instant::now();
            for _ in 0..BATCH {
                call(svc).await;
            }
            start.elapsed().as_nanos() as f64 / f64::from(BATCH)
        })
    };
    let mut diffs = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (off, on) = if round % 2 == 0 {
            let off = batch(false);
            (off, batch(true))
        } else {
            let on = batch(true);
            (batch(false), on)
        };
        diffs.push(on - off);
    }
    diffs.sort_by(f64::total_cmp);
    [diffs[rounds / 4], diffs[rounds / 2], diffs[rounds * 3 / 4]]
}

criterion_group!(benches, bench, paired);
criterion_main!(benches);
