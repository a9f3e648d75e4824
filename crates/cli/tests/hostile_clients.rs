//! Hostile clients against `compozy serve`, without any credential: idle sockets past the
//! connection cap under a lowered file limit, accepts out of file descriptors, keep-alive
//! connections left idle, stalled webhook bodies, and replays of signed deliveries that vary
//! every unsigned header. Each attack runs while the test checks that the
//! engine keeps answering and that every acknowledged delivery has its run.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Engine, http, post};
use compozy_webhooks::verify::sign;

const PROJECT: &str = "project:\n  name: edge\nautoload:\n  include: [\"workflows/*.yaml\"]\n  watch: false\n";
const WORKFLOW: &str = r#"resource: workflow
id: edge
triggers:
  - { type: webhook, slug: gh, source: gh, verify: { method: github, secret: gh-s3cret } }
  - type: webhook
    slug: signed-hmac
    source: hmac
    verify: { method: hmac, secret: k3y, header: X-Signature }
    dedupe: { key: header.X-Request-Id }
  - { type: webhook, slug: stripe, source: stripe, verify: { method: stripe, secret: st-s3cret } }
  - { type: webhook, slug: std, source: std, verify: { method: standard, secret: "whsec_c2VjcmV0LWtleS0xMjM0NQ==" } }
  - { type: webhook, slug: stall, source: stall, verify: { method: github, secret: other } }
tasks:
  - { id: done, type: wait, duration: 0s }
"#;

/// How long the engine may take to answer while under attack (a liveness bound).
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

fn project(dir: &Path) {
    std::fs::write(dir.join("compozy.yaml"), PROJECT).expect("project file");
    std::fs::create_dir_all(dir.join("workflows")).expect("mkdir");
    std::fs::write(dir.join("workflows/edge.yaml"), WORKFLOW).expect("workflow");
}

