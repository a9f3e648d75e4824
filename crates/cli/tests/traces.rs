//! Traces through the binaries, on PostgreSQL: an OTLP receiver inside the test decodes the
//! spans two processes export — `compozy serve` as an API node (`worker.enabled: false`) and a
//! separate `compozy worker` — and the test checks the tree of one signed webhook delivery,
//! from the caller's `traceparent` through the delivery's steps and the run's start to each task
//! attempt the worker ran, in one trace; a retried attempt starts its own trace linked to its
//! enqueuer; the http activity sends `traceparent` to its target.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::{any, post as route_post};
use common::{Engine, post};
use compozy_testkit::postgres::TestDb;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AttrValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use parking_lot::Mutex;
use prost::Message;

/// The caller's trace context: the delivery must continue this trace.
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[derive(Default)]
struct Seen {
    spans: Mutex<Vec<Span>>,
    /// The `traceparent` of each call the http activities made.
    calls: Mutex<Vec<String>>,
    flaky: AtomicUsize,
}

/// The OTLP http/protobuf receiver and the http activities' target, on one loopback port.
fn receiver(rt: &tokio::runtime::Runtime) -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route("/v1/traces", route_post(export))
        .route("/target", any(target))
        .route("/flaky", any(flaky))
        .with_state(seen.clone());
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind receiver");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    rt.spawn(async move { axum::serve(listener, app).await });
    (base, seen)
}

async fn export(State(seen): State<Arc<Seen>>, body: bytes::Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf trace export");
    let spans = request.resource_spans.into_iter().flat_map(|r| r.scope_spans).flat_map(|s| s.spans);
    seen.spans.lock().extend(spans);
    ExportTraceServiceResponse::default().encode_to_vec()
}

fn record_call(seen: &Seen, headers: &http::HeaderMap) {
    let traceparent = headers.get("traceparent").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    seen.calls.lock().push(traceparent);
}

async fn target(State(seen): State<Arc<Seen>>, headers: http::HeaderMap) -> &'static str {
    record_call(&seen, &headers);
    "{\"ok\": true}"
}

/// Fails the first call, so its task is retried.
async fn flaky(State(seen): State<Arc<Seen>>, headers: http::HeaderMap) -> (http::StatusCode, &'static str) {
    record_call(&seen, &headers);
    match seen.flaky.fetch_add(1, Ordering::SeqCst) {
        0 => (http::StatusCode::INTERNAL_SERVER_ERROR, "{}"),
        _ => (http::StatusCode::OK, "{}"),
    }
}

fn project(dir: &std::path::Path, base: &str) {
    let workflow = format!(
        r#"resource: workflow
id: on-hook
triggers:
  - type: webhook
    slug: deploy
    source: ci
    verify: {{ method: hmac, secret: k3y, header: X-Signature, prefix: "sha256=" }}
tasks:
  - {{ id: call, type: http, url: "{base}/target" }}
  - id: flaky
    type: http
    url: "{base}/flaky"
    retry: {{ max_attempts: 2, backoff: {{ initial: 10ms, max: 10ms }} }}
"#
    );
    let project = "project:\n  name: traced\nautoload:\n  include: [\"workflows/*.yaml\"]\n  watch: false\n";
    std::fs::write(dir.join("compozy.yaml"), project).expect("project file");
    std::fs::create_dir_all(dir.join("workflows")).expect("mkdir");
    std::fs::write(dir.join("workflows/hook.yaml"), workflow).expect("workflow");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attr(span: &Span, key: &str) -> Option<String> {
    let value = span.attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?.value.as_ref()?;
    Some(match value {
        AttrValue::StringValue(s) => s.clone(),
        AttrValue::IntValue(i) => i.to_string(),
        AttrValue::BoolValue(b) => b.to_string(),
        AttrValue::DoubleValue(d) => d.to_string(),
        _ => String::new(),
    })
}

/// The spans received so far, by name.
fn named(seen: &Seen, name: &str) -> Vec<Span> {
    seen.spans.lock().iter().filter(|s| s.name == name).cloned().collect()
}

fn one(seen: &Seen, name: &str) -> Span {
    let spans = named(seen, name);
    let names: Vec<String> = seen.spans.lock().iter().map(|s| s.name.clone()).collect();
    assert_eq!(spans.len(), 1, "one `{name}` span expected among {names:?}");
    spans.into_iter().next().expect("one span")
}

fn parent_of<'a>(spans: &'a HashMap<String, Span>, child: &Span) -> &'a Span {
    let parent = hex(&child.parent_span_id);
    spans.get(&parent).unwrap_or_else(|| panic!("`{}` has parent {parent}, not a received span", child.name))
}

fn attempt(seen: &Seen, task: &str, n: u32) -> Span {
    let spans: Vec<Span> = named(seen, "task.attempt")
        .into_iter()
        .filter(|s| attr(s, "task.name").as_deref() == Some(task) && attr(s, "task.attempt") == Some(n.to_string()))
        .collect();
    assert_eq!(spans.len(), 1, "one attempt {n} of `{task}` expected: {spans:#?}");
    spans.into_iter().next().expect("one span")
}

