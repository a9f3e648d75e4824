//! The middleware through HTTP requests: every reason, status and metric.

mod common;

use std::time::Duration;

use axum::body::Body;
use common::*;
use compozy_auth::{AuthConfig, Limit, Role};
use http::StatusCode;

/// The limiter's windows are fixed and epoch-aligned: with minute windows, a test running while
/// the minute turns would see its counts reset half-way. A day-long window holds a whole test.
const WINDOW: Duration = Duration::from_secs(86_400);

fn config() -> AuthConfig {
    AuthConfig::default()
}

#[tokio::test]
async fn each_reason_has_its_status_and_counter() {
    let h = harness(config()).await;
    let (_, key) = h.user(Role::User).await;

    let (s, hd, body) = h.call(get_from("/api/v0/things/1", "198.51.100.1", &[])).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(hd.get("www-authenticate").is_some());
    assert_eq!(hd["content-type"], "application/problem+json");
    assert!(body.contains("invalid or missing credentials"), "{body}");

    let (s, ..) = h.call(get_from("/api/v0/things/1", "198.51.100.1", &[("authorization", "Basic abc")])).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, ..) = h.call(get_from("/api/v0/things/1", "198.51.100.1", &[("authorization", "Bearer a b")])).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let wrong = format!("cpz_{}", "A".repeat(43));
    let (s, _, wrong_body) =
        h.call(get_from("/api/v0/things/1", "198.51.100.2", &[("authorization", &bearer(&wrong))])).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_body, body, "a wrong key and a missing one are answered alike");
    let (s, ..) = h.call(get_from("/api/v0/things/1", "198.51.100.2", &[("authorization", "Bearer nonsense")])).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let (s, _, body) = h.call(get_from("/api/v0/things/1", "198.51.100.3", &[("authorization", &bearer(&key))])).await;
    assert_eq!((s, body.len()), (StatusCode::OK, 36));
    let (s, ..) = h.call(get_from("/api/v0/things/1", "198.51.100.3", &[("x-api-key", &key)])).await;
    assert_eq!(s, StatusCode::OK);

    let (s, _, body) = h.call(get_from("/api/v0/admin/x", "198.51.100.3", &[("authorization", &bearer(&key))])).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(body.contains("insufficient"));

    let (s, ..) = h.call(get_from("/public", "198.51.100.3", &[])).await;
    assert_eq!(s, StatusCode::OK);

    let m = h.metrics();
    assert_eq!(attempts(&m, "failure", "missing_auth", "unknown"), 1.0, "{m}");
    assert_eq!(attempts(&m, "failure", "invalid_format", "unknown"), 2.0);
    assert_eq!(attempts(&m, "failure", "invalid_credentials", "api_key"), 1.0);
    assert_eq!(attempts(&m, "failure", "invalid_credentials", "unknown"), 1.0);
    assert_eq!(attempts(&m, "success", "none", "api_key"), 3.0);
    assert_eq!(sample(&m, "compozy_auth_duration_seconds_count{method=\"api_key\",outcome=\"success\"}"), 3.0);
    assert_eq!(sample(&m, "compozy_auth_token_age_seconds_count{method=\"api_key\"}"), 3.0);
    assert!(!m.contains(&key[4..]), "no key material in metrics");
}

#[tokio::test]
async fn revoked_keys_are_refused_at_once_on_this_instance() {
    let h = harness(config()).await;
    let (_, key) = h.user(Role::User).await;
    let auth = [("authorization", bearer(&key))];
    let hdr: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, _, listing) = h.call(get_from("/api/v0/auth/keys", "192.0.2.1", &hdr)).await;
    assert!(!listing.contains(&key[12..]), "the listing never shows the key");
    let v: serde_json::Value = serde_json::from_str(&listing).expect("json");
    let id = v["data"]["keys"][0]["id"].as_str().expect("key id").to_string();

    let (_, other) = h.user(Role::User).await;
    let other_hdr = [("authorization", bearer(&other))];
    let other_hdr: Vec<(&str, &str)> = other_hdr.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let path = format!("/api/v0/auth/keys/{id}");
    let (s, ..) = h.call(request("DELETE", &path, "192.0.2.1", &other_hdr, Body::empty())).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "only the owner or an admin may revoke");

    let (s, ..) = h.call(request("DELETE", &path, "192.0.2.1", &hdr, Body::empty())).await;
    assert_eq!(s, StatusCode::OK);
    let (s, ..) = h.call(get_from("/api/v0/things/1", "192.0.2.1", &hdr)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "revocation evicts the warm entry");
}

