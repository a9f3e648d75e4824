//! Webhooks through the binary: nothing acknowledged is lost, nothing acknowledged runs twice. A
//! delivery answered 202 survives `kill -9` right after the answer, the restarted engine
//! executes its run, and a replay of it after the restart is still a duplicate.

mod common;

use std::path::Path;

use common::{Engine, post};

const PROJECT: &str = "project:\n  name: hooks\nautoload:\n  include: [\"workflows/*.yaml\"]\n  watch: false\n";
const WORKFLOW: &str = r#"resource: workflow
id: on-hook
triggers:
  - type: webhook
    slug: deploy
    source: ci
    verify: { method: hmac, secret: k3y, header: X-Signature, prefix: "sha256=" }
    events:
      - name: deploy
        filter: 'body.action == "deploy"'
        input: { service: "{{ body.service }}" }
tasks:
  - { id: pause, type: wait, duration: 300ms }
"#;

fn project(dir: &Path) {
    std::fs::write(dir.join("compozy.yaml"), PROJECT).expect("project file");
    std::fs::create_dir_all(dir.join("workflows")).expect("mkdir");
    std::fs::write(dir.join("workflows/hook.yaml"), WORKFLOW).expect("workflow");
}

fn engine(dir: &Path) -> Engine {
    // A short lease so the restarted engine rescues a task the killed one had claimed.
    let env = [
        ("COMPOZY_WORKER_LEASE", "2s".to_string()),
        ("COMPOZY_WORKER_HEARTBEAT_INTERVAL", "500ms".to_string()),
        ("COMPOZY_WORKER_POLL_INTERVAL", "100ms".to_string()),
    ];
    Engine::start(dir, &["--config", "compozy.yaml"], &env)
}

#[test]
fn kill_9_after_202_loses_nothing_and_a_replay_is_still_a_duplicate() {
    let dir = tempfile::tempdir().expect("dir");
    project(dir.path());
    let first = engine(dir.path());
    let body = r#"{"action":"deploy","service":"api"}"#;
    let sig = format!("sha256={}", compozy_webhooks::verify::sign::hmac_hex("k3y", body.as_bytes()));
    let headers = [("content-type", "application/json"), ("x-signature", sig.as_str())];
    let (status, _, answer) = post(first.addr, "/api/v0/hooks/deploy", &headers, body).expect("exchange");
    assert_eq!(status, 202, "{answer}");
    // SIGKILL right after the answer: no graceful shutdown, no flush.
    drop(first);

    let answer: serde_json::Value = serde_json::from_str(&answer).expect("json");
    let run_id = answer["data"]["run_id"].as_str().expect("run id").to_string();
    let second = engine(dir.path());
    let path = format!("/api/v0/executions/{run_id}");
    second.eventually("the acknowledged run executes after the restart", |e| {
        let (status, _, text) = e.get(&path);
        status == 200 && text.contains(r#""status":"succeeded""#)
    });
    let (_, _, run) = second.get(&path);
    assert!(run.contains(r#""service":"api""#), "the rendered input was stored: {run}");

    // A replay after the restart, which emptied the in-process dedupe cache, with a changed
    // unsigned header: the delivery log still knows the signed body, so no second run.
    let replay = [headers[0], headers[1], ("x-github-delivery", "replayed-after-restart")];
    let (status, _, answer) = post(second.addr, "/api/v0/hooks/deploy", &replay, body).expect("exchange");
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains(r#""status":"duplicate""#), "{answer}");
    let duplicates = second.metric(r#"compozy_webhook_deliveries_total{source="ci",result="duplicate"}"#);
    assert_eq!(duplicates, Some(1.0));

    // The receiver counts what it sees, with the configured source label.
    let (status, _, _) = post(second.addr, "/api/v0/hooks/deploy", &headers[..1], body).expect("exchange");
    assert_eq!(status, 401);
    let failed = second.metric(r#"compozy_webhook_deliveries_total{source="ci",result="verification_failed"}"#);
    assert_eq!(failed, Some(1.0));
    let (status, _, _) = post(second.addr, "/api/v0/hooks/nope", &[], "{}").expect("exchange");
    assert_eq!(status, 404);
    let unknown = second.metric(r#"compozy_webhook_deliveries_total{source="unknown",result="not_found"}"#);
    assert_eq!(unknown, Some(1.0));
}
