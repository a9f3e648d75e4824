//! The authentication metrics, with every enum-labelled handle resolved once.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv6Addr};
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
    /// The console's session cookie (minted at sign-in with an API key).
    Session,
    Unknown,
}

impl Method {
    const ALL: [Method; 4] = [Method::ApiKey, Method::Jwt, Method::Session, Method::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::ApiKey => "api_key",
            Method::Jwt => "jwt",
            Method::Session => "session",
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

    /// One request refused by rate limiting. Allocates nothing once the series exist: the
    /// masked address is formatted on the stack.
    pub fn rate_limited(&self, ip: Option<IpAddr>, user_id: &str, route: &str, key_type: KeyType) {
        let mut masked = LabelBuf::new();
        // Cannot fail: the longest masked address (an IPv6 /64) is 21 bytes.
        let _ = write!(masked, "{}", mask_ip(ip));
        self.rate_limit_hits.get(&[masked.as_str(), user_id]).inc();
        self.blocks.get(&[route, key_type.as_str()]).inc();
    }
}

/// The address with its host bits dropped; format it with `{}` (no allocation).
pub fn mask_ip(ip: Option<IpAddr>) -> MaskedIp {
    MaskedIp(ip.map(|ip| ip.to_canonical()))
}

/// IPv4 with the last octet zeroed, IPv6 cut to its /64, `unknown` when absent.
#[derive(Debug, Clone, Copy)]
pub struct MaskedIp(Option<IpAddr>);

impl fmt::Display for MaskedIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(IpAddr::V4(v4)) => {
                let [a, b, c, _] = v4.octets();
                write!(f, "{a}.{b}.{c}.0")
            }
            Some(IpAddr::V6(v6)) => {
                let s = v6.segments();
                write!(f, "{}", Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            None => f.write_str("unknown"),
        }
    }
}

/// A label value formatted on the stack (no crate in the tree offers one; 48 bytes covers any
/// masked address). Writes past the end fail instead of growing.
struct LabelBuf {
    bytes: [u8; 48],
    len: usize,
}

impl LabelBuf {
    fn new() -> Self {
        LabelBuf { bytes: [0; 48], len: 0 }
    }

    fn as_str(&self) -> &str {
        // Only whole `&str`s are ever copied in, so the prefix is valid UTF-8.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("unknown")
    }
}

impl fmt::Write for LabelBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_drops_host_bits() {
        let masked = |ip: Option<&str>| mask_ip(ip.map(|s| s.parse().expect("ip"))).to_string();
        assert_eq!(masked(Some("203.0.113.77")), "203.0.113.0");
        assert_eq!(masked(Some("2001:db8:1:2:3:4:5:6")), "2001:db8:1:2::");
        assert_eq!(masked(Some("::ffff:10.1.2.3")), "10.1.2.0");
        assert_eq!(masked(None), "unknown");
    }

    #[test]
    fn the_longest_masked_address_fits_the_stack_buffer() {
        let widest = mask_ip(Some("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().expect("ip")));
        let mut buf = LabelBuf::new();
        write!(buf, "{widest}").expect("fits");
        assert_eq!(buf.as_str(), "ffff:ffff:ffff:ffff::");
        assert!(write!(buf, "{}", "x".repeat(48)).is_err(), "an overlong write fails instead of growing");
    }
}
