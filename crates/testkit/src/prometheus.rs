//! Reading a real Prometheus's HTTP API answers in tests.

/// The `trace_id` labels of every exemplar in an `/api/v1/query_exemplars` answer.
pub fn exemplar_trace_ids(answer: &serde_json::Value) -> Vec<String> {
    let series = answer["data"].as_array().map(Vec::as_slice).unwrap_or_default();
    series
        .iter()
        .flat_map(|s| s["exemplars"].as_array().map(Vec::as_slice).unwrap_or_default())
        .filter_map(|e| e["labels"]["trace_id"].as_str().map(str::to_string))
        .collect()
}