#[tokio::test]
async fn generated_keys_work_and_admins_manage_users() {
    let h = harness(config()).await;
    let (_, admin) = h.user(Role::Admin).await;
    let ah = [("authorization", bearer(&admin)), ("content-type", "application/json".into())];
    let ah: Vec<(&str, &str)> = ah.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let body = Body::from(r#"{"email":"Someone@Example.com","role":"user"}"#);
    let (s, _, created) = h.call(request("POST", "/api/v0/users", "192.0.2.9", &ah, body)).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert!(created.contains("someone@example.com"));
    let body = Body::from(r#"{"email":"SOMEONE@example.com"}"#);
    let (s, ..) = h.call(request("POST", "/api/v0/users", "192.0.2.9", &ah, body)).await;
    assert_eq!(s, StatusCode::CONFLICT, "emails are unique regardless of case");
    let (s, _, list) = h.call(get_from("/api/v0/users", "192.0.2.9", &ah)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&list).expect("json")["data"]["users"].as_array().map(Vec::len),
        Some(2)
    );

    let (s, _, gen_body) = h.call(request("POST", "/api/v0/auth/generate", "192.0.2.9", &ah, Body::from("{}"))).await;
    assert_eq!(s, StatusCode::CREATED, "{gen_body}");
    let v: serde_json::Value = serde_json::from_str(&gen_body).expect("json");
    let new_key = v["data"]["api_key"].as_str().expect("key");
    let (s, ..) = h.call(get_from("/api/v0/things/1", "192.0.2.9", &[("authorization", &bearer(new_key))])).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn failures_from_one_address_are_throttled_but_a_valid_key_is_never_refused() {
    let mut c = config();
    c.rate_limit.auth_failures = Limit { requests: 3, window: WINDOW };
    let h = harness(c).await;
    let (_, key) = h.user(Role::User).await;
    let bad = format!("cpz_{}", "B".repeat(43));
    for _ in 0..3 {
        let (s, ..) = h.call(get_from("/api/v0/things/1", "203.0.113.77", &[("authorization", &bearer(&bad))])).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, hd, body) = h.call(get_from("/api/v0/things/1", "203.0.113.77", &[("authorization", &bearer(&bad))])).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(hd.get("retry-after").is_some());
    for _ in 0..3 {
        let (s, ..) = h.call(get_from("/api/v0/things/1", "203.0.113.77", &[("authorization", &bearer(&key))])).await;
        assert_eq!(s, StatusCode::OK, "the valid key from the locked address passes");
    }
    let (s, ..) = h.call(get_from("/api/v0/things/1", "203.0.113.77", &[])).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "no credential is not a guess: 401, not 429");

    let m = h.metrics();
    assert_eq!(attempts(&m, "failure", "invalid_credentials", "api_key"), 3.0, "{m}");
    assert_eq!(attempts(&m, "failure", "rate_limited", "api_key"), 1.0);
    assert_eq!(attempts(&m, "success", "none", "api_key"), 3.0);
    assert_eq!(sample(&m, "compozy_auth_rate_limit_hits_total{ip_address=\"203.0.113.0\",user_id=\"\"}"), 1.0);
    assert_eq!(sample(&m, "compozy_rate_limit_blocks_total{path=\"/api/v0/things/{id}\",key_type=\"ip\"}"), 1.0);
    assert!(!m.contains("203.0.113.77"));
}

#[tokio::test]
async fn expired_tokens_do_not_lock_out_a_valid_one() {
    let mut c = config();
    c.rate_limit.auth_failures = Limit { requests: 2, window: WINDOW };
    c.jwt.issuers = vec![compozy_auth::IssuerConfig {
        issuer: "https://hs.example".into(),
        audiences: vec!["compozy".into()],
        algorithm: compozy_auth::JwtAlgorithm::HS256,
        secret: Some(compozy_core::Secret::new(HS_SECRET)),
        public_key_pem: None,
        jwks_file: None,
        jwks_url: None,
        jwks_ca_file: None,
        role_claim: "role".into(),
    }];
    let h = harness(c).await;
    let token = |exp: i64| {
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let claims =
            serde_json::json!({"iss": "https://hs.example", "aud": "compozy", "sub": "alice", "exp": now + exp});
        let key = jsonwebtoken::EncodingKey::from_secret(HS_SECRET.as_bytes());
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("sign")
    };
    let expired = bearer(&token(-3600));
    let statuses: Vec<StatusCode> = futures_statuses(&h, &expired, 4).await;
    assert_eq!(
        statuses,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    assert_eq!(futures_statuses(&h, &bearer(&token(600)), 1).await, [StatusCode::OK]);
}

async fn futures_statuses(h: &Harness, auth: &str, n: usize) -> Vec<StatusCode> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(h.call(get_from("/api/v0/things/1", "203.0.113.5", &[("authorization", auth)])).await.0);
    }
    out
}

