//! The shipped monitoring assets proven against a real Prometheus: it scrapes an embedded engine
//! (SQLite, in-process cache), a server-mode engine (PostgreSQL, Redis) and a busy engine (one
//! worker slot, a JWT issuer) under traffic that exercises every component, failures included,
//! with the shipped recording and alert rules loaded. Then every dashboard query, every recording
//! rule and every series an alert expression reads must return data through Prometheus's HTTP
//! API, and every alert this traffic must trigger must have fired.
//!
//! Alert `for:` durations are set to 0 in the copy Prometheus loads (the expressions are the
//! shipped ones): waiting minutes for each would prove nothing more. The SLO burn-rate alerts
//! need no shorter windows: every window, 5m to 30d, holds the whole run.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::prometheus::{Prometheus, free_port, require_tool};
use common::proxy::Proxy;
use common::services::{TestDb, redis_up};
use common::{Engine, post};
use compozy_testkit::service_missing;
use compozy_webhooks::verify::sign::hmac_hex;
use serde_json::Value;

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy");

/// Alerts the traffic below must set off (each named with the failure that causes it).
const EXPECTED_FIRING: &[&str] = &[
    "CompozyTargetDown",           // a scrape target nobody listens on
    "MetricsCardinalityOverflow",  // the embedded engine's tiny cap on compozy_http_requests_total
    "HighAuthFailureRate",         // guessed keys outnumber good ones (about 100 failures to 42 successes)
    "WorkerTasksDead",             // a task whose tool always fails, dead-lettered after its attempts
    "AutoloadReloadFailing",       // a broken resource file reloaded before the first scrape
    "PostgresConnectionTimeouts",  // PostgreSQL partitioned away for a moment
    "WebhookVerificationFailures", // 6 of 10 deliveries unsigned or wrongly signed
    "PostgresConnectionErrors",    // the proxy to PostgreSQL closing every new session at once
    "HttpRequestsInFlightHigh",    // 125 deliveries whose bodies never finish (in flight until their body deadline)
    "WebhookOverloaded",           // bursts of signed deliveries find both webhook slots taken
    "WebhookErrorBudgetBurnFast",  // ... and are refused 503: far beyond 14.4x the 0.1% budget
    "WebhookErrorBudgetBurnSlow",
    "PostgresPoolMostlyIdle",        // the server engine's pool, idle between bursts
    "WorkerQueueBacklog",            // the busy engine's only slot held while 150 runs queue behind it
    "ScheduleToStartBudgetBurnFast", // ... so each of them waits over 5s for a worker
    "ScheduleToStartBudgetBurnSlow",
    "ExpiredTokensHigh",       // 450 expired JWTs from a trusted issuer within the 5m window
    "HttpErrorBudgetBurnFast", // 30 requests answered 503 while PostgreSQL refuses sessions: ~4% of all
    "HttpErrorBudgetBurnSlow",
    "SqliteConnectionErrors", // the embedded engine's data directory moved away for a moment
];

/// Webhook slots of the embedded engine: few, with no wait for one, so a burst of signed
/// deliveries finds them taken (stalled bodies take no slot: they are read before admission).
const WEBHOOK_SLOTS: usize = 2;
/// Requests whose bodies never finish: in flight until `webhooks.body_timeout`.
const HELD_DELIVERIES: usize = 125;
/// Runs queued behind the busy engine's held slot: more than the backlog alert's 100, and
/// enough that their slow starts outnumber every fast one of the other engines.
const QUEUED_RUNS: usize = 150;
/// Expired tokens presented at once: the alert's rate over 5m must exceed 1/s (300 in 5m).
const EXPIRED_TOKENS: usize = 450;
/// The HS256 secret of the busy engine's trusted JWT issuer.
const JWT_SECRET: &str = "e2e-issuer-secret-of-more-than-32-bytes";
/// Requests answered 503 while PostgreSQL refuses sessions: well over 1.44% of the run's
/// requests (the HTTP availability SLO's fast burn, 14.4 x its 0.1% budget).
const REFUSED_REQUESTS: usize = 30;

