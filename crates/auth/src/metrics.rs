//! The authentication metrics, with every enum-labelled handle resolved once.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use compozy_telemetry::{Counter, Family, Histogram, Registry, catalog};

/// Why a decision went as it did (`reason` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    None,
    InvalidCredentials,
    ExpiredToken,
    MissingAuth,
    InvalidFormat,
    RateLimited,
    Unknown,
}

impl Reason {
    pub const ALL: [Reason; 7] = [
        Reason::None,
        Reason::InvalidCredentials,
        Reason::ExpiredToken,
        Reason::MissingAuth,
        Reason::InvalidFormat,
        Reason::RateLimited,
        Reason::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::None => "none",
            Reason::InvalidCredentials => "invalid_credentials",
            Reason::ExpiredToken => "expired_token",
            Reason::MissingAuth => "missing_auth",
            Reason::InvalidFormat => "invalid_format",
            Reason::RateLimited => "rate_limited",
            Reason::Unknown => "unknown",
        }
    }

    fn outcome(self) -> Outcome {
        if self == Reason::None { Outcome::Success } else { Outcome::Failure }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// The credential kind (`method` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    ApiKey,
    Jwt,
    Unknown,
}

impl Method {
    const ALL: [Method; 3] = [Method::ApiKey, Method::Jwt, Method::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::ApiKey => "api_key",
            Method::Jwt => "jwt",
            Method::Unknown => "unknown",
        }
    }
}

/// What kind of key a rate limit was keyed by (`key_type` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    ApiKey,
    User,
    Ip,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::ApiKey => "api_key",
            KeyType::User => "user",
            KeyType::Ip => "ip",
        }
    }
}

/// Handles of the `Authentication` metric group.
#[derive(Clone)]
pub struct AuthMetrics {
    /// `[reason][method]`; the outcome follows from the reason.
    attempts: Vec<Arc<Counter>>,
    /// `[method][outcome]`.
    duration: Vec<Arc<Histogram>>,
    /// api_key, jwt.
    token_age: [Arc<Histogram>; 2],
    rate_limit_hits: Arc<Family<Counter>>,
    blocks: Arc<Family<Counter>>,
}

impl std::fmt::Debug for AuthMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthMetrics")
    }
}

impl AuthMetrics {
    pub fn new(registry: &Registry) -> Self {
        let attempts_f = registry.counter(&catalog::AUTH_ATTEMPTS);
        let attempts = Reason::ALL
            .iter()
            .flat_map(|r| Method::ALL.iter().map(move |m| (*r, *m)))
            .map(|(r, m)| attempts_f.get(&[r.outcome().as_str(), r.as_str(), m.as_str()]))
            .collect();
        let duration_f = registry.histogram(&catalog::AUTH_DURATION);
        let duration = Method::ALL
            .iter()
            .flat_map(|m| [Outcome::Success, Outcome::Failure].map(|o| duration_f.get(&[m.as_str(), o.as_str()])))
            .collect();
        let age = registry.histogram(&catalog::AUTH_TOKEN_AGE);
        Self {
            attempts,
            duration,
            token_age: [age.get(&["api_key"]), age.get(&["jwt"])],
            rate_limit_hits: registry.counter(&catalog::AUTH_RATE_LIMIT_HITS),
            blocks: registry.counter(&catalog::RATE_LIMIT_BLOCKS),
        }
    }

    /// One authentication decision.
    pub fn decision(&self, reason: Reason, method: Method, elapsed: Duration) {
        let r = Reason::ALL.iter().position(|x| *x == reason).unwrap_or(0);
        let m = Method::ALL.iter().position(|x| *x == method).unwrap_or(0);
        self.attempts[r * Method::ALL.len() + m].inc();
        let o = usize::from(reason.outcome() == Outcome::Failure);
        self.duration[m * 2 + o].observe(elapsed.as_secs_f64());
    }

    pub fn token_age(&self, method: Method, age_secs: f64) {
        let h = if method == Method::Jwt { &self.token_age[1] } else { &self.token_age[0] };
        h.observe(age_secs.max(0.0));
    }

    /// One request refused by rate limiting.
    pub fn rate_limited(&self, ip: Option<IpAddr>, user_id: &str, route: &str, key_type: KeyType) {
        let masked = mask_ip(ip);
        self.rate_limit_hits.get(&[&masked, user_id]).inc();
        self.blocks.get(&[route, key_type.as_str()]).inc();
    }
}

/// IPv4 with the last octet zeroed, IPv6 cut to its /64, `unknown` when absent.
pub fn mask_ip(ip: Option<IpAddr>) -> String {
    match ip.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0")
        }
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0).to_string()
        }
        None => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_drops_host_bits() {
        assert_eq!(mask_ip(Some("203.0.113.77".parse().expect("ip"))), "203.0.113.0");
        assert_eq!(mask_ip(Some("2001:db8:1:2:3:4:5:6".parse().expect("ip"))), "2001:db8:1:2::");
        assert_eq!(mask_ip(Some("::ffff:10.1.2.3".parse().expect("ip"))), "10.1.2.0");
        assert_eq!(mask_ip(None), "unknown");
    }
}
