//! The client address behind a request: the socket peer, or what a trusted proxy says in
//! `X-Forwarded-For`.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderMap;

use crate::metrics::mask_ip;
use crate::ratelimit::unix_secs;

/// How often the untrusted `X-Forwarded-For` warning may repeat.
const WARN_EVERY_SECS: u64 = 3600;

/// Resolves client addresses; one per process, shared by every route group.
#[derive(Debug, Default)]
pub struct ClientAddrs {
    trusted: Vec<IpAddr>,
    /// Unix seconds of the last untrusted-forwarder warning, 0 for never.
    last_warn: AtomicU64,
}

impl ClientAddrs {
    pub fn new(trusted_proxies: &[IpAddr]) -> Self {
        Self { trusted: trusted_proxies.iter().map(|ip| ip.to_canonical()).collect(), last_warn: AtomicU64::new(0) }
    }

    /// Whether the socket peer is one of `auth.trusted_proxies` (whose `X-Forwarded-*` headers
    /// are believed).
    pub fn is_trusted(&self, peer: Option<SocketAddr>) -> bool {
        peer.is_some_and(|p| self.trusted.contains(&p.ip().to_canonical()))
    }

    /// The client address: the peer, unless the peer is a trusted proxy, in which case the
    /// rightmost `X-Forwarded-For` entry that is not itself a trusted proxy (leftmost entries
    /// are client-controlled and never believed). A forwarded header from an untrusted peer is
    /// ignored, with a warning (see [`Self::warn_untrusted`]).
    pub fn resolve(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?.ip().to_canonical();
        if !self.trusted.contains(&peer) {
            if headers.contains_key("x-forwarded-for") {
                self.warn_untrusted(peer, unix_secs());
            }
            return Some(peer);
        }
        let forwarded = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>();
        for part in forwarded.iter().rev().flat_map(|v| v.rsplit(',')) {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) if self.trusted.contains(&ip.to_canonical()) => continue,
                Ok(ip) => return Some(ip.to_canonical()),
                Err(_) => return Some(peer),
            }
        }
        Some(peer)
    }

    /// Behind an untrusted proxy every client shares the proxy's address (one failure guard, one
    /// anonymous budget): say so the first time it is seen, then at most once an hour.
    /// Returns whether it warned.
    pub fn warn_untrusted(&self, peer: IpAddr, now: u64) -> bool {
        let last = self.last_warn.load(Ordering::Relaxed);
        if last != 0 && now < last + WARN_EVERY_SECS {
            return false;
        }
        if self.last_warn.compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed).is_err() {
            return false;
        }
        tracing::warn!(
            peer = %mask_ip(Some(peer)),
            "requests carry X-Forwarded-For from a peer not in auth.trusted_proxies: the header is ignored and \
             the peer is taken as the client, so every client behind it shares one address for rate limits and \
             the failure guard; list the proxy in auth.trusted_proxies if there is one (repeated at most hourly)"
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().expect("header"));
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().expect("ip");
        let peer = Some(SocketAddr::new(proxy, 1234));
        let h = headers("6.6.6.6, 198.51.100.7");
        assert_eq!(ClientAddrs::new(&[proxy]).resolve(peer, &h), Some("198.51.100.7".parse().expect("ip")));
        assert_eq!(ClientAddrs::new(&[]).resolve(peer, &h), Some(proxy));
        assert_eq!(ClientAddrs::new(&[proxy]).resolve(peer, &headers("garbage")), Some(proxy));
    }

    #[test]
    fn the_untrusted_forwarder_warning_repeats_at_most_hourly() {
        let c = ClientAddrs::new(&[]);
        let peer: IpAddr = "10.0.0.1".parse().expect("ip");
        assert!(c.warn_untrusted(peer, 1_000), "the first occurrence warns");
        assert!(!c.warn_untrusted(peer, 1_001));
        assert!(!c.warn_untrusted(peer, 1_000 + 3_599));
        assert!(c.warn_untrusted(peer, 1_000 + 3_600), "an hour later it warns again");
    }
}
