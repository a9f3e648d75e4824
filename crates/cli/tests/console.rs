//! The operator console through the binary, without a browser: sign-in through the API's
//! failure guard and metrics, the session cookie's flags, CSRF and origin checks on every action,
//! roles, escaping of what users send, the Content-Security-Policy, sign-out revoking the
//! session, and the console turned off. (`console_browser.rs` drives a real browser.)

mod common;

use common::console::{Session, csrf_in, run_status, sign_in, start, start_run};
use common::{Engine, http};

fn attempts(engine: &Engine, labels: &str) -> f64 {
    engine.metric(&format!("compozy_auth_attempts_total{{{labels}}}")).unwrap_or(0.0)
}

#[test]
fn sign_in_sessions_csrf_roles_and_escaping() {
    let dir = tempfile::tempdir().expect("dir");
    let env = [("COMPOZY_AUTH_RATE_LIMIT_AUTH_FAILURES_REQUESTS", "3".to_string())];
    let (engine, user_key) = start(dir.path(), &env);
    let addr = engine.addr;

    // Pages need a session; the charts' JSON answers 401 instead of redirecting.
    let (status, head, _) = http(addr, "GET", "/console", &[]).expect("exchange");
    assert_eq!(status, 303);
    assert!(head.contains("location: /console/sign-in"), "{head}");
    let (status, _, _) = http(addr, "GET", "/console/series.json", &[]).expect("exchange");
    assert_eq!(status, 401);

    // The sign-in page: strict CSP, no inline script, assets from this origin only.
    let (status, head, page) = http(addr, "GET", "/console/sign-in", &[]).expect("exchange");
    assert_eq!(status, 200);
    let csp = head.lines().find_map(|l| l.strip_prefix("content-security-policy: ")).expect("CSP").to_string();
    for directive in ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(page.split("<script").skip(1).all(|s| s.starts_with(" src=\"/console/")), "inline script: {page}");
    assert!(!page.contains("http://") && !page.contains("https://"), "no asset from elsewhere: {page}");
    let (status, head, js) = http(addr, "GET", "/console/static/console.js?v=1", &[]).expect("exchange");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/javascript"), "{head}");
    assert!(js.contains("series.json"));

    // A wrong key: 401, counted as the API counts it.
    let before = attempts(&engine, r#"outcome="failure",reason="invalid_credentials",method="api_key""#);
    let wrong = format!("cpz_{}", "A".repeat(43));
    let (status, head, _) = sign_in(addr, &wrong, &[]);
    assert_eq!(status, 401);
    assert!(!head.contains("set-cookie"), "{head}");
    let after = attempts(&engine, r#"outcome="failure",reason="invalid_credentials",method="api_key""#);
    assert_eq!(after, before + 1.0);

    // A sign-in posted from another site is refused before the key is looked at.
    let (status, _, _) = sign_in(addr, &engine.key, &[("origin", "http://evil.example")]);
    assert_eq!(status, 403);

    // The admin signs in: a fresh cookie with its flags, straight to the overview (no `next`).
    let (status, head, _) = sign_in(addr, &engine.key, &[]);
    assert_eq!(status, 303);
    assert!(head.lines().any(|l| l == "location: /console"), "{head}");
    let cookie = head.lines().find_map(|l| l.strip_prefix("set-cookie: ")).expect("cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age=28800"] {
        assert!(cookie.to_ascii_lowercase().contains(&flag.to_ascii_lowercase()), "{cookie}");
    }
    assert!(!cookie.to_ascii_lowercase().contains("secure"), "plain HTTP, no proxy: no Secure flag: {cookie}");
    assert!(!cookie.contains(&engine.key), "the key is never the cookie");
    let admin = Session::sign_in(addr, &engine.key);
    let sessions_before = attempts(&engine, r#"outcome="success",reason="none",method="session""#);
    let (status, _, overview) = admin.get("/console");
    assert_eq!(status, 200, "{overview}");
    assert!(overview.contains("Components") && overview.contains("data-series=\"requests_per_s\""), "{overview}");
    assert!(!overview.contains(&engine.key), "no secret rendered");
    assert_eq!(attempts(&engine, r#"outcome="success",reason="none",method="session""#), sessions_before + 1.0);

    // What users send is escaped: a run input and a webhook payload with markup.
    let evil = r#"{"name": "<script>alert(1)</script><img src=x onerror=alert(2)>"}"#;
    let run = start_run(&engine, "quick", evil);
    let (status, _, detail) = admin.get(&format!("/console/runs/{run}"));
    assert_eq!(status, 200);
    assert!(detail.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{detail}");
    assert!(!detail.contains("<script>alert") && !detail.contains("<img src=x"), "{detail}");
    let (status, _, _) =
        common::post(addr, "/api/v0/hooks/deploy", &[("content-type", "application/json")], evil).expect("exchange");
    assert_eq!(status, 202);
    let (_, _, hooks) = admin.get("/console/webhooks");
    assert!(hooks.contains("data-source=\"ci\""), "{hooks}");

    // Actions need the session's CSRF token; without it nothing happens.
    let slow = start_run(&engine, "slow", "{}");
    let cancel = format!("/console/runs/{slow}/cancel");
    let (status, _, _) = admin.post(&cancel, "", &[]);
    assert_eq!(status, 403);
    let (status, _, _) = admin.post(&cancel, "csrf=forged", &[]);
    assert_eq!(status, 403);
    let token = admin.csrf(&format!("/console/runs/{slow}"));
    let (status, _, _) = admin.post(&cancel, &format!("csrf={token}"), &[("origin", "http://evil.example")]);
    assert_eq!(status, 403, "another site's post is refused even with a token");
    assert_ne!(run_status(&engine, &slow), "cancelled");
    let (status, head, _) = admin.post(&cancel, &format!("csrf={token}"), &[]);
    assert_eq!(status, 303, "{head}");
    assert!(head.contains(&format!("location: /console/runs/{slow}?notice=cancelled")), "{head}");
    assert_eq!(run_status(&engine, &slow), "cancelled");

    // A `user` reads every page but is refused every action, even with its own valid token.
    let user = Session::sign_in(addr, &user_key);
    for page in
        ["/console", "/console/runs", "/console/queues", "/console/webhooks", "/console/workers", "/console/project"]
    {
        let (status, _, body) = user.get(page);
        assert_eq!(status, 200, "{page}: {body}");
    }
    let broken = start_run(&engine, "broken", "{}");
    engine.eventually("the broken run fails", |e| run_status(e, &broken) == "failed");
    let user_token = user.csrf(&format!("/console/runs/{broken}"));
    let (status, _, body) = user.post(&format!("/console/runs/{broken}/retry"), &format!("csrf={user_token}"), &[]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Admin role required"), "{body}");
    let (_, _, run) = engine.get(&format!("/api/v0/executions/{broken}"));
    assert!(run.contains(r#""retried_by":null"#), "the user's retry did nothing: {run}");
    // A token is bound to its session: the user's does not work for the admin, and back.
    let (status, _, _) = admin.post(&format!("/console/runs/{broken}/retry"), &format!("csrf={user_token}"), &[]);
    assert_eq!(status, 403);
    let admin_token = admin.csrf("/console/runs");
    let (status, head, _) = admin.post(&format!("/console/runs/{broken}/retry"), &format!("csrf={admin_token}"), &[]);
    assert_eq!(status, 303, "{head}");
    assert!(head.contains("?notice=retried"), "{head}");

    // Sign-out revokes the session in the store: the old cookie no longer opens a page.
    let (status, head, _) = user.post("/console/sign-out", &format!("csrf={user_token}"), &[]);
    assert_eq!(status, 303, "{head}");
    assert!(head.contains("max-age=0"), "{head}");
    let (status, head, _) = user.get("/console/runs");
    assert_eq!(status, 303, "{head}");
    assert!(head.contains("location: /console/sign-in"), "{head}");
    let expired = attempts(&engine, r#"outcome="failure",reason="expired_token",method="session""#);
    assert!(expired >= 1.0, "a revoked session is a refused decision");

    // The failure guard: past `auth.rate_limit.auth_failures` wrong keys the address gets 429.
    let mut last = 0;
    for _ in 0..4 {
        last = sign_in(addr, &wrong, &[]).0;
    }
    assert_eq!(last, 429);
    let limited = attempts(&engine, r#"outcome="failure",reason="rate_limited",method="api_key""#);
    assert!(limited >= 1.0, "{limited}");
    // ... and a valid key is still never refused by it.
    assert_eq!(sign_in(addr, &engine.key, &[]).0, 303);
    assert!(csrf_in("<input name=\"csrf\" value=\"x\">").is_some());
}

#[test]
fn the_console_can_be_moved_and_turned_off() {
    let dir = tempfile::tempdir().expect("dir");
    let env = [("COMPOZY_CONSOLE_PATH", "/ops".to_string())];
    let (engine, _) = start(dir.path(), &env);
    let (status, head, _) = http(engine.addr, "GET", "/ops", &[]).expect("exchange");
    assert_eq!(status, 303);
    assert!(head.contains("location: /ops/sign-in"), "{head}");
    assert_eq!(http(engine.addr, "GET", "/console", &[]).expect("exchange").0, 404);
    drop(engine);

    let dir = tempfile::tempdir().expect("dir");
    let env = [("COMPOZY_CONSOLE_ENABLED", "false".to_string())];
    let (engine, _) = start(dir.path(), &env);
    assert_eq!(http(engine.addr, "GET", "/console", &[]).expect("exchange").0, 404);
    assert_eq!(http(engine.addr, "GET", "/console/sign-in", &[]).expect("exchange").0, 404);
}

#[test]
fn the_cookie_is_secure_when_a_trusted_proxy_says_tls() {
    let dir = tempfile::tempdir().expect("dir");
    let env = [("COMPOZY_AUTH_TRUSTED_PROXIES", "[127.0.0.1]".to_string())];
    let (engine, _) = start(dir.path(), &env);
    let cookie = |extra: &[(&str, &str)]| {
        let (status, head, _) = sign_in(engine.addr, &engine.key, extra);
        assert_eq!(status, 303, "{head}");
        head.lines().find_map(|l| l.strip_prefix("set-cookie: ")).expect("cookie").to_string()
    };
    assert!(cookie(&[("x-forwarded-proto", "https")]).ends_with("; secure"), "behind TLS");
    assert!(!cookie(&[]).contains("secure"), "plain HTTP");
}
