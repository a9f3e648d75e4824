//! Filter evaluation and input rendering over the delivery context
//! `{"body": <object>, "headers": {<lowercase name>: <value>}}`; `payload` is another name for
//! `body` (the Go engine's), resolved without a second copy of the body.
//!
//! Templates: a string that is exactly `{{ path }}` becomes the value at `path` (any JSON type;
//! `null` when absent), `{{ path | length }}` its length; markers inside a longer string are
//! replaced by their text. Other JSON values are kept, arrays and objects rendered recursively.

use std::sync::Arc;

use compozy_autoload::resources::{WebhookEvent, WebhookTrigger};
use http::HeaderMap;
use serde_json::{Map, Value};

/// The context filters and templates see.
pub fn context(body: &Value, headers: &HeaderMap) -> Value {
    let mut h = Map::new();
    for (name, value) in headers {
        // First value wins for repeated headers; non-UTF-8 bytes are replaced, never rejected.
        h.entry(name.as_str()).or_insert_with(|| Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned()));
    }
    serde_json::json!({ "body": body, "headers": h })
}

/// Why no event could be chosen.
#[derive(Debug, PartialEq, Eq)]
pub enum FilterError {
    /// A filter failed at run time (a missing field, a type error) or returned a non-boolean.
    Evaluation,
}

/// The first event whose filter passes (an event without a filter always passes).
pub fn select<'h>(
    hook: &'h WebhookTrigger,
    env: &Arc<cel::Env>,
    ctx: &Value,
) -> Result<Option<&'h WebhookEvent>, FilterError> {
    if hook.events.iter().all(|e| e.compiled.filter.is_none()) {
        return Ok(hook.events.first());
    }
    let mut cel_ctx = cel::Context::with_env(env.clone());
    let body = cel::to_value(&ctx["body"]).map_err(|_| FilterError::Evaluation)?;
    let headers = cel::to_value(&ctx["headers"]).map_err(|_| FilterError::Evaluation)?;
    cel_ctx.add_variable_from_value("body", body.clone());
    cel_ctx.add_variable_from_value("payload", body);
    cel_ctx.add_variable_from_value("headers", headers);
    for event in &hook.events {
        let Some(program) = &event.compiled.filter else { return Ok(Some(event)) };
        match program.execute(&cel_ctx) {
            Ok(cel::Value::Bool(true)) => return Ok(Some(event)),
            Ok(cel::Value::Bool(false)) => {}
            _ => return Err(FilterError::Evaluation),
        }
    }
    Ok(None)
}

/// `template` rendered against `ctx`.
pub fn render(template: &Value, ctx: &Value) -> Value {
    match template {
        Value::String(s) => render_str(s, ctx),
        Value::Array(items) => Value::Array(items.iter().map(|v| render(v, ctx)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), render(v, ctx))).collect()),
        _ => template.clone(),
    }
}

fn render_str(s: &str, ctx: &Value) -> Value {
    if let Some(expr) = whole_marker(s) {
        return eval(expr, ctx);
    }
    if !s.contains("{{") {
        return Value::String(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else { break };
        out.push_str(&rest[..start]);
        match eval(&rest[start + 2..start + len], ctx) {
            Value::String(v) => out.push_str(&v),
            Value::Null => {}
            v => out.push_str(&v.to_string()),
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    Value::String(out)
}

fn whole_marker(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}")).then_some(inner)
}

fn eval(expr: &str, ctx: &Value) -> Value {
    let (path, filter) = match expr.split_once('|') {
        Some((p, f)) => (p.trim(), Some(f.trim())),
        None => (expr.trim(), None),
    };
    let path = match path.strip_prefix("payload") {
        Some(rest) if rest.is_empty() || rest.starts_with('.') => format!("body{rest}"),
        _ => path.to_string(),
    };
    let v = path.split('.').try_fold(ctx, |v, key| match v {
        Value::Object(m) => m.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    });
    match (v, filter) {
        (None, _) => Value::Null,
        (Some(v), None) => v.clone(),
        (Some(v), Some("length")) => match v {
            Value::Array(a) => a.len().into(),
            Value::Object(m) => m.len().into(),
            Value::String(s) => s.chars().count().into(),
            _ => Value::Null,
        },
        (Some(_), Some(_)) => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_whole_markers_filters_and_interpolation() {
        let ctx = json!({"body": {"repo": {"name": "a/b"}, "commits": [1, 2, 3], "n": 7}, "headers": {"x-e": "push"}});
        let t = json!({
            "repo": "{{ body.repo.name }}", "count": "{{ body.commits | length }}", "n": "{{body.n}}",
            "msg": "{{ headers.x-e }} to {{ body.repo.name }} ({{ body.n }})", "missing": "{{ body.nope }}",
            "first": "{{ payload.commits.0 }}", "lit": 5, "list": ["{{ body.n }}"], "unknown": "{{ body.n | upper }}"
        });
        assert_eq!(
            render(&t, &ctx),
            json!({"repo": "a/b", "count": 3, "n": 7, "msg": "push to a/b (7)", "missing": null, "first": 1,
                   "lit": 5, "list": [7], "unknown": null})
        );
        assert_eq!(render(&json!("{{ unclosed"), &ctx), json!("{{ unclosed"));
    }
}
