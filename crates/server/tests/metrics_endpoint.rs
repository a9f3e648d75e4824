//! `/metrics` negotiation, bearer token, separate listener, and the cardinality guard under
//! hostile traffic.

mod common;

use axum::body::Body;
use axum::routing::get;
use common::*;
use compozy_core::Secret;
use compozy_server::{MonitoringConfig, ServerConfig};
use compozy_telemetry::catalog;
use http::Request;
use tower::ServiceExt;

fn scrape(accept: Option<&str>, token: Option<&str>) -> Vec<u8> {
    let mut r = "GET /metrics HTTP/1.1\r\nhost: t\r\nconnection: close\r\n".to_string();
    if let Some(a) = accept {
        r.push_str(&format!("accept: {a}\r\n"));
    }
    if let Some(t) = token {
        r.push_str(&format!("authorization: Bearer {t}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

#[tokio::test]
async fn content_negotiation_picks_openmetrics_only_when_asked() {
    let server = TestServer::start(ServerConfig::default(), MonitoringConfig::default(), 2000, |b| b).await;
    let (status, head, body) =
        raw(server.addr, &scrape(Some("application/openmetrics-text; version=1.0.0"), None)).await;
    assert_eq!(status, 200);
    assert!(head.contains("application/openmetrics-text; version=1.0.0"), "{head}");
    assert!(String::from_utf8_lossy(&body).ends_with("# EOF\n"));

    for accept in [None, Some("application/json"), Some("text/html;q=0.9")] {
        let (status, head, body) = raw(server.addr, &scrape(accept, None)).await;
        assert_eq!(status, 200);
        assert!(head.contains("text/plain; version=0.0.4"), "{accept:?}: {head}");
        assert!(!String::from_utf8_lossy(&body).contains("# EOF"));
    }
}

#[tokio::test]
async fn bearer_token_and_separate_listener() {
    let monitoring = MonitoringConfig {
        listen: Some("127.0.0.1:0".parse().expect("addr")),
        bearer_token: Some(Secret::new("s3cret")),
        ..Default::default()
    };
    let server = TestServer::start(ServerConfig::default(), monitoring, 2000, |b| b).await;
    let metrics = server.metrics_addr.expect("metrics listener");
    let (status, head, _) = raw(metrics, &scrape(None, None)).await;
    assert_eq!(status, 401);
    assert!(head.to_ascii_lowercase().contains("www-authenticate: bearer"));
    let (status, _, _) = raw(metrics, &scrape(None, Some("wrong!"))).await;
    assert_eq!(status, 401);
    let (status, _, body) = raw(metrics, &scrape(None, Some("s3cret"))).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("# TYPE compozy_http_requests_in_flight gauge"));
    // The scheme is case-insensitive; the token is not.
    let (status, _, _) = raw(metrics, &scrape(None, Some("s3cret").map(|_| "S3CRET"))).await;
    assert_eq!(status, 401);
    let lower = b"GET /metrics HTTP/1.1\r\nhost: t\r\nconnection: close\r\nauthorization: bearer s3cret\r\n\r\n";
    assert_eq!(raw(metrics, lower).await.0, 200);
    // Not served on the API listener.
    let (status, _, _) = raw(server.addr, &scrape(None, Some("s3cret"))).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn ten_thousand_unknown_paths_add_no_series() {
    let registry = compozy_telemetry::Registry::new(Default::default());
    let app = compozy_server::AppBuilder::new(
        ServerConfig::default(),
        MonitoringConfig::default(),
        registry.clone(),
        Default::default(),
    )
    .route("/api/v0/items/{id}", get(|| async { "ok" }))
    .build();
    let requests = registry.counter(&catalog::HTTP_REQUESTS);
    for i in 0..10_000u32 {
        let path = format!("/scan/{i:x}/{}", i.wrapping_mul(2_654_435_761));
        let response = app.service().oneshot(Request::get(path).body(Body::empty()).expect("req")).await.expect("ok");
        assert_eq!(response.status(), 404);
    }
    assert_eq!(requests.len(), 1, "all unknown paths share one `unmatched` series");
    let text = compozy_telemetry::render(&registry, compozy_telemetry::Format::Prometheus);
    let s = parse_samples(&text);
    assert_eq!(s[&series("compozy_http_requests_total", "GET", "unmatched", "404")], 10_000.0);
    assert!(!text.contains("/scan/"));
}

#[tokio::test]
async fn a_family_past_its_cap_folds_into_overflow() {
    // Cap 3: the 4th and later (method, route, status) sets fold.
    let server = TestServer::start(ServerConfig::default(), MonitoringConfig::default(), 3, |b| {
        b.route("/a", get(|| async { "a" })).route("/b", get(|| async { "b" })).route("/c", get(|| async { "c" }))
    })
    .await;
    for path in ["/a", "/b", "/c", "/healthz", "/readyz"] {
        let (status, _, _) = raw(server.addr, &get_req(path)).await;
        assert_eq!(status, 200);
    }
    let overflow = series("compozy_http_requests_total", "__overflow__", "__overflow__", "__overflow__");
    assert_eq!(server.settle(&overflow, 2.0).await, 2.0);
    let s = server.samples();
    assert_eq!(s[&series("compozy_http_requests_total", "GET", "/a", "200")], 1.0);
    assert_eq!(s["compozy_metrics_overflow_total{metric=\"compozy_http_requests_total\"}"], 2.0);
    assert_eq!(s["compozy_metrics_overflow_total{metric=\"compozy_http_request_duration_seconds\"}"], 2.0);
}

#[tokio::test]
async fn readyz_names_the_failing_component_and_405_keeps_allow() {
    use http_body_util::BodyExt;
    let readiness = compozy_core::Readiness::default();
    readiness.register("store", || compozy_core::ComponentState::not_ready("postgres", "unreachable"));
    let registry = compozy_telemetry::Registry::new(Default::default());
    let app =
        compozy_server::AppBuilder::new(ServerConfig::default(), MonitoringConfig::default(), registry, readiness)
            .build();

    let response = app.service().oneshot(Request::get("/readyz").body(Body::empty()).expect("req")).await.expect("ok");
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = response.into_body().collect().await.expect("body").to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["status"], "not_ready");
    assert_eq!(v["components"]["store"]["reason"], "unreachable");
    assert_eq!(v["components"]["server"]["ready"], true);

    let response =
        app.service().oneshot(Request::delete("/healthz").body(Body::empty()).expect("req")).await.expect("ok");
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let allow = response.headers()["allow"].to_str().expect("allow");
    assert!(allow.contains("GET") && allow.contains("HEAD"), "{allow}");
}