#[tokio::test]
async fn every_key_of_a_user_draws_on_one_budget() {
    let mut c = config();
    // Three mints (same group here) and four uses fill it.
    c.rate_limit.default = Limit { requests: 7, window: WINDOW };
    let h = harness(c).await;
    let (_, first) = h.user(Role::User).await;
    let mut keys = vec![first];
    for _ in 0..3 {
        let minted = mint(&h, keys.last().expect("a key")).await;
        keys.push(minted.expect("minted"));
    }
    let statuses: Vec<StatusCode> = {
        let mut v = Vec::new();
        for k in &keys {
            v.push(h.call(get_from("/api/v0/things/1", "192.0.2.40", &[("authorization", &bearer(k))])).await.0);
        }
        v.push(h.call(get_from("/api/v0/things/1", "192.0.2.40", &[("authorization", &bearer(&keys[0]))])).await.0);
        v
    };
    assert_eq!(statuses[..4], [StatusCode::OK; 4]);
    assert_eq!(statuses[4], StatusCode::TOO_MANY_REQUESTS, "a fresh key brings no fresh budget");
}

#[tokio::test]
async fn a_user_holds_at_most_max_keys_per_user_active_keys() {
    let mut c = config();
    c.max_keys_per_user = 3;
    let h = harness(c).await;
    let (_, key) = h.user(Role::User).await;
    let second = mint(&h, &key).await.expect("second key");
    mint(&h, &second).await.expect("third key, minted by a minted key");
    let (s, hd, body) = mint_raw(&h, &key).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(hd["content-type"], "application/problem+json");
    assert!(body.contains("too-many-keys") && body.contains("auth.max_keys_per_user"), "{body}");
    // Revoking one frees a place.
    let (_, _, listing) =
        h.call(get_from("/api/v0/auth/keys", "192.0.2.41", &[("authorization", &bearer(&key))])).await;
    let v: serde_json::Value = serde_json::from_str(&listing).expect("json");
    let id = v["data"]["keys"][2]["id"].as_str().expect("key id").to_string();
    let (s, ..) = h
        .call(request(
            "DELETE",
            &format!("/api/v0/auth/keys/{id}"),
            "192.0.2.41",
            &[("authorization", &bearer(&key))],
            Body::empty(),
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(mint(&h, &key).await.is_some(), "room again after a revocation");
}

async fn mint_raw(h: &Harness, key: &str) -> (StatusCode, http::HeaderMap, String) {
    let hdr = [("authorization", bearer(key)), ("content-type", "application/json".into())];
    let hdr: Vec<(&str, &str)> = hdr.iter().map(|(k, v)| (*k, v.as_str())).collect();
    h.call(request("POST", "/api/v0/auth/generate", "192.0.2.41", &hdr, Body::from("{}"))).await
}

/// A key minted with `key`, if the engine gave one.
async fn mint(h: &Harness, key: &str) -> Option<String> {
    let (s, _, body) = mint_raw(h, key).await;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    (s == StatusCode::CREATED).then(|| v["data"]["api_key"].as_str().map(String::from))?
}

#[tokio::test]
async fn anonymous_requests_do_not_count_as_guesses() {
    let mut c = config();
    c.rate_limit.auth_failures = Limit { requests: 1, window: WINDOW };
    let h = harness(c).await;
    for _ in 0..3 {
        let (s, ..) = h.call(get_from("/api/v0/things/1", "192.0.2.77", &[])).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn the_group_limit_answers_429_with_headers() {
    let mut c = config();
    c.rate_limit.default = Limit { requests: 2, window: WINDOW };
    let h = harness(c).await;
    let (user, key) = h.user(Role::User).await;
    let hdr = [("authorization", bearer(&key))];
    let hdr: Vec<(&str, &str)> = hdr.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (s, hd, _) = h.call(get_from("/api/v0/things/1", "192.0.2.5", &hdr)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(hd["ratelimit-limit"], "2");
    assert_eq!(hd["ratelimit-remaining"], "1");
    h.call(get_from("/api/v0/things/2", "192.0.2.5", &hdr)).await;
    let (s, hd, body) = h.call(get_from("/api/v0/things/3", "192.0.2.5", &hdr)).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(hd["content-type"], "application/problem+json");
    assert_eq!(hd["ratelimit-remaining"], "0");
    assert!(hd["retry-after"].to_str().expect("ascii").parse::<u64>().expect("secs") >= 1);
    assert!(hd.get("ratelimit-reset").is_some());
    assert!(body.contains("too many requests"));
    let m = h.metrics();
    assert_eq!(attempts(&m, "failure", "rate_limited", "api_key"), 1.0, "{m}");
    assert_eq!(
        sample(&m, &format!("compozy_auth_rate_limit_hits_total{{ip_address=\"192.0.2.0\",user_id=\"{user}\"}}")),
        1.0
    );
    assert_eq!(sample(&m, "compozy_rate_limit_blocks_total{path=\"/api/v0/things/{id}\",key_type=\"user\"}"), 1.0);
}

#[tokio::test]
async fn disabled_auth_lets_everything_through_and_records_nothing() {
    let mut c = config();
    c.enabled = false;
    let h = harness(c).await;
    // The middleware lets the request through; the handler itself wants a user.
    let (s, ..) = h.call(get_from("/api/v0/auth/keys", "192.0.2.5", &[])).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let m = h.metrics();
    let recorded: f64 = m
        .lines()
        .filter(|l| l.starts_with("compozy_auth_attempts_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(recorded, 0.0, "nothing recorded: {m}");
}

#[tokio::test]
async fn a_broken_store_is_reason_unknown_and_503() {
    let h = harness(config()).await;
    h.auth.store().close().await;
    let key = format!("cpz_{}", "C".repeat(43));
    let (s, hd, _) = h.call(get_from("/api/v0/things/1", "192.0.2.5", &[("authorization", &bearer(&key))])).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(hd.get("retry-after").is_some());
    assert_eq!(attempts(&h.metrics(), "failure", "unknown", "api_key"), 1.0);
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let mut c = config();
    c.rate_limit.auth_failures = Limit { requests: 1, window: WINDOW };
    c.trusted_proxies = vec!["10.0.0.1".parse().expect("ip")];
    let h = harness(c).await;
    // Through the proxy, client 198.51.100.9 fails once, then is blocked ...
    let bad = bearer(&format!("cpz_{}", "D".repeat(43)));
    let xff = [("x-forwarded-for", "6.6.6.6, 198.51.100.9"), ("authorization", bad.as_str())];
    h.call(get_from("/api/v0/things/1", "10.0.0.1", &xff)).await;
    let (s, ..) = h.call(get_from("/api/v0/things/1", "10.0.0.1", &xff)).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    // ... while a spoofed header from an untrusted peer changes nothing for that client.
    let (s, ..) = h
        .call(get_from(
            "/api/v0/things/1",
            "10.0.0.1",
            &[("x-forwarded-for", "198.51.100.10"), ("authorization", bad.as_str())],
        ))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let m = h.metrics();
    assert_eq!(sample(&m, "compozy_auth_rate_limit_hits_total{ip_address=\"198.51.100.0\",user_id=\"\"}"), 1.0, "{m}");
}

#[tokio::test]
async fn fail_closed_refuses_with_503_and_applies_the_failure_guard() {
    let config = compozy_auth::RateLimitConfig { fail_open: false, ..limits(&unique("rl_test_"), 100) };
    let Some((h, cut, task)) = behind_proxy(config).await else { return };
    let (_, key) = h.user(compozy_auth::Role::User).await;
    let auth = bearer(&key);
    task.abort();
    cut.notify_waiters();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (s, hd, _) = h.call(get_from("/api/v0/things/1", "192.0.2.1", &[("authorization", &auth)])).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "the group limit cannot be checked");
    assert!(hd.contains_key("retry-after"));
    let (s, ..) = h.call(get_from("/api/v0/things/1", "192.0.2.1", &[("authorization", "Bearer wrong")])).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "the failure guard cannot count: refused, not skipped");
    assert_eq!((unavailable(&h, "allowed"), unavailable(&h, "refused")), (0.0, 2.0));
}