/// A GitHub-signed delivery to `gh` with a body unique to `n`: its run ID when answered 202.
fn deliver(addr: SocketAddr, n: &str) -> Option<(u16, String)> {
    let body = format!(r#"{{"n":"{n}"}}"#);
    let sig = sign::github("gh-s3cret", body.as_bytes());
    let headers = [("content-type", "application/json"), ("x-hub-signature-256", sig.as_str())];
    let (status, _, answer) = post(addr, "/api/v0/hooks/gh", &headers, &body)?;
    let v: serde_json::Value = serde_json::from_str(&answer).ok()?;
    Some((status, v["data"]["run_id"].as_str().unwrap_or_default().to_string()))
}

/// Retries `f` until it answers or [`ANSWER_WITHIN`] passes (a refused or evicted attempt is
/// retried); panics with `what` if it never answers in time.
fn answered<T>(what: &str, f: impl Fn() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            assert!(started.elapsed() < ANSWER_WITHIN, "{what} took {:?} under attack", started.elapsed());
            return v;
        }
        assert!(started.elapsed() < ANSWER_WITHIN, "{what} not answered within {ANSWER_WITHIN:?} under attack");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every acknowledged run exists in the store: nothing answered 202 was lost.
fn all_stored(engine: &Engine, runs: &[String]) {
    for id in runs {
        let (status, _, text) = engine.get(&format!("/api/v0/executions/{id}"));
        assert_eq!(status, 200, "acknowledged run {id} is missing: {text}");
    }
}

/// Keeps `count` sockets open that never send a byte, reopening those the server closes, until
/// `stop` is set.
fn idle_flood(addr: SocketAddr, count: usize, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut sockets: Vec<Option<TcpStream>> = (0..count).map(|_| None).collect();
        let mut opened = 0;
        while !stop.load(Ordering::Relaxed) {
            for slot in &mut sockets {
                let closed = slot.as_mut().is_none_or(|s| !is_quiet(s));
                if closed {
                    *slot = TcpStream::connect(addr).ok();
                    opened += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        opened
    })
}

/// Whether `s` is open with nothing to read (a non-blocking read would block).
fn is_quiet(s: &mut TcpStream) -> bool {
    let _ = s.set_nonblocking(true);
    matches!(s.read(&mut [0u8; 64]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[test]
fn idle_sockets_past_the_cap_do_not_lock_clients_out() {
    let dir = tempfile::tempdir().expect("dir");
    project(dir.path());
    // File limit 256 → a derived cap of 128 connections.
    let env = [("COMPOZY_SERVER_HEADER_READ_TIMEOUT", "3s".to_string())];
    let engine = Engine::start_with_file_limit(dir.path(), &["--config", "compozy.yaml"], &env, 256);
    assert_eq!(engine.metric("compozy_http_connections_limit"), Some(128.0));
    assert_eq!(engine.metric(r#"compozy_http_connections_refused_total{reason="over_capacity"}"#), Some(0.0));
    assert_eq!(engine.metric(r#"compozy_http_connections_timed_out_total{phase="header"}"#), Some(0.0));

    let stop = Arc::new(AtomicBool::new(false));
    let flood = idle_flood(engine.addr, 300, stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    let mut runs = Vec::new();
    for i in 0..10 {
        let (status, _, _) = answered("/healthz", || http(engine.addr, "GET", "/healthz", &[]));
        assert_eq!(status, 200);
        let (status, run) = answered("a signed delivery", || deliver(engine.addr, &format!("idle-{i}")));
        assert_eq!(status, 202);
        runs.push(run);
        std::thread::sleep(Duration::from_millis(400));
    }
    stop.store(true, Ordering::Relaxed);
    let reopened = flood.join().expect("flood");
    assert!(reopened > 300, "the server closed idle sockets ({reopened} opened)");

    let refused = engine.metric(r#"compozy_http_connections_refused_total{reason="over_capacity"}"#).unwrap_or(0.0);
    assert!(refused > 0.0, "connections over the cap were refused");

    // Without the flood, a silent socket is closed by the head deadline.
    let mut silent = TcpStream::connect(engine.addr).expect("connect");
    silent.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    assert!(matches!(silent.read(&mut [0u8; 64]), Ok(0) | Err(_)), "closed by the server");
    engine.eventually("the silent socket is counted", |e| {
        e.metric(r#"compozy_http_connections_timed_out_total{phase="header"}"#).unwrap_or(0.0) >= 1.0
    });
    let open = engine.metric("compozy_http_connections_open").expect("open gauge");
    assert!(open <= 128.0, "{open} connections open over a cap of 128");
    all_stored(&engine, &runs);
}

#[test]
fn out_of_descriptors_the_accept_loop_backs_off_and_logs_one_line() {
    let dir = tempfile::tempdir().expect("dir");
    project(dir.path());
    // A cap above what the file limit allows, and a head deadline longer than the attack: accept
    // itself fails with EMFILE, the way it does when other parts of the process hold descriptors.
    let env = [
        ("COMPOZY_SERVER_MAX_CONNECTIONS", "1000".to_string()),
        ("COMPOZY_SERVER_HEADER_READ_TIMEOUT", "120s".to_string()),
    ];
    let engine = Engine::start_with_file_limit(dir.path(), &["--config", "compozy.yaml"], &env, 256);
    let accept_error = r#"compozy_http_connections_refused_total{reason="accept_error"}"#;
    assert_eq!(engine.metric(accept_error), Some(0.0));

    let started = Instant::now();
    // Silent connections until accept fails: past the descriptors they wait in the listen
    // backlog, and while that is full a connect gets no answer (so each gets a short timeout).
    let exhausted = "accept failing: out of resources";
    let mut flood = Vec::new();
    while engine.warnings_starting(exhausted).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(60), "accept never failed ({} connections)", flood.len());
        flood.extend(TcpStream::connect_timeout(&engine.addr, Duration::from_millis(200)).ok());
    }
    // While every descriptor is taken nothing more can be accepted, not even a scrape: the
    // back-off repeats for a while, then the attacker lets go.
    std::thread::sleep(Duration::from_secs(3));
    drop(flood);

    // The backlog drains and the back-off ends (at most a second): served again.
    engine.eventually("/healthz answered after the attack", |e| {
        http(e.addr, "GET", "/healthz", &[]).is_some_and(|(status, ..)| status == 200)
    });
    engine.eventually("the failed accepts are counted", |e| e.metric(accept_error).unwrap_or(0.0) > 0.0);
    let failures = engine.metric(accept_error).unwrap_or(0.0);
    let (lines, window) = (engine.warnings_starting(exhausted), started.elapsed());
    // One line per 10 s, whatever the number of failures.
    assert!(
        lines.len() as u64 <= 1 + window.as_secs() / 10,
        "{} lines in {window:?}: {:?}…",
        lines.len(),
        lines.first()
    );
    assert!(failures > lines.len() as f64, "{failures} failures, {} lines: the log is rate-limited", lines.len());
    // Backing off (10 ms doubling to 1 s) allows about one failed accept per second; a loop
    // retrying at once would count thousands. A slow machine only lowers the count.
    let spinning = 2.0 * (10.0 + window.as_secs_f64());
    assert!(failures <= spinning, "{failures} failed accepts in {window:?}: the accept loop does not back off");
    let (status, run) = deliver(engine.addr, "after-emfile").expect("a signed delivery after the attack");
    assert_eq!(status, 202);
    all_stored(&engine, &[run]);
}

#[test]
fn a_keep_alive_connection_idle_past_its_deadline_is_closed_and_counted() {
    let dir = tempfile::tempdir().expect("dir");
    project(dir.path());
    let env = [("COMPOZY_SERVER_IDLE_TIMEOUT", "1s".to_string())];
    let engine = Engine::start(dir.path(), &["--config", "compozy.yaml"], &env);
    let idle = r#"compozy_http_connections_timed_out_total{phase="idle"}"#;
    assert_eq!(engine.metric(idle), Some(0.0));
    // One request on a keep-alive connection, answered; then the client says nothing more.
    let mut s = TcpStream::connect(engine.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n").expect("write");
    let mut answer = Vec::new();
    let ended = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(ended.is_ok(), "the server closed the idle connection (the read ended with {ended:?})");
    engine.eventually("the idle connection is counted", |e| e.metric(idle) == Some(1.0));
    // Served once, so it is not a connection that never sent a head.
    assert_eq!(engine.metric(r#"compozy_http_connections_timed_out_total{phase="header"}"#), Some(0.0));
}

#[test]
fn stalled_bodies_on_one_slug_leave_signed_deliveries_to_another_answered() {
    let dir = tempfile::tempdir().expect("dir");
    project(dir.path());
    let env =
        [("COMPOZY_WEBHOOKS_MAX_IN_FLIGHT", "8".to_string()), ("COMPOZY_WEBHOOKS_BODY_TIMEOUT", "2s".to_string())];
    let engine = Engine::start(dir.path(), &["--config", "compozy.yaml"], &env);
    // More stalled deliveries than there are slots: each sends half its body and stops.
    let mut stalled: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut s = TcpStream::connect(engine.addr).expect("connect");
            let head = "POST /api/v0/hooks/stall HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n\
                        x-hub-signature-256: sha256=00\r\ncontent-length: 1000\r\n\r\n{\"half\":";
            s.write_all(head.as_bytes()).expect("write");
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut runs = Vec::new();
    for i in 0..20 {
        let (status, run) = answered("a signed delivery", || deliver(engine.addr, &format!("stall-{i}")));
        assert_eq!(status, 202);
        runs.push(run);
        let (status, _, _) = answered("/healthz", || http(engine.addr, "GET", "/healthz", &[]));
        assert_eq!(status, 200);
    }
    // The stalled senders are answered 408 at the body deadline, as problems.
    for s in stalled.iter_mut().take(3) {
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let mut answer = vec![0u8; 4096];
        let n = s.read(&mut answer).expect("an answer");
        let text = String::from_utf8_lossy(&answer[..n]).to_ascii_lowercase();
        assert!(text.starts_with("http/1.1 408"), "{text}");
        assert!(text.contains("application/problem+json"), "{text}");
    }
    engine.eventually("every stalled body counted", |e| {
        e.metric(r#"compozy_webhook_deliveries_total{source="stall",result="body_timeout"}"#) == Some(40.0)
    });
    drop(stalled);
    assert_eq!(engine.metric(r#"compozy_webhook_deliveries_total{source="gh",result="accepted"}"#), Some(20.0));
    assert_eq!(engine.metric(r#"compozy_webhook_deliveries_total{source="gh",result="overloaded"}"#), Some(0.0));
    all_stored(&engine, &runs);
}

#[test]
fn replays_that_vary_every_unsigned_header_start_no_new_run() {
    let dir = tempfile::tempdir().expect("dir");
    project(dir.path());
    let engine = Engine::start(dir.path(), &["--config", "compozy.yaml"], &[]);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    let body = r#"{"id":"evt_1","amount":100}"#;
    let gh = sign::github("gh-s3cret", body.as_bytes());
    let hmac = sign::hmac_hex("k3y", body.as_bytes());
    let stripe = sign::stripe(&["st-s3cret"], now, body.as_bytes());
    let std_sig = sign::standard("whsec_c2VjcmV0LWtleS0xMjM0NQ==", "msg_1", now, body.as_bytes()).expect("sign");
    let now_s = now.to_string();
    let captured: [(&str, Vec<(&str, &str)>); 4] = [
        ("gh", vec![("x-hub-signature-256", &gh)]),
        ("signed-hmac", vec![("x-signature", &hmac)]),
        ("stripe", vec![("stripe-signature", &stripe)]),
        ("std", vec![("webhook-id", "msg_1"), ("webhook-timestamp", &now_s), ("webhook-signature", &std_sig)]),
    ];
    let mut runs = Vec::new();
    for (slug, signed) in &captured {
        let path = format!("/api/v0/hooks/{slug}");
        let (status, _, answer) = post(engine.addr, &path, signed, body).expect("exchange");
        assert_eq!(status, 202, "{slug}: {answer}");
        let v: serde_json::Value = serde_json::from_str(&answer).expect("json");
        runs.push(v["data"]["run_id"].as_str().expect("run id").to_string());
        // The attacker keeps the signed parts and changes every other header, in any case.
        for i in 0..6 {
            let id = format!("replay-{i}");
            let varied = [
                ("X-Idempotency-Key", id.as_str()),
                ("x-github-delivery", id.as_str()),
                ("X-REQUEST-ID", id.as_str()),
                ("user-agent", id.as_str()),
                ("X-Forwarded-For", "203.0.113.9"),
            ];
            let headers: Vec<(&str, &str)> = signed.iter().copied().chain(varied).collect();
            let (status, _, answer) = post(engine.addr, &path, &headers, body).expect("exchange");
            assert_eq!(status, 200, "{slug} replay {i}: {answer}");
            assert!(answer.contains(r#""status":"duplicate""#), "{slug} replay {i}: {answer}");
        }
        let source = if *slug == "signed-hmac" { "hmac" } else { slug };
        let sample =
            |result: &str| format!(r#"compozy_webhook_deliveries_total{{source="{source}",result="{result}"}}"#);
        assert_eq!(engine.metric(&sample("accepted")), Some(1.0), "{slug}: one run");
        assert_eq!(engine.metric(&sample("duplicate")), Some(6.0), "{slug}");
    }
    // A different signed body is a different delivery.
    let (status, run) = deliver(engine.addr, "fresh").expect("exchange");
    assert_eq!(status, 202);
    runs.push(run);
    let (status, _, _) = http(engine.addr, "GET", "/healthz", &[]).expect("healthz");
    assert_eq!(status, 200);
    all_stored(&engine, &runs);
}
