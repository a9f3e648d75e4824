//! The served OpenAPI document against the router of a running engine, in both directions:
//! every route is documented (the server lays the served `paths` out from its router, with an
//! empty item for an undocumented route) and every documented path is served, each with the
//! methods the router answers (a `TRACE` probe gets 405 with `Allow`).

mod common;

use std::collections::BTreeSet;

use common::Engine;
use serde_json::Value;

const QUICKSTART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/quickstart/compozy.yaml");
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

#[test]
fn every_route_is_documented_and_every_documented_route_is_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::start(dir.path(), &["--config", QUICKSTART], &[]);
    let (status, head, body) = engine.request("GET", "/api/v0/openapi.json", &[("authorization", "")]);
    assert_eq!(status, 200, "public: {body}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let served: Value = serde_json::from_str(&body).expect("JSON document");
    assert_eq!(served["openapi"], "3.1.0");

    let written = compozy_server::openapi::source();
    let keys = |doc: &Value| -> BTreeSet<String> {
        doc["paths"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default()
    };
    assert_eq!(keys(&served), keys(&written), "served routes (left) vs documented paths (right)");

    for (path, item) in served["paths"].as_object().expect("paths") {
        let documented: BTreeSet<String> =
            METHODS.iter().filter(|m| item.get(**m).is_some()).map(|m| m.to_ascii_uppercase()).collect();
        assert!(!documented.is_empty(), "{path} is served but not documented");
        let probe = path.replace(['{', '}'], "");
        let (status, head, body) = engine.request("TRACE", &probe, &[]);
        assert_eq!(status, 405, "{path}: {body}");
        let allow = head.lines().find_map(|l| l.strip_prefix("allow: ")).unwrap_or_default();
        let routed: BTreeSet<String> =
            allow.split(',').map(|m| m.trim().to_ascii_uppercase()).filter(|m| m != "HEAD" && !m.is_empty()).collect();
        assert_eq!(routed, documented, "{path}: routed methods (left) vs documented (right)");
    }
}

#[test]
fn the_document_names_its_security_schemes_and_pagination() {
    let doc = compozy_server::openapi::source();
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(
        (schemes["apiKey"]["scheme"].as_str(), schemes["jwt"]["bearerFormat"].as_str()),
        (Some("bearer"), Some("JWT"))
    );
    for list in ["/api/v0/executions", "/api/v0/hooks/deliveries"] {
        let params = doc["paths"][list]["get"]["parameters"].to_string();
        assert!(params.contains("#/components/parameters/Cursor"), "{list}: {params}");
    }
}
