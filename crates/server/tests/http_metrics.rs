//! The five HTTP families after real requests over TCP: exact counts, bucket placements and
//! byte sums equal to the bodies on the wire.

mod common;

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::routing::{get, post};
use common::*;
use compozy_server::{MonitoringConfig, ServerConfig};
use futures_util::stream;

const REQ: &str = "compozy_http_requests_total";
const DUR: &str = "compozy_http_request_duration_seconds";
const REQ_SIZE: &str = "compozy_http_request_size_bytes";
const RESP_SIZE: &str = "compozy_http_response_size_bytes";

async fn echo(body: Bytes) -> Bytes {
    body
}

async fn streamed() -> Body {
    let chunks = (0..10).map(|i| Ok::<_, std::io::Error>(Bytes::from(vec![b'a' + i as u8; 1000])));
    Body::from_stream(stream::iter(chunks))
}

async fn panics() -> &'static str {
    panic!("boom");
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(30)).await;
    "late"
}

async fn item() -> &'static str {
    "item"
}

fn routes(b: compozy_server::AppBuilder) -> compozy_server::AppBuilder {
    b.route("/api/v0/echo", post(echo))
        .route("/api/v0/stream", get(streamed))
        .route("/api/v0/panic", get(panics))
        .route("/api/v0/slow", get(slow))
        .route("/api/v0/items/{id}", get(item))
}

fn small_limit() -> ServerConfig {
    ServerConfig { body_limit: 4096, ..Default::default() }
}

#[tokio::test]
async fn request_mix_gives_exact_counts_buckets_and_byte_sums() {
    let server = TestServer::start(small_limit(), MonitoringConfig::default(), 2000, routes).await;
    let a = server.addr;

    // 3 echoes with known bodies: 50, 500 and 3000 bytes.
    let mut wire_in = 0;
    let mut wire_out = 0;
    for n in [50usize, 500, 3000] {
        let (status, _, body) = raw(a, &post_req("/api/v0/echo", &vec![b'x'; n])).await;
        assert_eq!(status, 200);
        assert_eq!(body.len(), n);
        wire_in += n;
        wire_out += body.len();
    }
    // A chunked upload of 3 chunks (1200 bytes) is counted as it streams.
    let (status, _, body) = raw(a, &post_chunked("/api/v0/echo", &[&[b'c'; 400], &[b'c'; 400], &[b'c'; 400]])).await;
    assert_eq!((status, body.len()), (200, 1200));
    wire_in += 1200;
    wire_out += 1200;
    // Two path parameters map to one route template.
    for id in ["1", "abc"] {
        let (status, _, _) = raw(a, &get_req(&format!("/api/v0/items/{id}"))).await;
        assert_eq!(status, 200);
    }
    // A streamed response of 10 × 1000 bytes.
    let (status, _, body) = raw(a, &get_req("/api/v0/stream")).await;
    assert_eq!((status, body.len()), (200, 10_000));

    let echo_ok = series(REQ, "POST", "/api/v0/echo", "200");
    assert_eq!(server.settle(&echo_ok, 4.0).await, 4.0);
    let s = server.samples();
    assert_eq!(s[&series(REQ, "GET", "/api/v0/items/{id}", "200")], 2.0);
    assert_eq!(server.settle(&series(REQ, "GET", "/api/v0/stream", "200"), 1.0).await, 1.0);
    let s2 = server.samples();

    // Size sums are the bodies on the wire.
    assert_eq!(
        s[&format!("{REQ_SIZE}_sum{{method=\"POST\",path=\"/api/v0/echo\",status_code=\"200\"}}")],
        wire_in as f64
    );
    assert_eq!(
        s[&format!("{RESP_SIZE}_sum{{method=\"POST\",path=\"/api/v0/echo\",status_code=\"200\"}}")],
        wire_out as f64
    );
    assert_eq!(s2[&format!("{RESP_SIZE}_sum{{method=\"GET\",path=\"/api/v0/stream\",status_code=\"200\"}}")], 10_000.0);
    assert_eq!(s2[&format!("{REQ_SIZE}_sum{{method=\"GET\",path=\"/api/v0/stream\",status_code=\"200\"}}")], 0.0);

    // Bucket placement: 50 ≤ 100; 500 ≤ 1e3; 1200 and 3000 ≤ 1e4.
    assert_eq!(s[&bucket(REQ_SIZE, "POST", "/api/v0/echo", "200", "100")], 1.0);
    assert_eq!(s[&bucket(REQ_SIZE, "POST", "/api/v0/echo", "200", "1000")], 2.0);
    assert_eq!(s[&bucket(REQ_SIZE, "POST", "/api/v0/echo", "200", "10000")], 4.0);
    assert_eq!(s[&bucket(RESP_SIZE, "GET", "/api/v0/items/{id}", "200", "100")], 2.0);
    assert_eq!(s2[&bucket(RESP_SIZE, "GET", "/api/v0/stream", "200", "1000")], 0.0);
    assert_eq!(s2[&bucket(RESP_SIZE, "GET", "/api/v0/stream", "200", "10000")], 1.0);
    assert_eq!(s[&format!("{DUR}_count{{method=\"POST\",path=\"/api/v0/echo\",status_code=\"200\"}}")], 4.0);
    // Nothing left in flight.
    assert_eq!(s2["compozy_http_requests_in_flight{method=\"POST\"}"], 0.0);
}

