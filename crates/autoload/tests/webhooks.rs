//! The webhook trigger's schema: what is compiled and checked at load, with file and line.

mod common;

use common::*;
use compozy_autoload::AutoloadConfig;
use compozy_autoload::resources::{Encoding, VerifyMethod};

const TASKS: &str = "tasks:\n  - id: a\n    type: wait\n    duration: 1s\n";

fn errors_of(p: &Project) -> Vec<(String, Option<u32>, String)> {
    let m = metrics();
    let report = autoloader(p, lenient(), &m).reload_blocking().expect("lenient load applies");
    report
        .errors
        .iter()
        .map(|e| (e.file.clone(), e.line.map(|l| u32::try_from(l).unwrap_or(0)), e.message.clone()))
        .collect()
}

fn workflow_with(trigger: &str) -> String {
    format!("resource: workflow\nid: w\ntriggers:\n  - type: webhook\n    slug: hook\n{trigger}{TASKS}")
}

#[test]
fn full_trigger_loads_with_compiled_filter_and_schema() {
    let p = Project::new();
    p.write(
        "w.yaml",
        workflow_with(concat!(
            "    source: stripe-live\n",
            "    body_limit: 65536\n",
            "    verify:\n      method: standard-webhooks\n",
            "      secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
            "      secrets: [whsec_b3RoZXIta2V5]\n      tolerance: 2m\n",
            "    dedupe: { key: body.id, ttl: 1h }\n",
            "    events:\n      - name: paid\n        filter: 'body.type == \"invoice.paid\"'\n",
            "        input: { id: '{{ body.id }}' }\n",
            "        schema: { type: object, required: [id] }\n",
        )),
    );
    let m = metrics();
    let loader = autoloader(&p, AutoloadConfig::default(), &m);
    loader.reload_blocking().expect("loads");
    let registry = loader.current();
    let (_, hook) = registry.webhook("hook").expect("hook");
    assert_eq!(hook.verify.method, VerifyMethod::Standard);
    assert_eq!(hook.verify.all_secrets().count(), 2);
    assert_eq!(hook.source(), "stripe-live");
    assert_eq!(hook.body_limit, Some(65536));
    assert_eq!(hook.dedupe.as_ref().and_then(|d| d.key.as_deref()), Some("body.id"));
    let event = &hook.events[0];
    assert!(event.compiled.filter.is_some() && event.compiled.schema.is_some());
    let schema = event.compiled.schema.as_ref().expect("schema");
    assert!(schema.is_valid(&serde_json::json!({"id": "x"})));
    assert!(!schema.is_valid(&serde_json::json!({})));
}

#[test]
fn hmac_options_and_default_source() {
    let p = Project::new();
    let t = "    verify: { method: hmac, secret: k, header: X-Sig, encoding: base64, prefix: 'sha256=' }\n";
    p.write("w.yaml", workflow_with(t));
    let m = metrics();
    let loader = autoloader(&p, AutoloadConfig::default(), &m);
    loader.reload_blocking().expect("loads");
    let registry = loader.current();
    let (_, hook) = registry.webhook("hook").expect("hook");
    assert_eq!((hook.verify.encoding, hook.verify.prefix.as_deref()), (Encoding::Base64, Some("sha256=")));
    assert_eq!(hook.source(), "hook");
}

#[test]
fn bad_filter_schema_and_secrets_are_validation_errors_with_lines() {
    let p = Project::new();
    p.write("a.yaml", workflow_with("    events:\n      - name: e\n        filter: 'body.x == '\n"));
    p.write("b.yaml", workflow_with("    events:\n      - name: e\n        schema: { type: 12 }\n"));
    p.write(
        "c.yaml",
        workflow_with("    verify: { method: standard, secret: 'not base64!' }\n")
            .replace("id: w", "id: c")
            .replace("slug: hook", "slug: c"),
    );
    p.write(
        "d.yaml",
        workflow_with("    events:\n      - name: e\n      - name: e\n")
            .replace("id: w", "id: d")
            .replace("slug: hook", "slug: d"),
    );
    p.write(
        "e.yaml",
        workflow_with("    events:\n      - name: 'has space'\n")
            .replace("id: w", "id: e")
            .replace("slug: hook", "slug: e"),
    );
    p.write(
        "f.yaml",
        workflow_with("    verify: { method: github, secret: k, header: X }\n")
            .replace("id: w", "id: f")
            .replace("slug: hook", "slug: f"),
    );
    p.write(
        "g.yaml",
        workflow_with("    dedupe: { key: id }\n").replace("id: w", "id: g").replace("slug: hook", "slug: g"),
    );
    p.write(
        "h.yaml",
        workflow_with("    verify: { method: slack }\n").replace("id: w", "id: h").replace("slug: hook", "slug: h"),
    );
    let errors = errors_of(&p);
    let find = |f: &str| errors.iter().find(|e| e.0 == f).cloned().unwrap_or_else(|| panic!("{f}: {errors:?}"));
    let a = find("a.yaml");
    assert_eq!(a.1, Some(8), "{a:?}");
    assert!(a.2.starts_with("event `e`: filter:"), "{a:?}");
    let b = find("b.yaml");
    assert_eq!(b.1, Some(8), "{b:?}");
    assert!(b.2.starts_with("event `e`: schema:"), "{b:?}");
    assert!(find("c.yaml").2.contains("whsec_"));
    assert!(find("d.yaml").2.contains("used twice"));
    assert!(find("e.yaml").2.contains("event name"));
    assert!(find("f.yaml").2.contains("hmac only"));
    assert!(find("g.yaml").2.contains("body.<path>"));
    assert!(find("h.yaml").2.contains("secret"));
}

#[test]
fn the_delivery_log_path_is_not_a_slug() {
    let p = Project::new();
    p.write("r.yaml", workflow_with("").replace("slug: hook", "slug: deliveries"));
    let errors = errors_of(&p);
    let r = errors.iter().find(|e| e.0 == "r.yaml").unwrap_or_else(|| panic!("{errors:?}"));
    assert!(r.2.contains("reserved"), "{r:?}");
}
