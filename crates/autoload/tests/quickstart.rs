//! The shipped example loads, and the API view of it never shows a secret.

mod common;

use std::path::PathBuf;

use common::*;
use compozy_autoload::resources::{Action, Trigger, VerifyMethod};
use compozy_autoload::{AutoloadConfig, ResourceKind};

fn quickstart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart")
}

#[tokio::test]
async fn quickstart_loads_every_resource_type() {
    let m = metrics();
    let loader =
        compozy_autoload::Autoloader::new(AutoloadConfig::default(), quickstart(), PROJECT, &m).expect("config");
    let report = loader.load().await.expect("quickstart loads");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let reg = loader.current();
    assert_eq!(ResourceKind::ALL.map(|k| reg.count(k)), [2, 1, 1, 1], "workflows, agents, tools, mcps");
    let (wf, hook) = reg.webhook("github-push").expect("webhook slug");
    assert_eq!(wf.id.as_str(), "github-push");
    assert_eq!(hook.verify.method, VerifyMethod::Github);
    assert!(matches!(wf.triggers[1], Trigger::Manual));
    let kinds: Vec<&str> = wf
        .tasks
        .iter()
        .map(|t| match &t.action {
            Action::Tool(_) => "tool",
            Action::Http(_) => "http",
            Action::Wait(_) => "wait",
        })
        .collect();
    assert_eq!(kinds, ["tool", "wait", "http"]);
    assert_eq!(wf.tasks[0].retry.max_attempts, 3);
    assert_eq!(wf.tasks[1].retry.max_attempts, 1, "default policy");
    assert_eq!(reg.mcp("FILESYSTEM").expect("case-insensitive").command.as_deref(), Some("mcp-server-filesystem"));
    assert_eq!(value(&m, "compozy_autoload_configs_loaded_total", &[("type", "workflow")]), 2.0);
    assert_eq!(value(&m, "compozy_autoload_files_processed_total", &[("outcome", "success")]), 5.0);
    assert_eq!(value(&m, "compozy_autoload_last_reload_successful", &[]), 1.0);
}

#[test]
fn serialized_resources_redact_secrets() {
    let report = compozy_autoload::validate_project(&quickstart(), &AutoloadConfig::default(), false).expect("config");
    assert!(report.is_ok(), "{}", report.render_human());

    let m = metrics();
    let loader =
        compozy_autoload::Autoloader::new(AutoloadConfig::default(), quickstart(), PROJECT, &m).expect("config");
    loader.reload_blocking().expect("loads");
    let reg = loader.current();
    let wf = reg.get(ResourceKind::Workflow, "github-push").expect("workflow");
    let json = serde_json::to_string(&**wf).expect("json");
    assert!(!json.contains("quickstart-not-a-real-secret"), "{json}");
    assert!(!json.contains("chat.example.invalid"), "http urls may carry credentials: {json}");
    assert!(json.contains("\"secret\":\"[redacted]\""), "{json}");
    assert!(
        json.starts_with(
            "{\"type\":\"workflow\",\"id\":\"github-push\",\"file\":\"resources/workflows/github-push.yaml\",\"spec\":{"
        ),
        "{json}"
    );
    let tool = serde_json::to_string(&**reg.get(ResourceKind::Tool, "summarise-commits").expect("tool")).expect("json");
    assert!(tool.contains("\"SUMMARY_STYLE\":\"[redacted]\""), "{tool}");
    assert!(!tool.contains("short"), "{tool}");
}
