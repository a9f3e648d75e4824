//! The `compozy` binary end to end: a real `serve` scraped by promtool and by a real
//! Prometheus, configuration errors, redaction, signals.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::prometheus::{Prometheus, require_tool};
use common::{BIN, Engine};

fn promtool_check(text: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("promtool output");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn metrics_of_a_running_engine_pass_promtool_with_no_findings() {
    let Some(()) = require_tool("promtool") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::start(dir.path(), &[], &[]);
    // Some traffic so the HTTP families have series.
    assert_eq!(engine.get("/healthz").0, 200);
    assert_eq!(engine.get("/nope").0, 404);
    let (status, _, text) = engine.get("/metrics");
    assert_eq!(status, 200);
    assert!(text.contains("compozy_http_requests_total{method=\"GET\",path=\"/healthz\",status_code=\"200\"} 1\n"));
    assert!(text.contains("compozy_server_ready 1"), "ready with no failing component");
    let (ok, findings) = promtool_check(&text);
    assert!(ok && findings.trim().is_empty(), "promtool findings:\n{findings}");
    // Unknown Accept values get the 0.0.4 text too.
    let (_, _, json_text) = engine.request("GET", "/metrics", &[("accept", "application/json")]);
    assert!(!json_text.contains("# EOF") && json_text.contains("# TYPE compozy_build_info gauge"));
    assert!(engine.terminate().success());
}

#[test]
fn a_real_prometheus_scrapes_openmetrics_without_errors() {
    let Some(()) = require_tool("prometheus") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::start(dir.path(), &[], &[]);
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: compozy\n    static_configs:\n      - targets: ['{}']\n",
        engine.addr
    );
    let prometheus = Prometheus::start(dir.path(), &config);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (scraped, last) = loop {
        let last = prometheus.query("compozy_http_requests_total{path=\"/metrics\"}");
        let value = last["data"]["result"][0]["value"][1].as_str().and_then(|v| v.parse::<f64>().ok());
        if value.is_some_and(|v| v >= 2.0) {
            break (true, last);
        }
        if Instant::now() > deadline {
            break (false, last);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let up = prometheus.query("up");
    let build = prometheus.query("compozy_build_info");
    let cpu = prometheus.query("process_cpu_seconds_total");
    assert!(scraped, "Prometheus never stored the engine's own scrape requests; last answer: {last}");
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
    assert_eq!(build["data"]["result"][0]["value"][1], "1", "{build}");
    assert_eq!(build["data"]["result"][0]["metric"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(cpu["data"]["result"][0]["value"][1].is_string(), "{cpu}");
    assert!(engine.terminate().success());
}

/// A sampled inbound `traceparent` makes the request's trace id an exemplar of
/// `compozy_http_request_duration_seconds`, which Prometheus (exemplar storage on, scraping
/// OpenMetrics) returns from `/api/v1/query_exemplars`. A bucket keeps only its newest
/// exemplar, so each request waits until Prometheus has stored the previous one.
#[test]
fn prometheus_returns_the_trace_ids_of_sampled_requests_as_exemplars() {
    let Some(()) = require_tool("prometheus") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    // Tracing on (it needs an endpoint; nothing listens there, so exports fail and are dropped)
    // with a ratio of 0: only a caller's sampled `traceparent` makes a request sampled.
    let tracing = [
        ("COMPOZY_MONITORING_TRACING_ENDPOINT", "http://127.0.0.1:9".to_string()),
        ("COMPOZY_MONITORING_TRACING_SAMPLE_RATIO", "0".to_string()),
    ];
    let engine = Engine::start(dir.path(), &[], &tracing);
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: compozy\n    static_configs:\n      - targets: ['{}']\n",
        engine.addr
    );
    let prometheus = Prometheus::start_with_flags(dir.path(), &config, &["--enable-feature=exemplar-storage"]);
    let selector = "compozy_http_request_duration_seconds_bucket{path=\"/healthz\"}";
    // Not sampled (flags 00): no exemplar may carry this one.
    let unsampled = "00-11111111111111111111111111111111-00f067aa0ba902b7-00";
    assert_eq!(engine.request("GET", "/healthz", &[("traceparent", unsampled)]).0, 200);
    for id in ["4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c"] {
        let traceparent = format!("00-{id}-00f067aa0ba902b7-01");
        assert_eq!(engine.request("GET", "/healthz", &[("traceparent", traceparent.as_str())]).0, 200);
        let stored =
            prometheus.wait_for(Duration::from_secs(60), |p| p.exemplar_trace_ids(selector).iter().any(|s| s == id));
        assert!(stored, "query_exemplars never returned {id}; last: {:?}", prometheus.exemplar_trace_ids(selector));
    }
    let seen = prometheus.exemplar_trace_ids(selector);
    assert!(seen.iter().any(|s| s == "4bf92f3577b34da6a3ce929d0e0e4736"), "the first trace id stays stored: {seen:?}");
    assert!(!seen.iter().any(|s| s.starts_with("1111")), "an unsampled trace became an exemplar: {seen:?}");
    assert!(engine.terminate().success());
}

#[test]
fn malformed_configuration_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("compozy.yaml"), "server:\n  request_timeout: soon\n").expect("write");
    let out = Command::new(BIN).args(["serve"]).current_dir(dir.path()).output().expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`server.request_timeout`") && err.contains("\"soon\"") && err.contains("compozy.yaml"),
        "{err}"
    );

    std::fs::write(dir.path().join("compozy.yaml"), "server: [1, 2\n").expect("write");
    let out = Command::new(BIN).args(["serve"]).current_dir(dir.path()).output().expect("run");
    assert_eq!(out.status.code(), Some(78), "configuration errors exit with EX_CONFIG");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid YAML"));

    let out = Command::new(BIN)
        .args(["serve"])
        .current_dir(dir.path())
        .env("COMPOZY_CONFIG", "/nonexistent/compozy.yaml")
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read configuration file"));

    std::fs::write(dir.path().join("empty.yaml"), "").expect("write");
    let out = Command::new(BIN)
        .args(["config", "show"])
        .current_dir(dir.path())
        .env("COMPOZY_CONFIG", dir.path().join("empty.yaml"))
        .env("COMPOZY_MONITORING_NAMESPACE", "Bad-Name")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`monitoring.namespace`") && err.contains("Bad-Name"), "{err}");
}

#[test]
fn config_show_redacts_secrets_and_reports_the_effective_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .args(["config", "show", "--format", "json"])
        .current_dir(dir.path())
        .env("COMPOZY_MONITORING_BEARER_TOKEN", "super-secret-token")
        .env("COMPOZY_SERVER_BODY_LIMIT", "1234")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("super-secret-token"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["monitoring"]["bearer_token"], "[redacted]");
    assert_eq!(v["server"]["body_limit"], 1234);
    assert_eq!(v["server"]["listen"], "127.0.0.1:5001");
}

#[test]
fn version_names_the_build() {
    let out = Command::new(BIN).arg("version").output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with(&format!("compozy {} (commit ", env!("CARGO_PKG_VERSION"))), "{text}");
}