#[test]
fn dashboards_and_alerts_answer_from_a_real_prometheus() {
    let Some(()) = require_tool("prometheus") else { return };
    let Some(db) = TestDb::create("e2e") else { return service_missing("PostgreSQL", "cannot create a database") };
    if !redis_up() {
        return service_missing("Redis", "127.0.0.1:6379 refused");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let project = dir.path().join("project");
    write_project(&project);
    let auth_env = |extra: Vec<(&'static str, String)>| {
        let mut env = vec![
            ("COMPOZY_AUTH_RATE_LIMIT_AUTH_FAILURES_REQUESTS", "25".to_string()),
            ("COMPOZY_WORKER_POLL_INTERVAL", "100ms".to_string()),
            ("COMPOZY_WORKER_REFRESH_INTERVAL", "500ms".to_string()),
        ];
        env.extend(extra);
        env
    };
    let embedded_cfg = project.join("embedded.yaml").display().to_string();
    let server_cfg = project.join("server.yaml").display().to_string();
    let embedded_env = auth_env(vec![
        ("COMPOZY_WEBHOOKS_MAX_IN_FLIGHT", WEBHOOK_SLOTS.to_string()),
        ("COMPOZY_WEBHOOKS_SLOT_WAIT", "0s".to_string()),
        // Pooled SQLite connections are reopened within a second, so hiding the database file
        // makes the next acquires fail.
        ("COMPOZY_DATABASE_MAX_LIFETIME", "1s".to_string()),
    ]);
    let embedded = Engine::start(&dir.path().join("embedded"), &["--config", &embedded_cfg], &embedded_env);
    // The server engine reaches PostgreSQL through a proxy the test cuts for a moment.
    let proxy = Proxy::start("127.0.0.1:5432");
    let server_env = auth_env(vec![
        ("COMPOZY_DATABASE_URL", format!("postgres://postgres@{}/{}", proxy.addr, db.0)),
        ("COMPOZY_DATABASE_ACQUIRE_TIMEOUT", "1s".into()),
        ("COMPOZY_DATABASE_HEALTH_CHECK_INTERVAL", "200ms".into()),
        ("COMPOZY_REDIS_URL", "redis://127.0.0.1:6379".into()),
        // Rate-limit windows live in Redis: keep this run's apart from earlier runs'.
        ("COMPOZY_REDIS_PREFIX", format!("e2e-{}-{}:", std::process::id(), db.0)),
    ]);
    let server = Engine::start(&dir.path().join("server"), &["--config", &server_cfg], &server_env);
    // One worker slot; limits high enough for a burst of run starts and of expired tokens.
    let busy_cfg = project.join("busy.yaml").display().to_string();
    let busy_env = [
        ("COMPOZY_AUTH_RATE_LIMIT_DEFAULT_REQUESTS", "1000".to_string()),
        ("COMPOZY_AUTH_RATE_LIMIT_AUTH_FAILURES_REQUESTS", "1000".to_string()),
        ("COMPOZY_WORKER_POLL_INTERVAL", "100ms".to_string()),
        ("COMPOZY_WORKER_REFRESH_INTERVAL", "500ms".to_string()),
    ];
    let busy = Engine::start(&dir.path().join("busy"), &["--config", &busy_cfg], &busy_env);

    // A reload that fails, before the first scrape: every sample Prometheus sees says so.
    std::fs::write(project.join("resources/broken.yaml"), "resource: workflow\nid: [unclosed\n").expect("write");
    assert_eq!(embedded.request("POST", "/api/v0/admin/reload", &[]).0, 422);

    let prometheus = Prometheus::start(dir.path(), &prometheus_config(dir.path(), &[&embedded, &server, &busy]));
    // Counters must be seen before they move, or `rate` and `increase` have nothing to compare.
    let up = prometheus.wait_for(Duration::from_secs(60), |p| count(&p.query("up == 1")) == 3);
    assert!(up, "Prometheus never scraped the three engines: {}", prometheus.query("up"));
    let queued = queue_behind_held_slot(&busy);
    present_expired_tokens(&busy);
    for engine in [&embedded, &server] {
        drive(engine);
        deliver_webhooks(engine);
    }
    postgres_outage(&server, &proxy);
    // Its 503 series must be seen before the refused sessions add to them (the HTTP SLO).
    let answered_503 = format!("compozy_http_requests_total{{instance=\"{}\",status_code=\"503\"}}", server.addr);
    let seen_503 = prometheus.wait_for(Duration::from_secs(30), |p| count(&p.query(&answered_503)) > 0);
    assert!(seen_503, "Prometheus never saw the outage's 503s: {}", prometheus.query(&answered_503));
    postgres_refuses_sessions(&server, &proxy);
    let held = hold_deliveries(&embedded, HELD_DELIVERIES);
    overload_webhooks(&embedded);
    let seen = prometheus.wait_for(Duration::from_secs(60), |p| {
        count(&p.query("max_over_time(compozy:http_requests_in_flight:sum[5m]) > 100")) == 1
            && count(&p.query("increase(compozy_webhook_deliveries_total{result=\"overloaded\"}[5m]) > 0")) == 1
    });
    assert!(
        seen,
        "Prometheus never saw the held deliveries: {}",
        prometheus.query("compozy:http_requests_in_flight:sum")
    );
    drop(held);
    release_held_slot(&prometheus, &project.join(RELEASE), queued);
    for engine in [&embedded, &server] {
        guess_keys(engine);
    }
    hide_sqlite_database(&embedded, &dir.path().join("embedded/data"));
    let scraped = prometheus.wait_for(Duration::from_secs(60), |p| {
        count(&p.query("increase(compozy_worker_tasks_dead_total[5m]) > 0")) == 2
            && count(
                &p.query("sum by (instance) (increase(compozy_auth_attempts_total{reason=\"rate_limited\"}[5m])) > 0"),
            ) == 2
    });
    assert!(
        scraped,
        "Prometheus never saw the traffic: {} {}",
        prometheus.query("increase(compozy_worker_tasks_dead_total[5m])"),
        prometheus.query("compozy_auth_attempts_total{reason=\"rate_limited\"}")
    );
    // Rules are evaluated every second; give every group a few rounds over the new samples.
    std::thread::sleep(Duration::from_secs(4));

    let mut failures = Vec::new();
    for (source, expr) in dashboard_queries() {
        check(&prometheus, &source, &expr, &mut failures);
    }
    for (alert, expr) in alert_expressions() {
        for selector in selectors(&expr) {
            check(&prometheus, &format!("alert {alert}"), &selector, &mut failures);
        }
    }
    for record in recorded_names() {
        check(&prometheus, "recording rule", &record, &mut failures);
    }
    // Fired at some evaluation of this run: the backlog alert ends with its backlog.
    let all_fired = prometheus.wait_for(Duration::from_secs(20), |p| {
        let fired: BTreeSet<String> = p.fired("1h").into_iter().collect();
        EXPECTED_FIRING.iter().all(|a| fired.contains(*a))
    });
    if !all_fired {
        failures.push(format!("expected to fire: {EXPECTED_FIRING:?}; fired: {:?}", prometheus.fired("1h")));
    }
    assert!(failures.is_empty(), "{} problem(s):\n{}", failures.len(), failures.join("\n"));
}

/// One query: an error or an empty answer is a failure.
fn check(prometheus: &Prometheus, source: &str, expr: &str, failures: &mut Vec<String>) {
    let answer = prometheus.query(expr);
    if answer["status"] != "success" {
        failures.push(format!("{source}: `{expr}` failed: {answer}"));
    } else if count(&answer) == 0 {
        failures.push(format!("{source}: `{expr}` returned no data"));
    }
}

fn count(answer: &Value) -> usize {
    answer["data"]["result"].as_array().map_or(0, Vec::len)
}

/// Traffic through every component of one engine, failures included.
fn drive(engine: &Engine) {
    for path in ["/healthz", "/readyz", "/api/v0/resources/workflows", "/api/v0/instances", "/api/v0/executions"] {
        assert_eq!(engine.get(path).0, 200, "{path}");
    }
    assert_eq!(engine.get("/api/v0/resources/workflows/nope").0, 404);
    assert_eq!(engine.get("/no/such/route").0, 404);
    for workflow in ["ok", "ok", "fails"] {
        let (status, _, body) = engine.request("POST", &format!("/api/v0/workflows/{workflow}/executions"), &[]);
        assert_eq!(status, 202, "{body}");
    }
    // The `users` group allows 30 per fixed minute: of 65, at least 5 are refused (even when a
    // window boundary falls in between) and counted by route.
    let limited = (0..65).filter(|_| engine.get("/api/v0/users").0 == 429).count();
    assert!(limited >= 5, "the users group limit: {limited} refused");
    engine.eventually("the failing task is dead-lettered", |e| {
        e.metric("compozy_worker_tasks_dead_total{queue_name=\"default\"}").is_some_and(|v| v >= 1.0)
    });
}

/// PostgreSQL partitioned away for a moment: connections hang, acquires time out (counted),
/// requests that need the store get 503.
fn postgres_outage(engine: &Engine, proxy: &Proxy) {
    proxy.blackhole();
    engine.eventually("the store is reported down", |e| e.get("/readyz").0 == 503);
    for _ in 0..3 {
        assert_eq!(engine.get("/api/v0/instances").0, 503);
    }
    proxy.restore();
    engine.eventually("the store is back", |e| e.get("/api/v0/instances").0 == 200);
}

/// The proxy closes every connection and every new session at once: the acquires that must open
/// a connection fail without waiting out the timeout (counted as connection errors), and the
/// requests that need the store are answered 503 at once.
fn postgres_refuses_sessions(engine: &Engine, proxy: &Proxy) {
    proxy.cut();
    engine.eventually("the store is reported down", |e| e.get("/readyz").0 == 503);
    for _ in 0..REFUSED_REQUESTS {
        assert_eq!(engine.get("/api/v0/instances").0, 503);
    }
    proxy.restore();
    engine.eventually("the store is back", |e| e.get("/api/v0/instances").0 == 200);
}

/// Moves the embedded engine's data directory away until an acquire has failed to open the
/// database (connections live a second at most, see `COMPOZY_DATABASE_MAX_LIFETIME` above), then
/// puts it back: the connection errors are counted and the engine recovers.
fn hide_sqlite_database(engine: &Engine, data: &Path) {
    let hidden = data.with_extension("hidden");
    std::fs::rename(data, &hidden).expect("move the data directory away");
    engine.eventually("a SQLite connection fails to open", |e| {
        e.get("/readyz");
        e.metric("compozy_sqlite_connection_errors_total").is_some_and(|n| n > 0.0)
    });
    std::fs::rename(&hidden, data).expect("put the data directory back");
    engine.eventually("the embedded store is back", |e| e.get("/readyz").0 == 200);
}

/// Deliveries whose bodies never finish: each holds an HTTP request in flight (until
/// `webhooks.body_timeout` answers 408). Dropping the streams ends them.
fn hold_deliveries(engine: &Engine, n: usize) -> Vec<TcpStream> {
    // Another webhook (source `bulk`), so the `ci` source's verification ratio stays as sent.
    let head = "POST /api/v0/hooks/bulk HTTP/1.1\r\nhost: e2e\r\ncontent-type: application/json\r\n\
                content-length: 100\r\n\r\n{";
    (0..n)
        .map(|_| {
            let mut stream = TcpStream::connect(engine.addr).expect("connect");
            stream.write_all(head.as_bytes()).expect("write");
            stream
        })
        .collect()
}

/// Bursts of signed deliveries (distinct bodies, so none is a duplicate) at the embedded engine's
/// two slots: some find them taken and are refused 503 `overloaded`.
fn overload_webhooks(engine: &Engine) {
    let addr = engine.addr;
    for round in 0..20 {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(32));
        let statuses: Vec<u16> = (0..32)
            .map(|i| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let body = format!(r#"{{"action":"deploy","service":"burst-{round}-{i}"}}"#);
                    let signature = format!("sha256={}", hmac_hex("e2e-webhook-secret", body.as_bytes()));
                    let headers = [("content-type", "application/json"), ("x-signature", signature.as_str())];
                    barrier.wait();
                    post(addr, "/api/v0/hooks/bulk", &headers, &body).map_or(0, |r| r.0)
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().expect("burst thread"))
            .collect();
        assert!(statuses.iter().all(|s| [202, 503].contains(s)), "{statuses:?}");
        if statuses.contains(&503) {
            return;
        }
    }
    panic!("20 bursts of 32 signed deliveries never found both slots taken");
}

/// Guessed keys: refused, then the address is blocked (brute-force guard). Last, since the block
/// covers every key from this address.
fn guess_keys(engine: &Engine) {
    let guesses: Vec<u16> = (0..60)
        .map(|i| {
            let bearer = format!("Bearer cpz_guess_{i:040}");
            engine.request("GET", "/api/v0/instances", &[("authorization", bearer.as_str())]).0
        })
        .collect();
    assert!(guesses.contains(&401) && guesses.contains(&429), "{guesses:?}");
}

/// The file whose creation ends the busy engine's held task (relative to the project).
const RELEASE: &str = "release";

/// The busy engine's only slot is taken by a task that waits for [`RELEASE`], then
/// [`QUEUED_RUNS`] runs are started behind it: ready tasks that no worker can claim. Returns
/// when the last was queued.
fn queue_behind_held_slot(engine: &Engine) -> Instant {
    let start = |workflow: &str| engine.request("POST", &format!("/api/v0/workflows/{workflow}/executions"), &[]);
    let (status, _, body) = start("held");
    assert_eq!(status, 202, "{body}");
    let claimed = "compozy_worker_schedule_to_start_seconds_count{queue_name=\"busy\"}";
    engine.eventually("the held task takes the slot", |e| e.metric(claimed) == Some(1.0));
    for _ in 0..QUEUED_RUNS {
        let (status, _, body) = start("queued");
        assert_eq!(status, 202, "{body}");
    }
    Instant::now()
}

/// Frees the held slot once Prometheus has seen the backlog alert fire and every queued task has
/// waited beyond the schedule-to-start objective (5s): the worker then starts them all late.
fn release_held_slot(prometheus: &Prometheus, release: &Path, queued: Instant) {
    let fired = prometheus.wait_for(Duration::from_secs(60), |p| p.firing().iter().any(|a| a == "WorkerQueueBacklog"));
    assert!(fired, "the backlog never fired: {}", prometheus.query("compozy:worker_task_queue_depth:max"));
    // The fault's length, not a timed assertion: the objective counts starts later than 5s.
    std::thread::sleep(Duration::from_secs(6).saturating_sub(queued.elapsed()));
    std::fs::write(release, "").expect("release the held task");
}

/// Tokens from the trusted issuer, correctly signed, that expired a minute ago (beyond the
/// default 30s leeway): each is refused 401 and counted as `expired_token`.
fn present_expired_tokens(engine: &Engine) {
    let exp = jsonwebtoken::get_current_timestamp() - 60;
    let claims = serde_json::json!({"iss": "https://idp.e2e", "aud": "compozy", "sub": "ci-bot", "exp": exp});
    let key = jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes());
    let token = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("sign");
    let bearer = format!("Bearer {token}");
    for _ in 0..EXPIRED_TOKENS {
        assert_eq!(engine.request("GET", "/api/v0/instances", &[("authorization", bearer.as_str())]).0, 401);
    }
    let expired = "compozy_auth_attempts_total{outcome=\"failure\",reason=\"expired_token\",method=\"jwt\"}";
    assert_eq!(engine.metric(expired), Some(EXPIRED_TOKENS as f64));
}

