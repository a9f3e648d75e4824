//! Redis down behind the middleware: requests pass (fail open), counted and logged. Its own test
//! binary, so no other test has cached the log call site as uninteresting.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use compozy_auth::RateLimiter;
use compozy_telemetry::{Registry, RegistryOptions};

#[tokio::test]
async fn requests_pass_through_the_middleware_while_redis_is_down_and_it_is_logged() {
    if redis(REDIS_URL).await.is_none() {
        return;
    }
    let buf = LogBuf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (url, task, cut) = proxy().await;
    let cache = redis(&url).await.expect("redis via proxy");
    let config = compozy_auth::AuthConfig { rate_limit: limits(&unique("rl_test_"), 100), ..Default::default() };
    let limiter = Arc::new(RateLimiter::new(config.rate_limit.clone(), Some(cache)));
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = Registry::new(RegistryOptions::default());
    let store =
        compozy_store::Store::open(&compozy_store::StoreConfig::default(), dir.path(), &registry).await.expect("store");
    let h = build(config, store, registry, Some(dir), Some(limiter.clone()));
    let (_, key) = h.user(compozy_auth::Role::User).await;
    let auth = bearer(&key);
    let (s, hd, _) = h.call(get_from("/api/v0/things/1", "192.0.2.1", &[("authorization", &auth)])).await;
    assert_eq!((s, hd["ratelimit-remaining"].to_str().expect("ascii")), (http::StatusCode::OK, "99"));

    task.abort();
    cut.notify_waiters();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (s, ..) = h.call(get_from("/api/v0/things/1", "192.0.2.1", &[("authorization", &auth)])).await;
    assert_eq!(s, http::StatusCode::OK, "fail open");
    assert!(limiter.fail_open_count() >= 1);
    let log = buf.text();
    assert!(log.contains("rate-limit backend unavailable") && log.contains("NOT limited"), "{log}");
}
