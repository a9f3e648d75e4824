//! Signature verification: pure functions over the configured [`Verify`], the request headers and
//! the raw body. Every scheme is one HMAC-SHA256 (ring) over scheme-specific signed bytes;
//! candidates are compared in constant time (`subtle`), every configured secret is tried (key
//! rotation), and a malformed candidate is skipped rather than aborting the others.
//!
//! | method     | header(s)                                           | signed bytes               | encoding |
//! |------------|-----------------------------------------------------|----------------------------|----------|
//! | `hmac`     | configured; optional prefix                         | body                       | hex/b64  |
//! | `github`   | `X-Hub-Signature-256: sha256=<hex>`                 | body                       | hex      |
//! | `stripe`   | `Stripe-Signature: t=<ts>,v1=<hex>[,v1=...]`        | `{ts}.{body}`              | hex      |
//! | `standard` | `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<b64> ...` | `{id}.{ts}.{body}` | base64 |
//! | `slack`    | `X-Slack-Signature: v0=<hex>`, `X-Slack-Request-Timestamp` | `v0:{ts}:{body}`    | hex      |

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use compozy_autoload::resources::{Encoding, Verify, VerifyMethod};
use http::HeaderMap;
use ring::hmac;

/// Stripe's, Slack's and the Standard Webhooks libraries' default replay window.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Why a delivery failed verification. The variant is logged (a bounded reason); the client only
/// ever sees "signature verification failed".
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("signature header missing")]
    MissingHeader,
    #[error("signature header malformed")]
    Malformed,
    #[error("timestamp outside the tolerance (too old)")]
    Stale,
    #[error("timestamp outside the tolerance (in the future)")]
    Future,
    #[error("no signature matches")]
    Mismatch,
}

impl VerifyError {
    /// A short bounded reason for logs.
    pub fn reason(self) -> &'static str {
        match self {
            VerifyError::MissingHeader => "missing_header",
            VerifyError::Malformed => "malformed",
            VerifyError::Stale => "stale",
            VerifyError::Future => "future",
            VerifyError::Mismatch => "mismatch",
        }
    }
}

