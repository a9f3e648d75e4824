//! The rate limiter over Redis (shared between instances, fail-open/closed) and the property
//! test of header parsing.

mod common;

use std::time::Duration;

use common::*;
use compozy_auth::middleware::{Credential, parse_credential};
use compozy_auth::{RateKey, RateLimitConfig, RateLimiter};
use proptest::prelude::*;

#[tokio::test]
async fn two_instances_sharing_redis_enforce_one_limit() {
    let (Some(a), Some(b)) = (redis(REDIS_URL).await, redis(REDIS_URL).await) else { return };
    let prefix = unique("rl_test_");
    let one = RateLimiter::new(limits(&prefix, 3), Some(a));
    let two = RateLimiter::new(limits(&prefix, 3), Some(b));
    let key = RateKey::User("u1".into());
    let mut allowed = 0;
    for i in 0..6 {
        let limiter = if i % 2 == 0 { &one } else { &two };
        if limiter.hit("default", &key).await.expect("decision").allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 3, "one limit across both instances");
    let other = RateKey::User("u2".into());
    assert!(two.hit("default", &other).await.expect("decision").allowed);
}

#[tokio::test]
async fn redis_down_fails_open_by_default_and_closed_when_configured() {
    if redis(REDIS_URL).await.is_none() {
        return;
    }
    let (url, task, cut) = proxy().await;
    let cache = redis(&url).await.expect("redis via proxy");
    let prefix = unique("rl_test_");
    let open = RateLimiter::new(limits(&prefix, 1), Some(cache.clone()));
    let closed = RateLimiter::new(RateLimitConfig { fail_open: false, ..limits(&prefix, 1) }, Some(cache));
    let key = RateKey::Ip(Some("192.0.2.1".parse().expect("ip")));
    assert!(open.hit("default", &key).await.expect("decision").allowed);

    task.abort();
    cut.notify_waiters();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..3 {
        assert!(open.hit("default", &key).await.expect("fail open").allowed);
    }
    assert_eq!(open.fail_open_count(), 3, "every request let through unlimited is counted");
    assert!(closed.hit("default", &key).await.is_err(), "fail closed refuses");
}

#[tokio::test]
async fn the_in_memory_limiter_counts_per_key_and_group() {
    let limiter = RateLimiter::in_memory(limits("", 2));
    let key = RateKey::ApiKey("ab".into());
    assert!(limiter.hit("default", &key).await.expect("d").allowed);
    let d = limiter.hit("default", &key).await.expect("d");
    assert!(d.allowed && d.remaining == 0);
    assert!(!limiter.hit("default", &key).await.expect("d").allowed);
    assert!(limiter.hit("auth", &key).await.expect("d").allowed, "groups are separate");
}

proptest! {
    #[test]
    fn header_parsing_never_panics(auth in proptest::collection::vec(any::<u8>(), 0..300), api in proptest::option::of(".{0,80}")) {
        let mut headers = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_bytes(&auth) {
            headers.insert(http::header::AUTHORIZATION, v);
        }
        if let Some(Ok(v)) = api.map(|s| http::HeaderValue::from_str(&s)) {
            headers.insert("x-api-key", v);
        }
        if let Credential::Token(t) = parse_credential(&headers) {
            prop_assert!(!t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()));
        }
    }

    #[test]
    fn well_formed_bearer_headers_yield_the_token(scheme in "(?i)bearer", token in "[A-Za-z0-9._~+/=-]{1,200}", sp in "[ \t]{1,3}") {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, http::HeaderValue::from_str(&format!("{scheme}{sp}{token}")).expect("valid"));
        prop_assert_eq!(parse_credential(&headers), Credential::Token(&token));
    }
}
