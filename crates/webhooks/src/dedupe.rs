//! Dedupe: one cache key per delivery ID, with three states.
//!
//! | cache value | meaning                      | a duplicate gets          |
//! |-------------|------------------------------|---------------------------|
//! | absent      | never seen, or released      | processed                 |
//! | `p`         | in progress (short TTL)      | 409, retry later          |
//! | `s`         | ended 2xx (dedupe TTL)       | 200 `duplicate`           |
//!
//! A delivery that fails releases its key, so the sender's retry is processed. The in-progress
//! mark expires after `webhooks.in_progress_ttl`, so a process killed mid-delivery blocks retries
//! for at most that long.

use std::time::Duration;

use compozy_autoload::resources::{Dedupe, WebhookTrigger};
use compozy_store::{Cache, CacheError};
use http::HeaderMap;
use sha2::{Digest, Sha256};

const IN_PROGRESS: &[u8] = b"p";
const SUCCEEDED: &[u8] = b"s";

/// Headers that carry a delivery ID, in order of preference.
const ID_HEADERS: [&str; 3] = ["x-idempotency-key", "x-github-delivery", "webhook-id"];

/// The delivery ID of a request, if dedupe is on and one is found; `body` is the parsed body.
pub fn delivery_id(hook: &WebhookTrigger, headers: &HeaderMap, body: &serde_json::Value) -> Option<String> {
    if hook.dedupe.as_ref().is_some_and(|d| !d.enabled) {
        return None;
    }
    let header = |name: &str| {
        headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty()).map(str::to_string)
    };
    if let Some(id) = ID_HEADERS.iter().find_map(|h| header(h)) {
        return Some(id);
    }
    let key = hook.dedupe.as_ref().and_then(|d| d.key.as_deref())?;
    match key.split_once('.')? {
        ("header", name) => header(&name.to_ascii_lowercase()),
        ("body", path) => {
            let v = path.split('.').try_fold(body, |v, k| v.as_object()?.get(k))?;
            match v {
                serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The cache key: a hash, so client-chosen IDs never reach the cache (or logs) verbatim, and the
/// same ID sent to two webhooks is two deliveries.
pub fn cache_key(slug: &str, id: &str) -> String {
    let mut h = Sha256::new();
    h.update(slug.as_bytes());
    h.update([0]);
    h.update(id.as_bytes());
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("webhook:dedupe:{hex}")
}

pub fn ttl(dedupe: Option<&Dedupe>, default: Duration) -> Duration {
    dedupe.and_then(|d| d.ttl).unwrap_or(default)
}

/// What the cache said about a delivery ID.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Ours to process; finish with [`succeeded`] or [`release`].
    New,
    Succeeded,
    InProgress,
}

pub async fn claim(cache: &Cache, key: &str, in_progress_ttl: Duration) -> Result<Claim, CacheError> {
    if cache.set_nx(key, IN_PROGRESS, in_progress_ttl).await? {
        return Ok(Claim::New);
    }
    Ok(match cache.get(key).await?.as_deref() {
        Some(SUCCEEDED) => Claim::Succeeded,
        // Absent here means it expired between the two calls: still treat as busy, the sender
        // retries and the next attempt claims it.
        _ => Claim::InProgress,
    })
}

pub async fn succeeded(cache: &Cache, key: &str, ttl: Duration) -> Result<(), CacheError> {
    cache.set(key, SUCCEEDED, ttl).await
}

pub async fn release(cache: &Cache, key: &str) -> Result<(), CacheError> {
    cache.del(key).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hashed_per_slug() {
        let a = cache_key("a", "id-1");
        assert_ne!(a, cache_key("b", "id-1"));
        assert_eq!(a, cache_key("a", "id-1"));
        assert!(!a.contains("id-1") && a.len() == "webhook:dedupe:".len() + 64);
    }
}
