//! The receiver end to end on PostgreSQL + Redis and on SQLite + the in-process cache: every
//! status of the contract, dedupe states, reloads, and the exact metric movements.

mod common;

use std::time::Duration;

use common::*;
use compozy_webhooks::WebhooksConfig;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_delivery_starts_a_run_the_worker_executes() {
    for mut env in Env::both(WebhooksConfig::default()).await {
        env.run_worker();
        let id = |k: &str| format!("{k}-{}", uuid::Uuid::new_v4().simple());
        let (status, _, body) = env.send(github("push", r#"{"repo":"a/b","commits":[1,2]}"#, Some(&id("d-1")))).await;
        assert_eq!(status, 202, "{}: {body}", env.name);
        assert_eq!(body["data"]["status"], "accepted");
        assert_eq!(body["data"]["event"], "push");
        let run_id = body["data"]["run_id"].as_str().expect("run id").to_string();
        assert!(body["data"]["delivery_id"].is_string());

        let queue = env.worker.queue().clone();
        eventually("run succeeded", Duration::from_secs(10), || {
            let (q, id) = (queue.clone(), run_id.clone());
            async move { q.get_run(&id).await.ok().flatten().is_some_and(|r| r.status == "succeeded") }
        })
        .await;
        let run = queue.get_run(&run_id).await.expect("read").expect("run");
        assert_eq!((run.workflow_id.as_str(), run.input.clone()), ("gh-flow", json!({"repo": "a/b", "commits": 2})));

        let t = env.text();
        assert_eq!(env.deliveries("github", "accepted"), 1.0, "{}", env.name);
        assert_eq!(env.deliveries_sum(), 1.0);
        assert_eq!(sample(&t, r#"compozy_webhook_events_total{event_type="push",outcome="success"}"#), 1.0);
        assert_eq!(sample(&t, r#"compozy_webhook_verify_duration_seconds_count{source="github"}"#), 1.0);
        assert_eq!(sample(&t, r#"compozy_webhook_payload_size_bytes_count{event_type="push",source="github"}"#), 1.0);
        assert_eq!(sample(&t, r#"compozy_webhook_payload_size_bytes_sum{event_type="push",source="github"}"#), 30.0);
        assert_eq!(
            sample(&t, r#"compozy_webhook_processing_duration_seconds_count{event_type="push",outcome="success"}"#),
            1.0
        );
        assert!(t.contains("\ncompozy_webhook_queue_depth 0"), "present and back to zero: {t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rejection_has_its_status_problem_and_counter() {
    for env in Env::both(WebhooksConfig::default()).await {
        let n = env.name;
        let cases: Vec<(http::Request<axum::body::Body>, u16, &str, &str)> = vec![
            (post("/api/v0/hooks/nope", "{}"), 404, "unknown", "not_found"),
            (
                {
                    let mut r = github("push", r#"{"repo":"a/b"}"#, None);
                    r.headers_mut().insert(
                        "x-hub-signature-256",
                        compozy_webhooks::verify::sign::github("wrong", b"x").parse().expect("hv"),
                    );
                    r
                },
                401,
                "github",
                "verification_failed",
            ),
            (github("push", "[1,2]", None), 400, "github", "bad_request"),
            (github("push", "{not json", None), 400, "github", "bad_request"),
            (github("push", r#"{"commits":[]}"#, None), 422, "github", "schema_error"),
            (github("boom", r#"{"x":1}"#, None), 400, "github", "bad_request"),
            (
                post("/api/v0/hooks/open", &format!(r#"{{"pad":"{}"}}"#, "x".repeat(100))),
                413,
                "open",
                "payload_too_large",
            ),
        ];
        let total = cases.len();
        for (req, want, source, result) in cases {
            let before = env.deliveries(source, result);
            let (status, headers, body) = env.send(req).await;
            assert_eq!(status, want, "{n} {result}: {body}");
            assert_eq!(headers["content-type"], "application/problem+json", "{n} {result}");
            assert!(body["type"].as_str().is_some_and(|t| t.starts_with("urn:compozy:problem:")), "{body}");
            assert_eq!(env.deliveries(source, result), before + 1.0, "{n} {result}");
        }
        // No match is a 200, not a problem.
        let (status, _, body) = env.send(github("issues", r#"{"x":1}"#, None)).await;
        assert_eq!((status, body["data"]["status"].as_str()), (200, Some("no_matching_event")), "{n}");
        assert_eq!(env.deliveries("github", "no_match"), 1.0);
        assert_eq!(env.deliveries_sum(), (total + 1) as f64, "{n}: one increment per delivery");
        let t = env.text();
        assert_eq!(sample(&t, r#"compozy_webhook_events_total{event_type="unknown",outcome="error"}"#), 1.0, "{n}");
        assert_eq!(sample(&t, r#"compozy_webhook_events_total{event_type="push",outcome="error"}"#), 1.0, "{n}");
        assert_eq!(sample(&t, r#"compozy_webhook_events_total{event_type="none",outcome="success"}"#), 1.0, "{n}");
        // The signature failure was timed; the unknown slug and the unsigned webhook were not.
        assert_eq!(sample(&t, r#"compozy_webhook_verify_duration_seconds_count{source="github"}"#), 6.0, "{n}");
        assert_eq!(sample(&t, r#"compozy_webhook_verify_duration_seconds_count{source="open"}"#), 0.0, "{n}");
        // Nothing was stored.
        let listed = env
            .send(http::Request::get("/api/v0/hooks/deliveries").body(axum::body::Body::empty()).expect("req"))
            .await;
        assert_eq!(listed.2["data"]["deliveries"], json!([]), "{n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_in_progress_and_failed_then_retried() {
    for env in Env::both(WebhooksConfig::default()).await {
        let n = env.name;
        // Redis outlives test runs: delivery ids are unique per run.
        let run = uuid::Uuid::new_v4().simple().to_string();
        let id = |k: &str| format!("{k}-{run}");
        // Redis outlives test runs: bodies are unique per run (the body hash is the ID).
        let body = |k: &str| format!(r#"{{"repo":"a/b","n":"{}"}}"#, id(k));
        let first = env.send(github("push", &body("dup-1"), Some(&id("d-1")))).await;
        assert_eq!(first.0, 202, "{n}");
        let again = env.send(github("push", &body("dup-1"), Some(&id("d-1")))).await;
        assert_eq!((again.0, again.2["data"]["status"].as_str()), (200, Some("duplicate")), "{n}");
        // A replay of the signed body with new unsigned IDs is the same delivery.
        let mut replay = github("push", &body("dup-1"), Some(&id("another")));
        replay.headers_mut().insert("x-idempotency-key", id("fresh").parse().expect("hv"));
        let replayed = env.send(replay).await;
        assert_eq!((replayed.0, replayed.2["data"]["status"].as_str()), (200, Some("duplicate")), "{n}");

        // A failed delivery releases its key: the sender's retry is processed.
        let failed_body = format!(r#"{{"commits":[],"n":"{}"}}"#, id("dup-2"));
        let failed = env.send(github("push", &failed_body, None)).await;
        assert_eq!(failed.0, 422, "{n}");
        let key = compozy_webhooks::dedupe::cache_key(
            "gh",
            &compozy_webhooks::dedupe::signed_bytes_id("", failed_body.as_bytes()),
        );
        let reclaimed =
            compozy_webhooks::dedupe::claim(&env.cache, &key, Duration::from_secs(30)).await.expect("claim");
        assert_eq!(reclaimed, compozy_webhooks::dedupe::Claim::New, "{n}: released after the failure");
        compozy_webhooks::dedupe::release(&env.cache, &key).await.expect("release");

        // Another delivery holds the key: 409 with Retry-After, counted as in_progress.
        let busy_body = body("dup-3");
        let key = compozy_webhooks::dedupe::cache_key(
            "gh",
            &compozy_webhooks::dedupe::signed_bytes_id("", busy_body.as_bytes()),
        );
        let claimed = compozy_webhooks::dedupe::claim(&env.cache, &key, Duration::from_secs(30)).await.expect("claim");
        assert_eq!(claimed, compozy_webhooks::dedupe::Claim::New);
        let busy = env.send(github("push", &busy_body, None)).await;
        assert_eq!(busy.0, 409, "{n}");
        assert!(busy.1.contains_key("retry-after"));

        // A configured body path (signed when verified) is the ID; an unsigned header never wins.
        let by_body = |key: &str, header: &str| {
            let mut r = post("/api/v0/hooks/open", &format!(r#"{{"id":"{}"}}"#, id(key)));
            r.headers_mut().insert("x-idempotency-key", id(header).parse().expect("hv"));
            r
        };
        assert_eq!(env.send(by_body("b-1", "h-1")).await.0, 202, "{n}");
        assert_eq!(env.send(by_body("b-1", "h-2")).await.2["data"]["status"], "duplicate", "{n}");
        assert_eq!(env.send(by_body("b-2", "h-1")).await.0, 202, "{n}");

        assert_eq!(env.deliveries("github", "duplicate"), 2.0, "{n}");
        assert_eq!(env.deliveries("github", "in_progress"), 1.0, "{n}");
        assert_eq!(env.deliveries("open", "duplicate"), 1.0, "{n}");
        let t = env.text();
        // A 409 is not the engine failing the delivery.
        assert_eq!(sample(&t, r#"compozy_webhook_events_total{event_type="none",outcome="success"}"#), 4.0, "{n}");
        assert_eq!(env.deliveries_sum(), 8.0, "{n}");
    }
}

/// What a restart or an eviction does to the in-process cache: the key is gone. The delivery log
/// still knows the ID for the rest of the TTL, and no second run starts; on SQLite and on
/// PostgreSQL (a server-mode node without Redis).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_id_the_cache_forgot_is_found_in_the_log_within_its_ttl() {
    let ttl = Duration::from_millis(1500);
    let config = WebhooksConfig { dedupe_ttl: ttl, ..WebhooksConfig::default() };
    for env in Env::with_memory_cache(config).await {
        let n = env.name;
        let body = format!(r#"{{"repo":"a/b","n":"{}"}}"#, uuid::Uuid::new_v4().simple());
        let key =
            compozy_webhooks::dedupe::cache_key("gh", &compozy_webhooks::dedupe::signed_bytes_id("", body.as_bytes()));
        let sent = std::time::Instant::now();
        assert_eq!(env.send(github("push", &body, None)).await.0, 202, "{n}");
        compozy_webhooks::dedupe::release(&env.cache, &key).await.expect("forget");

        let replayed = env.send(github("push", &body, Some("a-new-unsigned-id"))).await;
        assert_eq!((replayed.0, replayed.2["data"]["status"].as_str()), (200, Some("duplicate")), "{n}");
        assert_eq!(env.deliveries("github", "duplicate"), 1.0, "{n}");
        // The cache learnt it again: the next replay does not reach the log.
        let claim = compozy_webhooks::dedupe::claim(&env.cache, &key, Duration::from_secs(30)).await.expect("claim");
        assert_eq!(claim, compozy_webhooks::dedupe::Claim::Succeeded, "{n}");

        // After the TTL the same body is a new delivery again, as it is with the cache alone.
        tokio::time::sleep((ttl + Duration::from_millis(100)).saturating_sub(sent.elapsed())).await;
        compozy_webhooks::dedupe::release(&env.cache, &key).await.expect("forget");
        assert_eq!(env.send(github("push", &body, None)).await.0, 202, "{n}");
        assert_eq!(env.deliveries("github", "accepted"), 2.0, "{n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_adds_a_webhook_without_restart_and_log_lists_deliveries() {
    for env in Env::both(WebhooksConfig { retention: Duration::from_secs(3600), ..WebhooksConfig::default() }).await {
        let n = env.name;
        assert_eq!(env.send(post("/api/v0/hooks/later", "{}")).await.0, 404, "{n}");
        let accepted = "compozy_webhook_deliveries_total{source=\"later\",result=\"accepted\"}";
        assert!(!env.text().contains(accepted), "{n}: no series before the webhook exists");
        env.reload_with(
            "workflows/later.yaml",
            "resource: workflow\nid: later\ntriggers:\n  - {type: webhook, slug: later}\ntasks:\n  - {id: a, type: wait, duration: 0s}\n",
        )
        .await;
        // The reload created the new webhook's series at zero, before its first delivery: a
        // series born at 1 would show no increase to `rate` or `increase`.
        assert_eq!(env.deliveries("later", "accepted"), 0.0, "{n}");
        assert!(env.text().contains(&format!("{accepted} 0")), "{n}");
        let (status, _, body) = env.send(post("/api/v0/hooks/later", r#"{"k":1}"#)).await;
        assert_eq!(status, 202, "{n}: {body}");
        let delivery = body["data"]["delivery_id"].as_str().expect("id").to_string();

        let get = |uri: &str| http::Request::get(uri).body(axum::body::Body::empty()).expect("req");
        let (_, _, listed) = env.send(get("/api/v0/hooks/deliveries?slug=later")).await;
        let items = listed["data"]["deliveries"].as_array().expect("list").clone();
        assert_eq!(items.len(), 1, "{n}: {listed}");
        assert_eq!(
            (items[0]["id"].as_str(), items[0]["payload_kept"].as_bool()),
            (Some(delivery.as_str()), Some(true))
        );

        let replay = http::Request::post(format!("/api/v0/hooks/deliveries/{delivery}/replay"))
            .body(axum::body::Body::empty())
            .expect("req");
        let (status, _, replayed) = env.send(replay).await;
        assert_eq!(status, 202, "{n}: {replayed}");
        assert_ne!(replayed["data"]["run_id"], body["data"]["run_id"]);
        let (_, _, listed) = env.send(get("/api/v0/hooks/deliveries?slug=later&limit=1")).await;
        assert_eq!(listed["data"]["deliveries"][0]["replay_of"].as_str(), Some(delivery.as_str()), "{n}");
        let next = listed["data"]["next_cursor"].as_str().expect("a second page").to_string();
        let (_, _, page2) = env.send(get(&format!("/api/v0/hooks/deliveries?slug=later&cursor={next}"))).await;
        assert_eq!(page2["data"]["deliveries"][0]["id"].as_str(), Some(delivery.as_str()), "{n}: {page2}");
        let (status, _, _) = env.send(get("/api/v0/hooks/deliveries?cursor=zzz")).await;
        assert_eq!(status, 400);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_without_kept_payload_is_refused() {
    let env = Env::embedded(WebhooksConfig::default()).await;
    let (_, _, body) = env.send(post("/api/v0/hooks/open", r#"{"id":"r-1"}"#)).await;
    let id = body["data"]["delivery_id"].as_str().expect("id");
    let replay = http::Request::post(format!("/api/v0/hooks/deliveries/{id}/replay")).body(axum::body::Body::empty());
    let (status, _, problem) = env.send(replay.expect("req")).await;
    assert_eq!(status, 409, "{problem}");
    let missing = http::Request::post("/api/v0/hooks/deliveries/nope/replay").body(axum::body::Body::empty());
    assert_eq!(env.send(missing.expect("req")).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_answers_503_with_retry_after() {
    let config = WebhooksConfig { max_in_flight: 1, slot_wait: Duration::ZERO, ..WebhooksConfig::default() };
    let env = Env::embedded(config).await;
    // One slot, no waiting: of deliveries sent at once, those finding the slot busy get 503.
    let mut refused = 0;
    for round in 0..20 {
        let sends = (0..16).map(|i| {
            let router = env.router.clone();
            let req = post("/api/v0/hooks/open", &format!(r#"{{"id":"o-{round}-{i}"}}"#));
            tokio::spawn(async move { tower::ServiceExt::oneshot(router, req).await })
        });
        for resp in futures_util::future::join_all(sends).await {
            let resp = resp.expect("join").expect("infallible");
            match resp.status().as_u16() {
                202 => {}
                503 => {
                    assert_eq!(resp.headers()["retry-after"], "1");
                    refused += 1;
                }
                other => panic!("unexpected {other}"),
            }
        }
        if refused > 0 {
            break;
        }
    }
    assert!(refused > 0, "no delivery found the only slot busy");
    assert_eq!(env.deliveries("open", "overloaded"), f64::from(refused));
    assert_eq!(sample(&env.text(), "compozy_webhook_queue_depth"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_holds_no_slot_and_times_out() {
    let config = WebhooksConfig {
        max_in_flight: 1,
        slot_wait: Duration::from_millis(20),
        body_timeout: Duration::from_millis(300),
        ..WebhooksConfig::default()
    };
    let env = Env::embedded(config).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
    let slow = http::Request::post("/api/v0/hooks/open")
        .body(axum::body::Body::from_stream(tokio_stream_from(rx)))
        .expect("req");
    let router = env.router.clone();
    let held = tokio::spawn(async move { tower::ServiceExt::oneshot(router, slow).await });
    tx.send(Ok(bytes::Bytes::from_static(b"{\"id\":"))).await.expect("send");

    // The only slot is free for a delivery whose body arrived.
    let (status, _, body) = env.send(post("/api/v0/hooks/open", r#"{"id":"s-2"}"#)).await;
    assert_eq!(status, 202, "{body}");

    let resp = held.await.expect("join").expect("infallible");
    assert_eq!(resp.status(), 408);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    drop(tx);
    assert_eq!(env.deliveries("open", "body_timeout"), 1.0);
    assert_eq!(env.deliveries_sum(), 2.0);
}

/// A stream over an mpsc receiver (without another dependency).
fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>,
) -> impl futures_core_stream::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    futures_core_stream::poll_fn(move |cx| rx.poll_recv(cx))
}

mod futures_core_stream {
    pub use futures_util::stream::{Stream, poll_fn};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cut_mid_test_answers_503_then_recovers() {
    let proxy = Proxy::start(REDIS_ADDR).await;
    let Some(cache) = redis_cache(&format!("redis://{}", proxy.addr())).await else { return };
    let env = Env::open("sqlite+redis-proxy", None, None, cache, WebhooksConfig::default()).await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let with_id = |k: &str| post("/api/v0/hooks/open", &format!(r#"{{"id":"{k}-{run}"}}"#));
    assert_eq!(env.send(with_id("c-1")).await.0, 202);

    proxy.cut();
    let (status, headers, body) = env.send(with_id("c-2")).await;
    assert_eq!(status, 503, "{body}");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(body["type"], "urn:compozy:problem:unavailable");
    assert!(!body.to_string().contains("redis"), "no internals: {body}");
    assert_eq!(env.deliveries("open", "error"), 1.0);
    // A delivery without an ID does not need the cache and is still accepted.
    assert_eq!(env.send(post("/api/v0/hooks/open", r#"{"k":1}"#)).await.0, 202);

    proxy.restore();
    let recovered = || async { env.send(with_id("c-2")).await.0 == 202 };
    eventually("accepted after Redis is back", Duration::from_secs(10), recovered).await;
}

/// A companion row that fails its insert when `bad`, on either backend.
struct Row {
    bad: bool,
}

impl compozy_worker::Companion for Row {
    fn insert_all<'c>(rows: &'c [Self], _: compozy_worker::driver::TxConn<'c>) -> compozy_worker::driver::TxFuture<'c> {
        let bad = rows.iter().any(|r| r.bad);
        Box::pin(async move {
            if bad { Err(sqlx::Error::ColumnNotFound("the caller's insert failed".into())) } else { Ok(()) }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_companion_row_rolls_back_its_run_only() {
    for env in Env::both(WebhooksConfig::default()).await {
        let starter = env.worker.starter::<Row>();
        let stored = |id: String| {
            let q = env.worker.queue().clone();
            async move { q.get_run(&id).await.expect("read").is_some() }
        };
        let run = || env.worker.new_run("gh-flow", &json!({"repo": "x"})).expect("run");
        let bad = run();
        let failed = starter.start(bad.clone(), Row { bad: true }).await;
        assert!(failed.is_err(), "{}", env.name);
        assert!(!stored(bad.id.clone()).await, "{}: no run without its companion row", env.name);

        // Started together, they may share a transaction: the bad row must not sink the others.
        let runs: Vec<_> = (0..40).map(|_| run()).collect();
        let results = futures_util::future::join_all(
            runs.iter().enumerate().map(|(i, r)| starter.start(r.clone(), Row { bad: i == 7 })),
        )
        .await;
        for (i, (r, res)) in runs.iter().zip(&results).enumerate() {
            assert_eq!(res.is_ok(), i != 7, "{}: start {i}: {res:?}", env.name);
            assert_eq!(stored(r.id.clone()).await, i != 7, "{}: run {i}", env.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_kept_payloads() {
    for env in Env::both(WebhooksConfig { retention: Duration::from_millis(1), ..WebhooksConfig::default() }).await {
        let (status, _, body) = env.send(post("/api/v0/hooks/open", r#"{"k":"v"}"#)).await;
        assert_eq!(status, 202, "{}", env.name);
        let id = body["data"]["delivery_id"].as_str().expect("id").to_string();
        let kept = |store| {
            let id = id.clone();
            async move {
                let found = compozy_webhooks::deliveries::get_with_payload(store, &id).await.expect("read");
                found.expect("delivery").1
            }
        };
        assert_eq!(kept(&env.store).await.as_deref(), Some(r#"{"k":"v"}"#), "{}", env.name);
        tokio::time::sleep(Duration::from_millis(5)).await;
        // The engine's pruner with the webhooks' sweeps; runs are kept (0s: forever).
        let keep_runs = compozy_worker::retention::RetentionConfig {
            succeeded: Duration::ZERO,
            failed: Duration::ZERO,
            cancelled: Duration::ZERO,
            ..Default::default()
        };
        let dependents = vec![compozy_webhooks::deliveries::RUN_DEPENDENT];
        let pruner = compozy_worker::retention::Pruner::new(
            env.worker.queue().clone(),
            keep_runs,
            dependents,
            env.webhooks.sweeps(),
            &registry(),
        )
        .expect("pruner");
        let pruned = pruner.prune().await.expect("prune");
        assert_eq!(pruned.get("payload"), Some(&1), "{}: {pruned:?}", env.name);
        assert_eq!(pruned.get("delivery"), Some(&0), "{}: rows are kept 30 days: {pruned:?}", env.name);
        assert_eq!(kept(&env.store).await, None, "{}", env.name);
        assert!(compozy_webhooks::deliveries::get_with_payload(&env.store, &id).await.expect("read").is_some());
    }
}
