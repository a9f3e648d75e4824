//! `GET /api/v0/openapi.json`: the API contract (`openapi.yaml` beside this crate's manifest),
//! with its `paths` laid out from the router itself — each route the process serves, with its
//! documented path item, or an empty one when undocumented — so a test comparing the served
//! paths with the file's catches drift in both directions.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use serde_json::{Map, Value};

pub const PATH: &str = "/api/v0/openapi.json";

/// The documented path of the metrics endpoint; served at `monitoring.path`.
const METRICS: &str = "/metrics";

/// The contract as written.
pub fn source() -> Value {
    serde_saphyr::from_str(include_str!("../openapi.yaml")).expect("openapi.yaml is valid YAML (unit-tested)")
}

/// The served document: [`source`] with one path item per route template.
pub fn document(templates: &[&str], metrics_path: &str) -> Value {
    let mut doc = source();
    let documented = doc.get_mut("paths").and_then(Value::as_object_mut).map(std::mem::take).unwrap_or_default();
    let paths: Map<String, Value> = templates
        .iter()
        .map(|t| {
            let key = if *t == metrics_path { METRICS } else { t };
            (t.to_string(), documented.get(key).cloned().unwrap_or_else(|| Value::Object(Map::new())))
        })
        .collect();
    doc["paths"] = Value::Object(paths);
    doc
}

/// [`document`], serialised once.
pub fn body(templates: &[&str], metrics_path: &str) -> Arc<Bytes> {
    Arc::new(Bytes::from(serde_json::to_vec(&document(templates, metrics_path)).unwrap_or_default()))
}

pub async fn serve(State(body): State<Arc<Bytes>>) -> Response {
    let mut response = Bytes::clone(&body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use compozy_core::problem::ProblemType;

    use super::*;

    #[test]
    fn lists_every_problem_type() {
        let doc = source();
        let listed: Vec<&str> = doc["components"]["schemas"]["Problem"]["properties"]["type"]["enum"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut table: Vec<String> = ProblemType::ALL.iter().map(|t| t.uri()).collect();
        table.push("about:blank".into());
        assert_eq!(listed, table);
    }

    #[test]
    fn serves_the_routed_paths_and_marks_the_undocumented() {
        let doc = document(&["/healthz", "/prom", "/nowhere"], "/prom");
        let paths = doc["paths"].as_object().cloned().unwrap_or_default();
        assert_eq!(paths.keys().collect::<Vec<_>>(), ["/healthz", "/nowhere", "/prom"]);
        assert!(paths["/prom"]["get"].is_object());
        assert_eq!(paths["/nowhere"], serde_json::json!({}));
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
