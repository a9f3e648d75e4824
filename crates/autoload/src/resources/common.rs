//! Pieces several resources share.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a task is retried after a failure.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (1 = no retry).
    pub max_attempts: u32,
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 1, backoff: Backoff::default() }
    }
}

/// Delay before attempt n+1: `min(initial × multiplierⁿ⁻¹, max)`; multiplier 1 = fixed delay.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Backoff {
    #[serde(with = "humantime_serde")]
    pub initial: Duration,
    #[serde(with = "humantime_serde")]
    pub max: Duration,
    pub multiplier: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { initial: Duration::from_secs(1), max: Duration::from_secs(60), multiplier: 2.0 }
    }
}

impl RetryPolicy {
    pub(crate) fn check(&self) -> Result<(), String> {
        if !(1..=100).contains(&self.max_attempts) {
            return Err("retry.max_attempts must be between 1 and 100".into());
        }
        let b = &self.backoff;
        if b.initial.is_zero() || b.initial > b.max {
            return Err("retry.backoff.initial must be greater than 0 and at most backoff.max".into());
        }
        if b.max > Duration::from_secs(24 * 3600) {
            return Err("retry.backoff.max must be at most 24h".into());
        }
        if !(1.0..=10.0).contains(&b.multiplier) {
            return Err("retry.backoff.multiplier must be between 1 and 10".into());
        }
        Ok(())
    }
}

/// `http://` or `https://` and something after it; the value is never echoed in errors.
pub(crate) fn check_url(field: &str, url: &str) -> Result<(), String> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.contains(char::is_whitespace) => Ok(()),
        _ => Err(format!("{field} must be an http:// or https:// URL")),
    }
}

/// Environment variable names as POSIX shells accept them.
pub(crate) fn check_env_names<'a>(field: &str, names: impl Iterator<Item = &'a String>) -> Result<(), String> {
    for name in names {
        let mut bytes = name.bytes();
        let first = bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
        if !first || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("{field}: `{name}` is not a valid environment variable name"));
        }
    }
    Ok(())
}
