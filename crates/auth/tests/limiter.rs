//! The rate limiter: the in-memory table against a model (window boundaries, capacity), the
//! Redis limiter against the in-memory one (same decisions for the same sequence), Redis shared
//! between instances, fail-open/closed, and the property tests of header parsing.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use compozy_auth::middleware::{Credential, parse_credential};
use compozy_auth::ratelimit::AUTH_FAILURES;
use compozy_auth::{Limit, RateKey, RateLimitConfig, RateLimiter};
use compozy_telemetry::{Registry, RegistryOptions};
use proptest::prelude::*;

/// Three limits of different windows, so their boundaries fall at different times.
fn three_limits(prefix: &str, memory_max_keys: usize) -> RateLimitConfig {
    let mut c = limits(prefix, 3);
    c.groups.insert("auth".into(), Limit { requests: 2, window: Duration::from_secs(7) });
    c.auth_failures = Limit { requests: 4, window: Duration::from_secs(300) };
    c.memory_max_keys = memory_max_keys;
    c
}

const GROUPS: [&str; 3] = ["default", "auth", AUTH_FAILURES];

/// One request: which key, which group, and how many seconds pass before it.
fn step() -> impl Strategy<Value = (u8, usize, u64)> {
    (0u8..6, 0usize..3, prop_oneof![3 => Just(0u64), 2 => 0u64..10, 1 => 0u64..400])
}

fn key(i: u8) -> RateKey {
    if i.is_multiple_of(2) {
        RateKey::User(format!("user-{i}"))
    } else {
        RateKey::Ip(Some(format!("192.0.2.{i}").parse().expect("ip")))
    }
}

/// The decision a limiter with unbounded memory makes: fixed windows `[n·w, (n+1)·w)`.
#[derive(Default)]
struct Model(HashMap<(usize, u8), (u64, u64)>);

impl Model {
    fn hit(&mut self, limiter: &RateLimiter, group: usize, key: u8, now: u64) -> bool {
        let limit = limiter.limit_of(GROUPS[group]);
        let idx = now / limit.window.as_secs();
        let e = self.0.entry((group, key)).or_insert((idx, 0));
        if e.0 != idx {
            *e = (idx, 0);
        }
        e.1 += 1;
        e.1 <= limit.requests
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_memory_limiter_decides_like_fixed_windows(start in 1_700_000_000u64..1_800_000_000, steps in proptest::collection::vec(step(), 1..200)) {
        let rt = runtime();
        let limiter = RateLimiter::in_memory(three_limits("", 1000));
        let mut model = Model::default();
        let mut now = start;
        for (k, g, dt) in steps {
            now += dt;
            let d = rt.block_on(limiter.hit_at(GROUPS[g], &key(k), now)).expect("memory never fails");
            prop_assert_eq!(d.allowed, model.hit(&limiter, g, k, now), "key {} group {} at {}", k, GROUPS[g], now);
            let window = limiter.limit_of(GROUPS[g]).window.as_secs();
            prop_assert_eq!(d.reset, window - now % window);
        }
    }

    #[test]
    fn at_capacity_the_table_stays_bounded_and_only_ever_forgets(start in 1_700_000_000u64..1_800_000_000, cap in 1usize..8, steps in proptest::collection::vec(step(), 1..300)) {
        let rt = runtime();
        let limiter = RateLimiter::in_memory(three_limits("", cap));
        let mut model = Model::default();
        let mut seen = std::collections::HashSet::new();
        let mut now = start;
        for (k, g, dt) in steps {
            now += dt;
            let d = rt.block_on(limiter.hit_at(GROUPS[g], &key(k), now)).expect("decision");
            let model_allows = model.hit(&limiter, g, k, now);
            // Evicting an entry can only forget its count: never a refusal the model would not make.
            prop_assert!(d.allowed || !model_allows, "refused beyond the model: key {} group {}", k, GROUPS[g]);
            // Strangers never share a bucket: a key's first request is always allowed.
            if seen.insert((g, k)) {
                prop_assert!(d.allowed && d.remaining + 1 == d.limit, "a new key starts its own window");
            }
            prop_assert!(limiter.memory_len() <= cap);
        }
    }

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

#[test]
fn the_redis_limiter_decides_like_the_memory_one() {
    let rt = runtime();
    let Some(cache) = rt.block_on(redis(REDIS_URL)) else { return };
    let registry = Registry::new(RegistryOptions::default());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(12));
    let strategy = (1_700_000_000u64..1_800_000_000, proptest::collection::vec(step(), 1..120));
    runner
        .run(&strategy, |(start, steps)| {
            let prefix = unique("rl_test_");
            let in_redis = RateLimiter::new(three_limits(&prefix, 1000), Some(cache.clone()), &registry);
            let in_memory = RateLimiter::in_memory(three_limits(&prefix, 1000));
            let mut now = start;
            for (k, g, dt) in steps {
                now += dt;
                let r = rt.block_on(in_redis.hit_at(GROUPS[g], &key(k), now)).expect("redis decision");
                let m = rt.block_on(in_memory.hit_at(GROUPS[g], &key(k), now)).expect("memory decision");
                prop_assert_eq!(r, m, "key {} group {} at {}", k, GROUPS[g], now);
            }
            Ok(())
        })
        .expect("same decisions");
    assert_eq!(
        sample(
            &compozy_telemetry::render(&registry, compozy_telemetry::Format::Prometheus),
            "compozy_rate_limit_unavailable_total{decision=\"allowed\"}"
        ),
        0.0
    );
}

#[tokio::test]
async fn two_instances_sharing_redis_enforce_one_limit() {
    let (Some(a), Some(b)) = (redis(REDIS_URL).await, redis(REDIS_URL).await) else { return };
    let prefix = unique("rl_test_");
    let registry = Registry::new(RegistryOptions::default());
    let one = RateLimiter::new(limits(&prefix, 3), Some(a), &registry);
    let two = RateLimiter::new(limits(&prefix, 3), Some(b), &registry);
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
    let registry = Registry::new(RegistryOptions::default());
    let open = RateLimiter::new(limits(&prefix, 1), Some(cache.clone()), &registry);
    let closed = RateLimiter::new(RateLimitConfig { fail_open: false, ..limits(&prefix, 1) }, Some(cache), &registry);
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
    let text = compozy_telemetry::render(&registry, compozy_telemetry::Format::Prometheus);
    assert_eq!(sample(&text, "compozy_rate_limit_unavailable_total{decision=\"refused\"}"), 1.0, "{text}");
}

#[tokio::test]
async fn the_in_memory_limiter_counts_per_key_and_group() {
    let limiter = RateLimiter::in_memory(limits("", 2));
    let key = RateKey::User("ab".into());
    assert!(limiter.hit("default", &key).await.expect("d").allowed);
    let d = limiter.hit("default", &key).await.expect("d");
    assert!(d.allowed && d.remaining == 0);
    assert!(!limiter.hit("default", &key).await.expect("d").allowed);
    assert!(limiter.hit("auth", &key).await.expect("d").allowed, "groups are separate");
}