/// A workflow started by an HMAC-signed webhook.
const HOOKED: &str = r#"resource: workflow
id: hooked
triggers:
  - type: webhook
    slug: deploys
    source: ci
    verify: { method: hmac, secret: e2e-webhook-secret, header: X-Signature, prefix: "sha256=" }
    events:
      - name: deploy
        filter: 'body.action == "deploy"'
        input: { service: "{{ body.service }}" }
tasks:
  - { id: pause, type: wait, duration: 10ms }
"#;

/// Signed deliveries (started runs and one no event matches), unsigned and wrongly signed ones.
fn deliver_webhooks(engine: &Engine) {
    let send = |body: &str, signature: Option<&str>| {
        let mut headers = vec![("content-type", "application/json")];
        headers.extend(signature.map(|s| ("x-signature", s)));
        post(engine.addr, "/api/v0/hooks/deploys", &headers, body).expect("exchange").0
    };
    let signed = |body: &str| format!("sha256={}", hmac_hex("e2e-webhook-secret", body.as_bytes()));
    for i in 0..3 {
        let body = format!(r#"{{"action":"deploy","service":"api-{i}"}}"#);
        assert_eq!(send(&body, Some(&signed(&body))), 202);
    }
    let other = r#"{"action":"rollback"}"#;
    assert_eq!(send(other, Some(&signed(other))), 200, "no event matches");
    for i in 0..6 {
        let body = format!(r#"{{"action":"deploy","service":"x-{i}"}}"#);
        let wrong = format!("sha256={}", hmac_hex("not-the-secret", body.as_bytes()));
        assert_eq!(send(&body, if i % 2 == 0 { Some(&wrong) } else { None }), 401);
    }
}

fn write_project(root: &Path) {
    let bulk = HOOKED
        .replace("id: hooked", "id: bulk")
        .replace("slug: deploys\n    source: ci", "slug: bulk\n    source: bulk");
    let busy = format!(
        "project: {{name: e2e}}\nautoload: {{include: [\"busy/*.yaml\"]}}\n\
         worker: {{queue: busy, max_concurrent_activities: 1, max_concurrent_workflows: 1}}\n\
         auth:\n  jwt:\n    issuers:\n      - {{issuer: \"https://idp.e2e\", audiences: [compozy], \
         algorithm: HS256, secret: \"{JWT_SECRET}\"}}\n"
    );
    // Waits for the release file (bounded: a test that fails first leaves no process behind).
    let hold = format!(
        "resource: tool\nid: hold\ncommand: sh\nargs:\n  - -c\n  - 'i=0; while [ $i -lt 1200 ]; do \
         [ -e \"$0\" ] && exit 0; sleep 0.05; i=$((i+1)); done; exit 1'\n  - \"{}\"\n",
        root.join(RELEASE).display()
    );
    let files = [
        (
            "embedded.yaml",
            "project: {name: e2e}\nautoload: {include: [\"resources/**/*.yaml\"]}\n\
             monitoring: {series_limits: {compozy_http_requests_total: 12}}\n",
        ),
        ("server.yaml", "project: {name: e2e}\nautoload: {include: [\"resources/**/*.yaml\"]}\n"),
        (
            "resources/ok.yaml",
            "resource: workflow\nid: ok\ntriggers: [{type: manual}]\ntasks:\n  - {id: pause, type: wait, duration: 10ms}\n",
        ),
        (
            "resources/fails.yaml",
            "resource: workflow\nid: fails\ntriggers: [{type: manual}]\ntasks:\n  - id: boom\n    type: tool\n    \
             tool: exit-3\n    timeout: 5s\n    retry: {max_attempts: 2, backoff: {initial: 50ms, max: 100ms, multiplier: 2}}\n",
        ),
        ("resources/exit-3.yaml", "resource: tool\nid: exit-3\ncommand: sh\nargs: [\"-c\", \"exit 3\"]\n"),
        ("resources/hooked.yaml", HOOKED),
        ("resources/bulk.yaml", bulk.as_str()),
        ("busy.yaml", busy.as_str()),
        ("busy/hold.yaml", hold.as_str()),
        (
            "busy/held.yaml",
            "resource: workflow\nid: held\ntriggers: [{type: manual}]\ntasks:\n  - {id: hold, type: tool, tool: hold, timeout: 90s}\n",
        ),
        (
            "busy/queued.yaml",
            "resource: workflow\nid: queued\ntriggers: [{type: manual}]\ntasks:\n  - {id: pause, type: wait, duration: 1ms}\n",
        ),
    ];
    for (path, text) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
}

/// One job, `compozy`, with the engines and a target nobody listens on; every shipped rule file
/// with `for:` set to 0.
fn prometheus_config(dir: &Path, engines: &[&Engine]) -> String {
    std::fs::create_dir_all(dir.join("slo")).expect("mkdir slo");
    for file in rule_files() {
        let text = std::fs::read_to_string(format!("{DEPLOY}/prometheus/{file}")).expect("rule file");
        let immediate: String = text
            .lines()
            .map(|l| if l.trim_start().starts_with("for:") { String::new() } else { format!("{l}\n") })
            .collect();
        std::fs::write(dir.join(&file), immediate).expect("write rule file");
    }
    let mut targets: Vec<String> = engines.iter().map(|e| format!("'{}'", e.addr)).collect();
    targets.push(format!("'127.0.0.1:{}'", free_port()));
    format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [{}]\n\
         scrape_configs:\n  - job_name: compozy\n    static_configs:\n      - targets: [{}]\n",
        rule_files().join(", "),
        targets.join(", ")
    )
}

/// Every panel target of every shipped dashboard, with the template variables set to "all".
fn dashboard_queries() -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for entry in std::fs::read_dir(format!("{DEPLOY}/grafana/dashboards")).expect("dashboards") {
        let path = entry.expect("entry").path();
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        for panel in dashboard["panels"].as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let Some(expr) = target["expr"].as_str() else { continue };
                let title = panel["title"].as_str().unwrap_or("?");
                queries.push((format!("{name} / {title}"), expr.replace("$job", ".+").replace("$instance", ".+")));
            }
        }
    }
    assert!(queries.len() > 50, "the dashboards were read: {}", queries.len());
    queries
}

