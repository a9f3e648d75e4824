//! Passing data between tasks. A JSON string that is exactly `{{ path }}` is replaced by the
//! value at `path` in the run context `{"input": <run input>, "tasks": {<id>: {"output": ...}}}`
//! (e.g. `{{ input.repository }}`, `{{ tasks.fetch.output.items }}`); strings that merely contain
//! such a marker are left as they are (no partial interpolation), as are unknown paths (`null`).

use serde_json::{Map, Value};

/// The context tasks of a run see.
pub fn context(input: Value, outputs: Vec<(String, Option<Value>)>) -> Value {
    let tasks: Map<String, Value> = outputs
        .into_iter()
        .map(|(id, out)| (id, serde_json::json!({ "output": out.unwrap_or(Value::Null) })))
        .collect();
    serde_json::json!({ "input": input, "tasks": tasks })
}

/// `value` with every whole-string `{{ path }}` replaced from `ctx`.
pub fn render(value: &Value, ctx: &Value) -> Value {
    match value {
        Value::String(s) => match marker(s) {
            Some(path) => lookup(ctx, path).cloned().unwrap_or(Value::Null),
            None => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(|v| render(v, ctx)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), render(v, ctx))).collect()),
        _ => value.clone(),
    }
}

fn marker(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
    (!inner.is_empty() && !inner.contains(['{', '}', '|', ' '])).then_some(inner)
}

fn lookup<'a>(ctx: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(ctx, |v, key| match v {
        Value::Object(m) => m.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_markers_only() {
        let ctx =
            context(serde_json::json!({"repo": "a/b"}), vec![("t1".into(), Some(serde_json::json!({"n": [1, 2]})))]);
        let v = serde_json::json!({"r": "{{ input.repo }}", "n": "{{tasks.t1.output.n.1}}", "s": "x {{ input.repo }}", "m": "{{ nope }}"});
        assert_eq!(render(&v, &ctx), serde_json::json!({"r": "a/b", "n": 2, "s": "x {{ input.repo }}", "m": null}));
    }
}
