//! A webhook without events starts its workflow with the body: the workflow's `input` schema
//! is enforced on it (422 `invalid-input`, nothing stored, counted as a schema error).

// Other tests use the rest of the shared support.
#[allow(unused_imports)]
mod common;

use common::*;
use compozy_webhooks::WebhooksConfig;

const TYPED: &str = r#"resource: workflow
id: typed-flow
input: { type: object, required: [repo], properties: { repo: { type: string } } }
triggers:
  - type: webhook
    slug: typed
tasks:
  - { id: a, type: wait, duration: 0s }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_without_events_is_checked_against_the_workflow_input_schema() {
    for env in Env::both(WebhooksConfig::default()).await {
        env.reload_with("workflows/typed.yaml", TYPED).await;
        for body in [r#"{"nope":1}"#, r#"{"repo":[1,2]}"#, r#"{"repo":7}"#] {
            let (status, _, p) = env.send(post("/api/v0/hooks/typed", body)).await;
            assert_eq!(
                (status, p["type"].as_str()),
                (422, Some("urn:compozy:problem:invalid-input")),
                "{}: {body}: {p}",
                env.name
            );
        }
        let (_, _, p) = env.send(post("/api/v0/hooks/typed", r#"{"repo":7}"#)).await;
        assert!(p["detail"].as_str().is_some_and(|d| d.contains("`/repo`")), "{p}");
        assert_eq!(env.worker.queue().list_runs(&Default::default()).await.expect("list").len(), 0, "nothing stored");
        let (status, _, body) = env.send(post("/api/v0/hooks/typed", r#"{"repo":"a/b"}"#)).await;
        assert_eq!(status, 202, "{}: {body}", env.name);
    }
}