#[tokio::test]
async fn refusals_panics_and_disconnects_are_recorded_with_their_status() {
    let server = TestServer::start(small_limit(), MonitoringConfig::default(), 2000, routes).await;
    let a = server.addr;

    // Declared body over the limit: refused before reading, 413 problem+json.
    let (status, head, body) = raw(a, &post_req("/api/v0/echo", &vec![b'x'; 5000])).await;
    assert_eq!(status, 413);
    assert!(head.to_ascii_lowercase().contains("content-type: application/problem+json"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("payload-too-large"));
    // A chunked body that grows past the limit while being read: also 413.
    let (status, _, _) = raw(a, &post_chunked("/api/v0/echo", &[&[b'c'; 3000], &[b'c'; 3000]])).await;
    assert_eq!(status, 413);
    let got = server.settle(&series(REQ, "POST", "/api/v0/echo", "413"), 2.0).await;
    assert_eq!(got, 2.0, "{}", server.text().lines().filter(|l| l.starts_with(REQ)).collect::<Vec<_>>().join("\n"));

    // A handler panic: answered 500 (problem+json), recorded as 500, connection survives.
    let (status, head, _) = raw(a, &get_req("/api/v0/panic")).await;
    assert_eq!(status, 500);
    assert!(head.contains("application/problem+json"));
    assert_eq!(server.settle(&series(REQ, "GET", "/api/v0/panic", "500"), 1.0).await, 1.0);

    // Unknown method on a known route, unknown path.
    let (status, _, _) = raw(a, b"BREW /api/v0/echo HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n").await;
    assert_eq!(status, 405);
    assert_eq!(server.settle(&series(REQ, "_OTHER", "/api/v0/echo", "405"), 1.0).await, 1.0);
    let (status, _, _) = raw(a, &get_req("/wp-admin/../../etc/passwd")).await;
    assert_eq!(status, 404);
    assert_eq!(server.settle(&series(REQ, "GET", "unmatched", "404"), 1.0).await, 1.0);

    // A client that goes away while the handler is still working: 499.
    let mut stream = tokio::net::TcpStream::connect(a).await.expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut stream, &get_req("/api/v0/slow")).await.expect("write");
    let in_flight = "compozy_http_requests_in_flight{method=\"GET\"}";
    assert_eq!(server.settle(in_flight, 1.0).await, 1.0);
    drop(stream);
    assert_eq!(server.settle(&series(REQ, "GET", "/api/v0/slow", "499"), 1.0).await, 1.0);
    assert_eq!(server.settle(in_flight, 0.0).await, 0.0);
}

