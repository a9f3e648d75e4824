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

use compozy_autoload::resources::{Dedupe, VerifyMethod, WebhookTrigger};
use compozy_store::{Cache, CacheError};
use http::HeaderMap;
use sha2::{Digest, Sha256};

const IN_PROGRESS: &[u8] = b"p";
const SUCCEEDED: &[u8] = b"s";

/// Conventional delivery-ID headers, read only for unsigned webhooks (`verify: none`): nothing
/// there is signed, so no signed ID exists that they could override.
const UNSIGNED_ID_HEADERS: [&str; 3] = ["x-idempotency-key", "x-github-delivery", "webhook-id"];

/// The delivery ID of a verified request, if dedupe is on and one is found; `body` is the parsed
/// body and `raw` its bytes. Signed material first, so a replay that changes every unsigned
/// header still has the same ID:
///
/// 1. the configured `dedupe.key: body.<path>` (the body is signed);
/// 2. the Standard Webhooks `webhook-id` (part of the signed bytes);
/// 3. a hash of the signed bytes (body, with the timestamp for `stripe` and `slack`), unless
///    `dedupe.signed_hash: false`;
/// 4. the configured `dedupe.key: header.<name>`;
/// 5. for `verify: none` only, the conventional ID headers.
pub fn delivery_id(hook: &WebhookTrigger, headers: &HeaderMap, body: &serde_json::Value, raw: &[u8]) -> Option<String> {
    let dedupe = hook.dedupe.as_ref();
    if dedupe.is_some_and(|d| !d.enabled) {
        return None;
    }
    let (body_path, header_name) = match dedupe.and_then(|d| d.key.as_deref()).and_then(|k| k.split_once('.')) {
        Some(("body", path)) => (Some(path), None),
        Some(("header", name)) => (None, Some(name)),
        _ => (None, None),
    };
    let method = hook.verify.method;
    body_path
        .and_then(|path| body_value(body, path))
        .or_else(|| (method == VerifyMethod::Standard).then(|| header(headers, "webhook-id")).flatten())
        .or_else(|| dedupe.is_none_or(|d| d.signed_hash).then(|| signed_hash(method, headers, raw)).flatten())
        .or_else(|| header_name.and_then(|name| header(headers, name)))
        .or_else(|| {
            (method == VerifyMethod::None)
                .then(|| UNSIGNED_ID_HEADERS.iter().find_map(|h| header(headers, h)))
                .flatten()
        })
}

/// Header lookup by name in any case (`HeaderMap` keys are lower-case; configured names may not be).
fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = match http::HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes()) {
        Ok(n) => headers.get(n)?,
        Err(_) => return None,
    };
    value.to_str().ok().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string)
}

fn body_value(body: &serde_json::Value, path: &str) -> Option<String> {
    match path.split('.').try_fold(body, |v, k| v.as_object()?.get(k))? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `sha256:<hex>` of what the signature covers besides the secret: the body, and for `stripe`
/// and `slack` the signed timestamp (their senders' retries are new signatures, a replay is not).
/// `None` for `verify: none` (nothing signed) and `standard` (its `webhook-id` is the ID).
fn signed_hash(method: VerifyMethod, headers: &HeaderMap, raw: &[u8]) -> Option<String> {
    let timestamp = match method {
        VerifyMethod::Github | VerifyMethod::Hmac => String::new(),
        VerifyMethod::Stripe => header(headers, "stripe-signature")?
            .split(',')
            .find_map(|item| item.trim().strip_prefix("t=").map(str::to_string))?,
        VerifyMethod::Slack => header(headers, "x-slack-request-timestamp")?,
        VerifyMethod::None | VerifyMethod::Standard => return None,
    };
    Some(signed_bytes_id(&timestamp, raw))
}

/// The fallback delivery ID of a signed body (`timestamp` empty for schemes without one).
pub fn signed_bytes_id(timestamp: &str, raw: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(timestamp.as_bytes());
    h.update([0]);
    h.update(raw);
    format!("sha256:{}", hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The cache key: a hash, so client-chosen IDs never reach the cache (or logs) verbatim, and the
/// same ID sent to two webhooks is two deliveries.
pub fn cache_key(slug: &str, id: &str) -> String {
    let mut h = Sha256::new();
    h.update(slug.as_bytes());
    h.update([0]);
    h.update(id.as_bytes());
    format!("webhook:dedupe:{}", hex(&h.finalize()))
}

/// The key as the delivery log stores it (`webhook_deliveries.dedupe_key`): the hash alone.
pub fn stored_key(cache_key: &str) -> &str {
    cache_key.trim_start_matches("webhook:dedupe:")
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