/// The shipped rule files: recording rules, alerts and the SLO files.
fn rule_files() -> Vec<String> {
    let mut files = vec!["recording-rules.yml".to_string(), "alerts.yml".to_string()];
    let mut slos: Vec<String> = std::fs::read_dir(format!("{DEPLOY}/prometheus/slo"))
        .expect("slo dir")
        .map(|e| format!("slo/{}", e.expect("entry").file_name().to_string_lossy()))
        .collect();
    slos.sort();
    files.extend(slos);
    files
}

/// Every rule of every shipped rule file.
fn shipped_rules() -> Vec<Value> {
    rule_files()
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(format!("{DEPLOY}/prometheus/{f}")).expect("rule file");
            let rules: Value = serde_saphyr::from_str(&text).expect("rule file parses");
            rules["groups"].as_array().cloned().unwrap_or_default()
        })
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// `(alert, expression)` of every shipped alert.
fn alert_expressions() -> Vec<(String, String)> {
    shipped_rules()
        .into_iter()
        .filter_map(|r| Some((r["alert"].as_str()?.to_string(), r["expr"].as_str()?.to_string())))
        .collect()
}

/// Every recorded series name (an SLO's series once per `slo` label).
fn recorded_names() -> Vec<String> {
    shipped_rules()
        .into_iter()
        .filter_map(|r| {
            let record = r["record"].as_str()?;
            Some(match r["labels"]["slo"].as_str() {
                Some(slo) => format!("{record}{{slo=\"{slo}\"}}"),
                None => record.to_string(),
            })
        })
        .collect()
}

/// The series selectors of an expression (metric name and matchers, without range or
/// function), e.g. `compozy_auth_attempts_total{outcome="failure"}`.
fn selectors(expr: &str) -> Vec<String> {
    let bytes = expr.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !ident(bytes[i]) || (i > 0 && ident(bytes[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && ident(bytes[i]) {
            i += 1;
        }
        let name = &expr[start..i];
        let metric = name.starts_with("compozy_") || name.starts_with("compozy:") || name == "up";
        if metric && !expr[..start].ends_with('"') {
            let matchers = expr[i..].strip_prefix('{').and_then(|rest| rest.find('}').map(|end| &expr[i..i + end + 2]));
            out.push(format!("{name}{}", matchers.unwrap_or("")));
        }
    }
    out.dedup();
    out
}
