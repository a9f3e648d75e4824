//! Exemplars at the telemetry level: a trace id source registered as the tracing setup does,
//! the four latency histograms recording through it, both exposition formats, and a real
//! Prometheus with exemplar storage reading the trace ids back from an OpenMetrics scrape.

use std::cell::Cell;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::routing::get;
use compozy_telemetry::catalog::{self, MetricDef};
use compozy_telemetry::exemplar::{current_trace_id, set_trace_id_source};
use compozy_telemetry::{Format, Histogram, Registry, RegistryOptions, render};

thread_local! {
    /// The "current span" of this test thread: what the source reports.
    static SAMPLED: Cell<Option<[u8; 16]>> = const { Cell::new(None) };
}

fn source() -> Option<[u8; 16]> {
    SAMPLED.with(Cell::get)
}

/// Registers the source once for this test binary; each test thread controls its own trace.
fn install_source() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| set_trace_id_source(source));
}

/// Runs `f` as if inside a sampled span of trace `id`.
fn in_trace(id: [u8; 16], f: impl FnOnce()) {
    SAMPLED.with(|s| s.set(Some(id)));
    f();
    SAMPLED.with(|s| s.set(None));
}

fn trace_id(n: u8) -> [u8; 16] {
    let mut id = [0xab; 16];
    id[15] = n;
    id
}

