//! `console:` configuration.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve the console (`compozy serve` only; `compozy worker` never does).
    pub enabled: bool,
    /// Where it is served: an absolute path of one or more segments, no trailing slash.
    pub path: String,
    /// How long a session lasts after sign-in (it also ends at sign-out or with its key).
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// The session cookie's `Secure` flag: `auto` sets it when the request came over TLS (a
    /// trusted proxy's `X-Forwarded-Proto: https`), `always` / `never` as said.
    pub secure_cookie: SecureCookie,
    /// How often the overview's charts sample the metrics (15 minutes of samples are kept).
    #[serde(with = "humantime_serde")]
    pub sample_interval: Duration,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: "/console".into(),
            session_ttl: Duration::from_secs(8 * 3600),
            secure_cookie: SecureCookie::Auto,
            sample_interval: Duration::from_secs(5),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecureCookie {
    #[default]
    Auto,
    Always,
    Never,
}

/// The window the charts show.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

impl ConsoleConfig {
    /// Checks what serde cannot: the path's shape, a usable TTL and sample interval.
    pub fn validate(&self) -> Result<(), String> {
        let p = &self.path;
        let shaped = p.starts_with('/')
            && p.len() > 1
            && !p.ends_with('/')
            && !p.contains("//")
            && p[1..].split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            });
        if !shaped {
            return Err(format!(
                "console.path must be an absolute path such as /console (letters, digits, -_.), got {p:?}"
            ));
        }
        if p.starts_with("/api/") || p == "/api" || p == "/metrics" || p == "/healthz" || p == "/readyz" {
            return Err(format!("console.path {p:?} collides with the engine's own endpoints"));
        }
        if self.session_ttl < Duration::from_secs(60) || self.session_ttl > Duration::from_secs(30 * 24 * 3600) {
            return Err("console.session_ttl must be between 1m and 30d".into());
        }
        if self.sample_interval < Duration::from_secs(1) || self.sample_interval > Duration::from_secs(60) {
            return Err("console.sample_interval must be between 1s and 60s".into());
        }
        Ok(())
    }

    /// Points the chart ring keeps: the window at the sample interval.
    pub fn points(&self) -> usize {
        let every = self.sample_interval.as_secs_f64().max(1.0);
        (WINDOW.as_secs_f64() / every).ceil() as usize + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        let with = |path: &str| ConsoleConfig { path: path.into(), ..ConsoleConfig::default() }.validate();
        assert!(with("/console").is_ok());
        assert!(with("/ops/console").is_ok());
        for bad in ["", "/", "console", "/console/", "//x", "/a/../b", "/a b", "/api/v0/x", "/metrics", "/x?y"] {
            assert!(with(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_ring_covers_the_window() {
        assert_eq!(ConsoleConfig::default().points(), 181);
        let fast = ConsoleConfig { sample_interval: Duration::from_secs(1), ..ConsoleConfig::default() };
        assert_eq!(fast.points(), 901);
    }
}
