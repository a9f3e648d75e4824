//! `http` tasks against a local server, and the execution API's handlers.

mod common;

use std::time::Duration;

use axum::Json;
use axum::routing::{get, post};
use common::*;
use serde_json::{Value, json};

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    format!("http://{addr}")
}

fn target() -> axum::Router {
    axum::Router::new()
        .route("/echo", post(|Json(v): Json<Value>| async move { Json(json!({"got": v})) }))
        .route("/fail", get(|| async { (http::StatusCode::INTERNAL_SERVER_ERROR, "no") }))
        .route("/big", get(|| async { "x".repeat(2 * 1024 * 1024) }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
}

async fn finished(w: &compozy_worker::Worker, id: &str) -> compozy_worker::Run {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = w.queue().get_run(id).await.expect("get").expect("run");
        if matches!(r.status.as_str(), "succeeded" | "failed" | "cancelled") {
            return r;
        }
        assert!(tokio::time::Instant::now() < deadline, "run did not finish: {r:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_tasks_succeed_fail_cap_and_time_out() {
    let base = serve(target()).await;
    let env = Env::sqlite().await;
    let task = |id: &str, path: &str, extra: &str| {
        format!("resource: workflow\nid: {id}\ntasks:\n  - id: call\n    type: http\n    url: {base}{path}\n{extra}")
    };
    env.add("workflows/h1.yaml", &task("h-echo", "/echo", "    method: POST\n    body: {x: \"{{ input.x }}\"}\n"))
        .await;
    env.add("workflows/h2.yaml", &task("h-fail", "/fail", "")).await;
    env.add("workflows/h3.yaml", &task("h-big", "/big", "")).await;
    env.add("workflows/h4.yaml", &task("h-slow", "/slow", "    timeout: 300ms\n")).await;
    let (w, m) = env.worker(fast());
    let (s, h) = spawn(&w);
    let id = w.start_run("h-echo", &json!({"x": [1, 2]})).await.expect("start");
    assert_eq!(finished(&w, &id).await.output, Some(json!({"status": 200, "body": {"got": {"x": [1, 2]}}})));
    let expect = [
        ("h-fail", "task `call`: http status 500"),
        ("h-big", "task `call`: http response exceeded max_response_bytes"),
        ("h-slow", "task `call`: timed out"),
    ];
    for (wf, error) in expect {
        let id = w.start_run(wf, &json!({})).await.expect("start");
        let run = finished(&w, &id).await;
        assert_eq!((run.status.as_str(), run.error.as_deref()), ("failed", Some(error)));
    }
    let t = render(&m);
    let series =
        |o: &str| format!("compozy_worker_activity_duration_seconds_count{{activity_type=\"http\",outcome=\"{o}\"}}");
    assert_eq!(
        (sample(&t, &series("success")), sample(&t, &series("error")), sample(&t, &series("timeout"))),
        (1.0, 2.0, 1.0)
    );
    let _ = s.send(());
    h.await.expect("stops");
}

async fn call(base: &str, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client.request(method.parse().expect("method"), format!("{base}{path}"));
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execution_api() {
    let env = Env::sqlite().await;
    let (w, _) = env.worker(fast());
    let mut router = axum::Router::new();
    for (path, route) in compozy_worker::api::routes(w.clone()) {
        router = router.route(path, route);
    }
    let base = serve(router).await;
    let (status, body) = call(&base, "POST", "/api/v0/workflows/long/executions", Some(r#"{"input": {"a": 1}}"#)).await;
    assert_eq!(status, 202, "{body}");
    let id = body["data"]["execution_id"].as_str().expect("id").to_string();
    let (status, body) = call(&base, "GET", &format!("/api/v0/executions/{id}"), None).await;
    assert_eq!((status, &body["data"]["execution"]["input"]), (200, &json!({"a": 1})));
    assert_eq!(body["data"]["tasks"][0]["state"], "available");
    for _ in 0..2 {
        call(&base, "POST", "/api/v0/workflows/noop/executions", None).await;
    }
    let (_, body) = call(&base, "GET", "/api/v0/executions?workflow_id=noop&limit=1", None).await;
    assert_eq!(body["data"]["executions"].as_array().map(Vec::len), Some(1));
    let cursor = body["data"]["next_cursor"].as_str().expect("cursor").to_string();
    let (_, page2) =
        call(&base, "GET", &format!("/api/v0/executions?workflow_id=noop&limit=1&cursor={cursor}"), None).await;
    assert_eq!(page2["data"]["executions"].as_array().map(Vec::len), Some(1));
    assert_ne!(page2["data"]["executions"][0]["id"], body["data"]["executions"][0]["id"]);
    let (_, all) = call(&base, "GET", "/api/v0/executions?status=pending", None).await;
    assert_eq!(all["data"]["executions"].as_array().map(Vec::len), Some(3));
    assert_eq!(call(&base, "POST", &format!("/api/v0/executions/{id}/cancel"), None).await.0, 200);
    let (status, p) = call(&base, "POST", &format!("/api/v0/executions/{id}/cancel"), None).await;
    assert_eq!((status, p["type"].as_str()), (409, Some("urn:compozy:problem:execution-finished")));
    assert_eq!(call(&base, "POST", "/api/v0/executions/nope/cancel", None).await.0, 404);
    assert_eq!(call(&base, "GET", "/api/v0/executions/nope", None).await.0, 404);
    assert_eq!(call(&base, "POST", "/api/v0/workflows/nope/executions", None).await.0, 404);
    assert_eq!(call(&base, "POST", "/api/v0/workflows/noop/executions", Some("[1")).await.0, 400);
    assert_eq!(call(&base, "GET", "/api/v0/executions?status=bogus", None).await.0, 400);
    assert_eq!(call(&base, "GET", "/api/v0/executions?cursor=zz", None).await.0, 400);
    let (status, wf) = call(&base, "GET", "/api/v0/workflows/noop", None).await;
    assert_eq!((status, wf["data"]["id"].as_str()), (200, Some("noop")));
    let (_, list) = call(&base, "GET", "/api/v0/workflows", None).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(7));
}

/// Every attempt of a task is visible in `GET /api/v0/executions/{id}`: the ended ones with
/// outcome, error, output and the worker that ran them, and the one still running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_show_every_attempt() {
    for env in Env::both().await {
        // The long task is still running at the end: do not wait for it at shutdown.
        let config = compozy_worker::WorkerConfig { shutdown_timeout: Duration::from_millis(100), ..fast() };
        let (w, _) = env.worker(config);
        let mut router = axum::Router::new();
        for (path, route) in compozy_worker::api::routes(w.clone()) {
            router = router.route(path, route);
        }
        let base = serve(router).await;
        let (s, h) = spawn(&w);
        let failing = w.start_run("failing", &json!({})).await.expect("start");
        let piped = w.start_run("pipe", &json!({"x": 1})).await.expect("start");
        let long = w.start_run("long", &json!({})).await.expect("start");
        finished(&w, &failing).await;
        finished(&w, &piped).await;

        let (_, body) = call(&base, "GET", &format!("/api/v0/executions/{failing}"), None).await;
        let attempts = body["data"]["tasks"][0]["attempts"].as_array().expect("attempts").clone();
        assert_eq!(attempts.len(), 3, "{body}");
        for (i, a) in attempts.iter().enumerate() {
            assert_eq!(a["attempt"], i + 1);
            assert_eq!(a["outcome"], "error");
            assert_eq!(a["error"], "tool exited with exit status: 3: boom");
            assert_eq!(a["worker"], w.id());
            assert!(ms(&a["started_at"]) <= ms(&a["finished_at"]), "{a}");
        }
        // The backoff (initial 20 ms, ×2, drawn from the upper half) separates the attempts.
        let gap = |i: usize| ms(&attempts[i + 1]["started_at"]).zip(ms(&attempts[i]["finished_at"]));
        let (next, prev) = gap(0).expect("times");
        assert!(next - prev >= 10, "{attempts:?}");
        let (next, prev) = gap(1).expect("times");
        assert!(next - prev >= 20, "{attempts:?}");

        let (_, body) = call(&base, "GET", &format!("/api/v0/executions/{piped}"), None).await;
        let first = &body["data"]["tasks"][0];
        assert_eq!(first["attempts"].as_array().map(Vec::len), Some(1), "{body}");
        assert_eq!(
            (&first["attempts"][0]["outcome"], &first["attempts"][0]["output"]),
            (&json!("success"), &json!({"x": 1}))
        );
        // The succeeded attempt is the task row's own record: its worker and end time included.
        assert_eq!(first["attempts"][0]["worker"], w.id(), "{body}");
        assert!(ms(&first["attempts"][0]["started_at"]) <= ms(&first["attempts"][0]["finished_at"]), "{body}");
        assert_eq!(body["data"]["tasks"][2]["attempts"][0]["output"], json!({"v": "configured", "home": ""}));

        eventually("the long task runs", Duration::from_secs(20), || async {
            w.queue().run_tasks(&long).await.expect("tasks")[0].state == "running"
        })
        .await;
        let (_, body) = call(&base, "GET", &format!("/api/v0/executions/{long}"), None).await;
        let running = &body["data"]["tasks"][0]["attempts"];
        assert_eq!(running.as_array().map(Vec::len), Some(1), "{body}");
        assert_eq!((&running[0]["attempt"], &running[0]["outcome"]), (&json!(1), &Value::Null));
        assert!(ms(&running[0]["started_at"]).is_some(), "{body}");
        let _ = s.send(());
        h.await.expect("stops");
    }
}

/// A workflow's `input` schema is enforced on every start: 422 naming the failing JSON pointer,
/// and nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_are_checked_against_the_input_schema() {
    let env = Env::sqlite().await;
    let wf = "resource: workflow\nid: typed\ninput:\n  type: object\n  additionalProperties: false\n  required: [repository]\n  properties:\n    repository: {type: string}\n    depth: {type: integer, minimum: 1}\ntasks:\n  - {id: a, type: wait, duration: 0s}\n";
    env.add("workflows/typed.yaml", wf).await;
    let (w, _) = env.worker(fast());
    let mut router = axum::Router::new();
    for (path, route) in compozy_worker::api::routes(w.clone()) {
        router = router.route(path, route);
    }
    let base = serve(router).await;
    let path = "/api/v0/workflows/typed/executions";
    let refused = [
        (r#"{"input": {"nope": 1}}"#, "``"),
        (r#"{"input": [1, 2]}"#, "``"),
        (r#"{"input": {"repository": 7}}"#, "`/repository`"),
        (r#"{"input": {"repository": "a/b", "depth": 0}}"#, "`/depth`"),
        ("", "``"),
    ];
    for (body, pointer) in refused {
        let (status, p) = call(&base, "POST", path, Some(body)).await;
        assert_eq!((status, p["type"].as_str()), (422, Some("urn:compozy:problem:invalid-input")), "{body}: {p}");
        let detail = p["detail"].as_str().expect("detail");
        assert!(detail.contains(&format!("at {pointer}")), "{body}: {detail}");
    }
    let (_, all) = call(&base, "GET", "/api/v0/executions?workflow_id=typed", None).await;
    assert_eq!(all["data"]["executions"].as_array().map(Vec::len), Some(0), "nothing stored: {all}");
    let (status, body) = call(&base, "POST", path, Some(r#"{"input": {"repository": "a/b", "depth": 2}}"#)).await;
    assert_eq!(status, 202, "{body}");
    let err = w.start_run("typed", &json!({"nope": 1})).await.expect_err("refused in-process too");
    assert!(matches!(err, compozy_worker::WorkerError::InvalidInput { .. }), "{err}");
}

/// An RFC 3339 timestamp of an answer as Unix milliseconds.
fn ms(v: &Value) -> Option<i64> {
    v.as_str().and_then(compozy_core::timestamp::parse)
}

/// `POST /api/v0/executions/{id}/retry`: a new run of the same workflow and input, linked both
/// ways; only failed and cancelled runs, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_link_both_runs() {
    for env in Env::both().await {
        let (w, _) = env.worker(fast());
        let mut router = axum::Router::new();
        for (path, route) in compozy_worker::api::routes(w.clone()) {
            router = router.route(path, route);
        }
        let base = serve(router).await;
        let retry = |id: String| {
            let base = base.clone();
            async move { call(&base, "POST", &format!("/api/v0/executions/{id}/retry"), None).await }
        };
        let show = |id: String| {
            let base = base.clone();
            async move { call(&base, "GET", &format!("/api/v0/executions/{id}"), None).await }
        };

        let first = w.start_run("noop", &json!({"a": 1})).await.expect("start");
        let (status, p) = retry(first.clone()).await;
        assert_eq!((status, p["type"].as_str()), (409, Some("urn:compozy:problem:execution-not-retryable")), "{p}");
        assert!(p["detail"].as_str().is_some_and(|d| d.contains("pending")), "{p}");
        assert!(w.queue().cancel_run(&first).await.expect("cancel"));
        let (status, body) = retry(first.clone()).await;
        assert_eq!((status, &body["data"]["retry_of"]), (202, &json!(first)), "{body}");
        let second = body["data"]["execution_id"].as_str().expect("id").to_string();
        let (_, new) = show(second.clone()).await;
        let new = &new["data"]["execution"];
        assert_eq!(
            (&new["workflow_id"], &new["input"], &new["status"]),
            (&json!("noop"), &json!({"a": 1}), &json!("pending"))
        );
        assert_eq!((&new["retry_of"], &new["retried_by"]), (&json!(first), &Value::Null));
        let (_, old) = show(first.clone()).await;
        assert_eq!(
            (&old["data"]["execution"]["retried_by"], &old["data"]["execution"]["retry_of"]),
            (&json!(second), &Value::Null)
        );
        let (status, p) = retry(first.clone()).await;
        assert_eq!((status, p["type"].as_str()), (409, Some("urn:compozy:problem:execution-already-retried")), "{p}");
        assert!(p["detail"].as_str().is_some_and(|d| d.contains(&second)), "{p}");
        let (_, listed) = call(&base, "GET", "/api/v0/executions?workflow_id=noop", None).await;
        assert_eq!(listed["data"]["executions"][0]["retry_of"], json!(first), "{listed}");
        let (status, p) = retry("nope".to_string()).await;
        assert_eq!((status, p["type"].as_str()), (404, Some("urn:compozy:problem:not-found")));

        // Two retries of one run at once: the unique index lets exactly one through.
        let raced = w.start_run("noop", &json!({})).await.expect("start");
        assert!(w.queue().cancel_run(&raced).await.expect("cancel"));
        let (a, b) = tokio::join!(retry(raced.clone()), retry(raced.clone()));
        let mut statuses = [a.0, b.0];
        statuses.sort_unstable();
        assert_eq!(statuses, [202, 409], "{a:?} {b:?}");

        // A run that failed on its own.
        let (s, h) = spawn(&w);
        let failed = w.start_run("failing", &json!({"why": "boom"})).await.expect("start");
        assert_eq!(finished(&w, &failed).await.status, "failed");
        let (status, body) = retry(failed.clone()).await;
        assert_eq!(status, 202, "{body}");
        let again = body["data"]["execution_id"].as_str().expect("id").to_string();
        let run = w.queue().get_run(&again).await.expect("get").expect("run");
        assert_eq!(
            (run.workflow_id.as_str(), &run.input, run.retry_of.as_deref()),
            ("failing", &json!({"why": "boom"}), Some(failed.as_str()))
        );
        let _ = s.send(());
        h.await.expect("stops");
    }
}
