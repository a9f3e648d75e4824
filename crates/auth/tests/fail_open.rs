//! Redis down behind the middleware: with `fail_open` requests pass, counted as
//! `compozy_rate_limit_unavailable_total{decision="allowed"}` and logged (fail closed is in
//! `middleware.rs`). Its own test binary with one test, so no other test has cached the log call
//! site as uninteresting.

mod common;

use std::time::Duration;

use common::*;
use http::StatusCode;

#[tokio::test]
async fn requests_pass_through_the_middleware_while_redis_is_down_counted_and_logged() {
    let buf = LogBuf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let Some((h, cut, task)) = behind_proxy(limits(&unique("rl_test_"), 100)).await else { return };
    assert_eq!((unavailable(&h, "allowed"), unavailable(&h, "refused")), (0.0, 0.0), "registered at zero");
    let (_, key) = h.user(compozy_auth::Role::User).await;
    let auth = bearer(&key);
    let (s, hd, _) = h.call(get_from("/api/v0/things/1", "192.0.2.1", &[("authorization", &auth)])).await;
    assert_eq!((s, hd["ratelimit-remaining"].to_str().expect("ascii")), (StatusCode::OK, "99"));

    task.abort();
    cut.notify_waiters();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (s, ..) = h.call(get_from("/api/v0/things/1", "192.0.2.1", &[("authorization", &auth)])).await;
    assert_eq!(s, StatusCode::OK, "fail open");
    let (s, ..) = h.call(get_from("/api/v0/things/1", "192.0.2.1", &[("authorization", "Bearer wrong")])).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a failure is still refused, uncounted");
    assert_eq!((unavailable(&h, "allowed"), unavailable(&h, "refused")), (2.0, 0.0));
    let log = buf.text();
    assert!(log.contains("rate-limit backend unavailable") && log.contains("NOT limited"), "{log}");
    assert!(!log.contains(&key), "no key in the log");
}
