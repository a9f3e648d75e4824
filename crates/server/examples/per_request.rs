//! Runs N requests through the engine's stack, with or without the metrics layer, for
//! instruction counting: `valgrind --tool=callgrind target/release/examples/per_request full 20000`
//! (see docs/performance.md). Prints nothing but the number of body bytes read.

use axum::body::Body;
use axum::routing::get;
use compozy_server::{AppBuilder, MonitoringConfig, ServerConfig};
use compozy_telemetry::{Registry, RegistryOptions};
use http::Request;
use http_body_util::BodyExt;
use tower::{Service, ServiceExt};

async fn run<S, B>(svc: S, n: usize) -> usize
where
    S: Service<Request<Body>, Response = http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let mut total = 0;
    for _ in 0..n {
        let request = Request::get("/api/v0/ping").body(Body::empty()).expect("request");
        let response = svc.clone().oneshot(request).await.expect("response");
        total += response.into_body().collect().await.expect("body").to_bytes().len();
    }
    total
}

fn main() {
    let mut args = std::env::args().skip(1);
    let variant = args.next().unwrap_or_else(|| "full".into());
    let n: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let registry = Registry::new(RegistryOptions::default());
    let app = AppBuilder::new(ServerConfig::default(), MonitoringConfig::default(), registry, Default::default())
        .route("/api/v0/ping", get(|| async { "pong" }))
        .build();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let bytes = match variant.as_str() {
        "unmetered" => rt.block_on(run(app.service_unmetered(), n)),
        _ => rt.block_on(run(app.service(), n)),
    };
    println!("{bytes}");
}