#[tokio::test]
async fn request_ids_are_kept_when_sane_and_replaced_when_hostile() {
    let server = TestServer::start(ServerConfig::default(), MonitoringConfig::default(), 2000, routes).await;
    let req = b"GET /healthz HTTP/1.1\r\nhost: t\r\nconnection: close\r\nx-request-id: abc-123\r\n\r\n";
    let (_, head, _) = raw(server.addr, req).await;
    assert!(head.contains("x-request-id: abc-123"), "{head}");
    let req = b"GET /healthz HTTP/1.1\r\nhost: t\r\nconnection: close\r\nx-request-id: <script>\r\n\r\n";
    let (_, head, _) = raw(server.addr, req).await;
    let id = head.lines().find_map(|l| l.strip_prefix("x-request-id: ")).expect("id");
    assert_eq!(id.len(), 36, "a generated UUID replaces a hostile id: {id}");
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    async fn half_second() -> &'static str {
        tokio::time::sleep(Duration::from_millis(500)).await;
        "done"
    }
    let mut server = TestServer::start(ServerConfig::default(), MonitoringConfig::default(), 2000, |b| {
        b.route("/api/v0/work", get(half_second))
    })
    .await;
    let addr = server.addr;
    let request = tokio::spawn(async move { raw(addr, &get_req("/api/v0/work")).await });
    assert_eq!(server.settle("compozy_http_requests_in_flight{method=\"GET\"}", 1.0).await, 1.0);
    server.stop();
    let (status, _, body) = request.await.expect("join");
    assert_eq!((status, body.as_slice()), (200, b"done".as_slice()));
    // serve returns once the in-flight request is done (its listener dropped before that).
    tokio::time::timeout(Duration::from_secs(5), &mut server.task).await.expect("serve returns").expect("join");
}

#[tokio::test]
async fn bodiless_and_unusual_statuses_are_recorded_exactly() {
    use axum::http::StatusCode;
    async fn no_content() -> StatusCode {
        StatusCode::NO_CONTENT
    }
    async fn teapot_plus() -> StatusCode {
        StatusCode::from_u16(799).expect("valid code")
    }
    let server = TestServer::start(ServerConfig::default(), MonitoringConfig::default(), 2000, |b| {
        b.route("/api/v0/empty", axum::routing::delete(no_content)).route("/api/v0/odd", get(teapot_plus))
    })
    .await;
    let (status, _, body) =
        raw(server.addr, b"DELETE /api/v0/empty HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n").await;
    assert_eq!((status, body.len()), (204, 0));
    let (status, _, body) = raw(server.addr, b"HEAD /healthz HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n").await;
    assert_eq!((status, body.len()), (200, 0));
    for _ in 0..2 {
        assert_eq!(raw(server.addr, &get_req("/api/v0/odd")).await.0, 799);
    }
    assert_eq!(server.settle(&series(REQ, "DELETE", "/api/v0/empty", "204"), 1.0).await, 1.0);
    assert_eq!(server.settle(&series(REQ, "HEAD", "/healthz", "200"), 1.0).await, 1.0);
    assert_eq!(server.settle(&series(REQ, "GET", "/api/v0/odd", "799"), 2.0).await, 2.0);
    let s = server.samples();
    assert_eq!(s[&format!("{RESP_SIZE}_sum{{method=\"DELETE\",path=\"/api/v0/empty\",status_code=\"204\"}}")], 0.0);
    assert_eq!(s[&format!("{RESP_SIZE}_sum{{method=\"HEAD\",path=\"/healthz\",status_code=\"200\"}}")], 0.0);
}

#[tokio::test]
async fn requests_cut_by_the_shutdown_deadline_are_503_not_499() {
    let config = ServerConfig { shutdown_timeout: Duration::from_millis(300), ..Default::default() };
    let mut server = TestServer::start(config, MonitoringConfig::default(), 2000, routes).await;
    let addr = server.addr;
    let client = tokio::spawn(async move { raw_result(addr, &get_req("/api/v0/slow")).await });
    assert_eq!(server.settle("compozy_http_requests_in_flight{method=\"GET\"}", 1.0).await, 1.0);
    server.stop();
    tokio::time::timeout(Duration::from_secs(10), &mut server.task).await.expect("serve returns").expect("join");
    assert_eq!(server.settle(&series(REQ, "GET", "/api/v0/slow", "503"), 1.0).await, 1.0);
    assert!(!server.samples().contains_key(&series(REQ, "GET", "/api/v0/slow", "499")));
    let _ = client.await;
}