fn hex(id: [u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// One series of `def`, every label set to a fixed bounded value.
fn series(registry: &Registry, def: &'static MetricDef) -> Arc<Histogram> {
    let labels: Vec<&str> = def.labels.iter().map(|_| "x").collect();
    registry.histogram(def).get(&labels)
}

/// The same observations on two registries: traced ones in `traced` (through the source),
/// plain ones in `plain`. Returns the trace id used per histogram.
fn record_both(traced: &Registry, plain: &Registry) -> Vec<(&'static MetricDef, [u8; 16])> {
    catalog::WITH_EXEMPLARS
        .iter()
        .zip(1u8..)
        .map(|(def, n)| {
            let (t, p) = (series(traced, def), series(plain, def));
            in_trace(trace_id(n), || t.observe_traced(0.02));
            p.observe(0.02);
            // Outside a span: counted, no exemplar.
            t.observe_traced(3.0);
            p.observe(3.0);
            (*def, trace_id(n))
        })
        .collect()
}

#[test]
fn source_reports_the_calling_context_only() {
    install_source();
    assert_eq!(current_trace_id(), None);
    in_trace(trace_id(9), || assert_eq!(current_trace_id(), Some(trace_id(9))));
    assert_eq!(current_trace_id(), None);
}

#[test]
fn latency_histograms_carry_trace_ids_in_openmetrics_only() {
    install_source();
    let traced = Registry::new(RegistryOptions::default());
    let plain = Registry::new(RegistryOptions::default());
    let recorded = record_both(&traced, &plain);

    let prometheus_text = render(&traced, Format::Prometheus);
    assert_eq!(prometheus_text, render(&plain, Format::Prometheus), "0.0.4 text is byte-for-byte unchanged");
    assert!(!prometheus_text.contains("trace_id"));

    let om = render(&traced, Format::OpenMetrics);
    for (def, id) in &recorded {
        let bucket = def.buckets.iter().position(|b| 0.02 <= *b).expect("a bucket holds 0.02");
        let le = def.buckets[bucket];
        let line = om
            .lines()
            .find(|l| l.starts_with(&format!("{}_bucket{{le=\"{le}\"", def.family_name("compozy"))))
            .unwrap_or_else(|| panic!("no le={le} bucket for {}:\n{om}", def.name));
        let suffix = format!(" # {{trace_id=\"{}\"}} 0.02 ", hex(*id));
        assert!(line.contains(&suffix), "{line}");
        assert_eq!(om.matches(&hex(*id)).count(), 1, "one exemplar for {}", def.name);
    }
    // Nothing else changed: without the exemplar suffixes the text is the plain registry's.
    let stripped: String = om.lines().map(|l| l.split(" # {").next().unwrap_or(l).to_string() + "\n").collect();
    assert_eq!(stripped, render(&plain, Format::OpenMetrics));
    // Only the latency histograms get them.
    assert_eq!(om.matches(" # {trace_id=").count(), catalog::WITH_EXEMPLARS.len());
}

#[test]
fn the_trace_id_is_no_series_label() {
    install_source();
    let r = Registry::new(RegistryOptions::default());
    let h = series(&r, &catalog::HTTP_REQUEST_DURATION);
    for n in 0..50 {
        in_trace(trace_id(n + 1), || h.observe_traced(0.002));
    }
    assert_eq!(r.histogram(&catalog::HTTP_REQUEST_DURATION).len(), 1, "one series, whatever the trace");
    let om = render(&r, Format::OpenMetrics);
    assert_eq!(om.matches("trace_id=").count(), 1, "one exemplar per bucket, the newest:\n{om}");
    assert!(om.contains(&hex(trace_id(50))));
}

#[test]
fn each_exemplar_lands_on_its_own_series_and_bucket() {
    let r = Registry::new(RegistryOptions::default());
    let family = r.histogram(&catalog::HTTP_REQUEST_DURATION);
    family.get(&["GET", "/a", "200"]).observe(0.003);
    family.get(&["GET", "/b", "200"]).observe_with_exemplar(42.0, trace_id(7));
    family.get(&["GET", "/c", "200"]).observe_with_exemplar(0.0005, trace_id(8));
    r.histogram(&catalog::WORKER_SCHEDULE_TO_START).get(&["default"]).observe_with_exemplar(0.2, trace_id(9));
    let om = render(&r, Format::OpenMetrics);
    let lines: Vec<&str> = om.lines().filter(|l| l.contains(" # {trace_id=")).collect();
    let bucket = |name: &str, le: &str, rest: &str| format!("compozy_{name}_seconds_bucket{{le=\"{le}\",{rest}}} ");
    let expected = [
        (bucket("http_request_duration", "+Inf", "method=\"GET\",path=\"/b\",status_code=\"200\""), 7, "42"),
        (bucket("http_request_duration", "0.001", "method=\"GET\",path=\"/c\",status_code=\"200\""), 8, "0.0005"),
        (bucket("worker_schedule_to_start", "0.25", "queue_name=\"default\""), 9, "0.2"),
    ];
    assert_eq!(lines.len(), expected.len(), "{om}");
    for (line, (start, n, value)) in lines.iter().zip(expected) {
        assert!(line.starts_with(&start), "{line} does not start with {start}");
        assert!(line.contains(&format!("{{trace_id=\"{}\"}} {value} ", hex(trace_id(n)))), "{line}");
    }
}

/// Prometheus on a free port, killed when dropped.
struct Prometheus {
    child: Child,
    addr: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_prometheus(dir: &std::path::Path, target: &str) -> Prometheus {
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: exemplars\n    static_configs:\n      - targets: ['{target}']\n"
    );
    std::fs::write(dir.join("prometheus.yml"), config).expect("write prometheus.yml");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--enable-feature=exemplar-storage")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn prometheus");
    Prometheus { child, addr: format!("127.0.0.1:{port}") }
}

/// `/metrics` as the engine serves it: the format the scraper's `Accept` asks for.
async fn metrics(
    State(registry): State<Arc<Registry>>,
    headers: HeaderMap,
) -> ([(header::HeaderName, &'static str); 1], String) {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    ([(header::CONTENT_TYPE, format.content_type())], render(&registry, format))
}

/// The trace ids `/api/v1/query_exemplars` returns for `query` (empty while none are stored).
/// HTTP/1.0, so the answer is neither chunked nor kept alive.
async fn stored_trace_ids(prometheus: &str, query: &str) -> Vec<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(prometheus).await else { return Vec::new() };
    // `query` is a bare metric name: nothing to percent-encode.
    let request = format!("GET /api/v1/query_exemplars?query={query} HTTP/1.0\r\nhost: prometheus\r\n\r\n");
    let mut answer = Vec::new();
    if stream.write_all(request.as_bytes()).await.is_err() || stream.read_to_end(&mut answer).await.is_err() {
        return Vec::new();
    }
    let answer = String::from_utf8_lossy(&answer);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    compozy_testkit::prometheus::exemplar_trace_ids(&serde_json::from_str(body).unwrap_or_default())
}

#[tokio::test]
async fn a_real_prometheus_with_exemplar_storage_returns_the_trace_ids() {
    let found = Command::new("sh").args(["-c", "command -v prometheus"]).output().is_ok_and(|o| o.status.success());
    if !found {
        compozy_testkit::service_missing("prometheus", "not installed; run .ci/install");
        return;
    }
    install_source();
    let registry = Registry::new(RegistryOptions::default());
    let h = series(&registry, &catalog::HTTP_REQUEST_DURATION);
    let (fast, slow) = (trace_id(1), trace_id(2));
    in_trace(fast, || h.observe_traced(0.003));
    in_trace(slow, || h.observe_traced(1.7));
    h.observe_traced(0.003);

    let app = Router::new().route("/metrics", get(metrics)).with_state(registry);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let target = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().expect("tempdir");
    let prometheus = start_prometheus(dir.path(), &target);
    let query = "compozy_http_request_duration_seconds_bucket";
    let want = [hex(fast), hex(slow)];
    // A hang guard, not a timing assertion: Prometheus starts, scrapes every second.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        seen = stored_trace_ids(&prometheus.addr, query).await;
        if want.iter().all(|w| seen.contains(w)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen, want.to_vec(), "query_exemplars returned other trace ids than recorded");
}