/// Checks `body` and `headers` against `cfg` at Unix time `now` (seconds).
pub fn verify(cfg: &Verify, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), VerifyError> {
    let tolerance = cfg.tolerance.unwrap_or(DEFAULT_TOLERANCE);
    match cfg.method {
        VerifyMethod::None => Ok(()),
        VerifyMethod::Hmac => hmac_header(cfg, headers, body),
        VerifyMethod::Github => github(cfg, headers, body),
        VerifyMethod::Stripe => stripe(cfg, headers, body, now, tolerance),
        VerifyMethod::Standard => standard(cfg, headers, body, now, tolerance),
        VerifyMethod::Slack => slack(cfg, headers, body, now, tolerance),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, VerifyError> {
    let v = headers.get(name).ok_or(VerifyError::MissingHeader)?;
    v.to_str().map(str::trim).map_err(|_| VerifyError::Malformed)
}

/// Raw key bytes of every secret (Standard Webhooks secrets are `whsec_` + base64).
fn keys(cfg: &Verify) -> Vec<hmac::Key> {
    cfg.all_secrets()
        .filter_map(|s| {
            let bytes = match cfg.method {
                VerifyMethod::Standard => B64.decode(s.expose().strip_prefix("whsec_").unwrap_or(s.expose())).ok()?,
                _ => s.expose().as_bytes().to_vec(),
            };
            Some(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
        })
        .collect()
}

/// `true` when some key's MAC over `parts` (concatenated) equals `tag` (constant time per check).
fn any_matches(keys: &[hmac::Key], parts: &[&[u8]], tag: &[u8]) -> bool {
    keys.iter().any(|k| {
        let mut ctx = hmac::Context::with_key(k);
        parts.iter().for_each(|p| ctx.update(p));
        // The signed bytes come in parts (no copy of the body); the tag comparison is what must
        // not leak timing, and `ct_eq` does not.
        let expected = ctx.sign();
        subtle::ConstantTimeEq::ct_eq(expected.as_ref(), tag).into()
    })
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

fn hmac_header(cfg: &Verify, headers: &HeaderMap, body: &[u8]) -> Result<(), VerifyError> {
    let name = cfg.header.as_deref().unwrap_or_default();
    let value = header(headers, name)?;
    let value = match cfg.prefix.as_deref() {
        Some(p) => value.strip_prefix(p).ok_or(VerifyError::Malformed)?,
        None => value,
    };
    let tag = match cfg.encoding {
        Encoding::Hex => decode_hex(value.trim()),
        Encoding::Base64 => B64.decode(value.trim()).ok().filter(|t| t.len() == 32),
    }
    .ok_or(VerifyError::Malformed)?;
    matched(any_matches(&keys(cfg), &[body], &tag))
}

fn github(cfg: &Verify, headers: &HeaderMap, body: &[u8]) -> Result<(), VerifyError> {
    let value = header(headers, "x-hub-signature-256")?;
    let hex = value.strip_prefix("sha256=").ok_or(VerifyError::Malformed)?;
    let tag = decode_hex(hex.trim()).ok_or(VerifyError::Malformed)?;
    matched(any_matches(&keys(cfg), &[body], &tag))
}

fn matched(ok: bool) -> Result<(), VerifyError> {
    if ok { Ok(()) } else { Err(VerifyError::Mismatch) }
}

/// Both directions: a signature from the future is as suspicious as a stale one.
fn fresh(ts: &str, now: i64, tolerance: Duration) -> Result<(), VerifyError> {
    let ts: i64 = ts.trim().parse().map_err(|_| VerifyError::Malformed)?;
    let tol = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    match now.saturating_sub(ts) {
        d if d > tol => Err(VerifyError::Stale),
        d if d < -tol => Err(VerifyError::Future),
        _ => Ok(()),
    }
}

/// Candidates that fail to decode are skipped: one garbage `v1=` must not hide a valid one.
fn first_match<'a>(
    keys: &[hmac::Key],
    parts: &[&[u8]],
    candidates: impl Iterator<Item = &'a str>,
    decode: impl Fn(&str) -> Option<Vec<u8>>,
) -> Result<(), VerifyError> {
    let mut any = false;
    for tag in candidates.filter_map(decode) {
        any = true;
        if any_matches(keys, parts, &tag) {
            return Ok(());
        }
    }
    if any { Err(VerifyError::Mismatch) } else { Err(VerifyError::Malformed) }
}

fn stripe(cfg: &Verify, headers: &HeaderMap, body: &[u8], now: i64, tol: Duration) -> Result<(), VerifyError> {
    let value = header(headers, "stripe-signature")?;
    let mut ts = None;
    let mut sigs = Vec::new();
    for item in value.split(',') {
        match item.trim().split_once('=') {
            Some(("t", v)) => ts = Some(v),
            Some(("v1", v)) => sigs.push(v),
            _ => {}
        }
    }
    let ts = ts.ok_or(VerifyError::Malformed)?;
    if sigs.is_empty() {
        return Err(VerifyError::Malformed);
    }
    fresh(ts, now, tol)?;
    first_match(&keys(cfg), &[ts.as_bytes(), b".", body], sigs.into_iter(), decode_hex)
}

fn standard(cfg: &Verify, headers: &HeaderMap, body: &[u8], now: i64, tol: Duration) -> Result<(), VerifyError> {
    let id = header(headers, "webhook-id")?;
    let ts = header(headers, "webhook-timestamp")?;
    let sigs = header(headers, "webhook-signature")?;
    fresh(ts, now, tol)?;
    let candidates = sigs.split(' ').filter_map(|s| s.strip_prefix("v1,"));
    let parts: [&[u8]; 5] = [id.as_bytes(), b".", ts.as_bytes(), b".", body];
    first_match(&keys(cfg), &parts, candidates, |c| B64.decode(c).ok().filter(|t| t.len() == 32))
}

fn slack(cfg: &Verify, headers: &HeaderMap, body: &[u8], now: i64, tol: Duration) -> Result<(), VerifyError> {
    let ts = header(headers, "x-slack-request-timestamp")?;
    let value = header(headers, "x-slack-signature")?;
    let hex = value.strip_prefix("v0=").ok_or(VerifyError::Malformed)?;
    let tag = decode_hex(hex).ok_or(VerifyError::Malformed)?;
    fresh(ts, now, tol)?;
    matched(any_matches(&keys(cfg), &[b"v0:", ts.as_bytes(), b":", body], &tag))
}

/// Signing helpers for tests, examples and the load generator (the sender's side of each scheme).
pub mod sign {
    use super::*;

    fn mac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let k = hmac::Key::new(hmac::HMAC_SHA256, key);
        let mut ctx = hmac::Context::with_key(&k);
        parts.iter().for_each(|p| ctx.update(p));
        ctx.sign().as_ref().to_vec()
    }

    pub fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// `X-Hub-Signature-256` value.
    pub fn github(secret: &str, body: &[u8]) -> String {
        format!("sha256={}", hex(&mac(secret.as_bytes(), &[body])))
    }

    /// Plain HMAC-SHA256 of the body, hex.
    pub fn hmac_hex(secret: &str, body: &[u8]) -> String {
        hex(&mac(secret.as_bytes(), &[body]))
    }

    /// Plain HMAC-SHA256 of the body, base64.
    pub fn hmac_base64(secret: &str, body: &[u8]) -> String {
        B64.encode(mac(secret.as_bytes(), &[body]))
    }

    /// `Stripe-Signature` value with one `v1` per secret.
    pub fn stripe(secrets: &[&str], ts: i64, body: &[u8]) -> String {
        let t = ts.to_string();
        let v1: Vec<String> =
            secrets.iter().map(|s| format!("v1={}", hex(&mac(s.as_bytes(), &[t.as_bytes(), b".", body])))).collect();
        format!("t={t},{}", v1.join(","))
    }

    /// `webhook-signature` value (`v1,<b64>`) for a `whsec_` secret; `None` if it is not base64.
    pub fn standard(secret: &str, id: &str, ts: i64, body: &[u8]) -> Option<String> {
        let key = B64.decode(secret.strip_prefix("whsec_").unwrap_or(secret)).ok()?;
        let t = ts.to_string();
        Some(format!("v1,{}", B64.encode(mac(&key, &[id.as_bytes(), b".", t.as_bytes(), b".", body]))))
    }

    /// `X-Slack-Signature` value.
    pub fn slack(secret: &str, ts: i64, body: &[u8]) -> String {
        let t = ts.to_string();
        format!("v0={}", hex(&mac(secret.as_bytes(), &[b"v0:", t.as_bytes(), b":", body])))
    }
}