#[test]
fn a_signed_delivery_is_one_trace_from_the_caller_to_the_tasks_of_another_process() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let Some(db) = rt.block_on(TestDb::create()) else { return };
    let (base, seen) = receiver(&rt);
    let dir = tempfile::tempdir().expect("dir");
    project(dir.path(), &base);
    let env = [
        ("COMPOZY_DATABASE_URL", db.url()),
        ("COMPOZY_MONITORING_TRACING_ENDPOINT", base.clone()),
        ("COMPOZY_MONITORING_TRACING_SAMPLE_RATIO", "1".into()),
        ("COMPOZY_WORKER_POLL_INTERVAL", "100ms".into()),
    ];
    let args = ["--config", "compozy.yaml"];
    let mut api_env = env.to_vec();
    api_env.push(("COMPOZY_WORKER_ENABLED", "false".into()));
    let api = Engine::start(dir.path(), &args, &api_env);
    let worker = Engine::start_worker(dir.path(), &args, &env);

    let body = r#"{"action":"deploy"}"#;
    let sig = format!("sha256={}", compozy_webhooks::verify::sign::hmac_hex("k3y", body.as_bytes()));
    let caller = format!("00-{TRACE}-{CALLER_SPAN}-01");
    let headers = [("content-type", "application/json"), ("x-signature", sig.as_str()), ("traceparent", &caller)];
    let (status, _, answer) = post(api.addr, "/api/v0/hooks/deploy", &headers, body).expect("exchange");
    assert_eq!(status, 202, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("json");
    let run_id = answer["data"]["run_id"].as_str().expect("run id").to_string();
    let path = format!("/api/v0/executions/{run_id}");
    api.eventually("the run succeeds on the worker process", |e| {
        let (status, _, text) = e.get(&path);
        status == 200 && text.contains(r#""status":"succeeded""#)
    });
    // Spans are exported in batches every second: wait for the last attempt's to arrive.
    let deadline = Instant::now() + Duration::from_secs(30);
    while named(&seen, "task.complete").len() < 3 || named(&seen, "webhook.delivery").is_empty() {
        assert!(Instant::now() < deadline, "spans never arrived: {:#?}", seen.spans.lock());
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(worker);
    let spans: HashMap<String, Span> = seen.spans.lock().iter().map(|s| (hex(&s.span_id), s.clone())).collect();

    // The server span continues the caller's trace, with the semantic conventions' attributes.
    let server = one(&seen, "POST /api/v0/hooks/{slug}");
    assert_eq!(hex(&server.trace_id), TRACE);
    assert_eq!(hex(&server.parent_span_id), CALLER_SPAN);
    assert_eq!(attr(&server, "http.request.method").as_deref(), Some("POST"));
    assert_eq!(attr(&server, "http.route").as_deref(), Some("/api/v0/hooks/{slug}"));
    assert_eq!(attr(&server, "http.response.status_code").as_deref(), Some("202"));

    // The delivery and its steps.
    let delivery = one(&seen, "webhook.delivery");
    assert_eq!(parent_of(&spans, &delivery).span_id, server.span_id);
    assert_eq!(attr(&delivery, "webhook.result").as_deref(), Some("accepted"));
    let steps =
        ["webhook.read_body", "webhook.verify", "webhook.dedupe", "webhook.filter_render", "webhook.store_commit"];
    for step in steps {
        let s = one(&seen, step);
        assert_eq!(hex(&s.trace_id), TRACE, "{step}");
        assert_eq!(parent_of(&spans, &s).span_id, delivery.span_id, "{step} is a child of the delivery");
    }
    let start = one(&seen, "run.start");
    assert_eq!(parent_of(&spans, &start).name, "webhook.store_commit");

    // The first task's first attempt, on the worker process, is a child of the run's start.
    let call = attempt(&seen, "call", 1);
    assert_eq!(hex(&call.trace_id), TRACE);
    assert_eq!(call.parent_span_id, start.span_id);
    // The next task was enqueued by the first one's completion: same trace.
    let flaky_first = attempt(&seen, "flaky", 1);
    assert_eq!(hex(&flaky_first.trace_id), TRACE);
    let enqueuer = parent_of(&spans, &flaky_first);
    assert_eq!(enqueuer.name, "task.complete");
    assert_eq!(enqueuer.parent_span_id, call.span_id);
    assert_eq!(attr(&flaky_first, "task.outcome").as_deref(), Some("error"));

    // The retry starts its own trace, linked to the span that enqueued the task.
    let retry = attempt(&seen, "flaky", 2);
    assert_ne!(hex(&retry.trace_id), TRACE);
    assert!(retry.parent_span_id.is_empty(), "a retry is a root");
    assert_eq!(retry.links.len(), 1, "{retry:#?}");
    assert_eq!(hex(&retry.links[0].trace_id), TRACE);
    assert_eq!(retry.links[0].span_id, enqueuer.span_id);
    assert_eq!(attr(&retry, "task.outcome").as_deref(), Some("success"));

    // Each http activity is a client span that sent its own context to the target.
    let calls = seen.calls.lock().clone();
    assert_eq!(calls.len(), 3, "{calls:?}");
    let activities = named(&seen, "activity.http");
    assert_eq!(activities.len(), 3);
    for sent in &calls {
        let span_id = sent.split('-').nth(2).unwrap_or_default();
        let activity = spans.get(span_id).unwrap_or_else(|| panic!("traceparent {sent:?} names no span"));
        assert_eq!(activity.name, "activity.http");
        assert!(sent.starts_with(&format!("00-{}-", hex(&activity.trace_id))), "{sent}");
        assert_eq!(parent_of(&spans, activity).name, "task.attempt");
    }
    assert!(activities.iter().any(|a| attr(a, "http.response.status_code").as_deref() == Some("500")));
}
