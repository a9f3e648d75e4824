//! Authentication as mounted by `compozy serve`: which routes need what, the statuses, the
//! peer address reaching the rate limiter, and the refusal to expose an unauthenticated engine.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{BIN, Engine, create_user};

#[test]
fn api_routes_need_a_key_and_admin_routes_the_admin_role() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::start(dir.path(), &[], &[]);
    let anonymous = [("x-none", "1")];
    // A well-formed key that was never issued: the admin's with its last character changed.
    let forged =
        format!("Bearer {}{}", &engine.key[..engine.key.len() - 1], if engine.key.ends_with('A') { 'B' } else { 'A' });
    let none = |path: &str| engine.request("GET", path, &[("authorization", forged.as_str())]);

    // Public: health, readiness, metrics.
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(http_anon(&engine, path).0, 200, "{path} is public");
    }
    let (status, head, body) = http_anon(&engine, "/api/v0/resources/workflows");
    assert_eq!(status, 401, "{body}");
    assert!(head.contains("www-authenticate: bearer") && head.contains("application/problem+json"), "{head}");
    let (status, _, body) = engine.request("GET", "/api/v0/instances", &[("authorization", "Basic a b c")]);
    assert_eq!(status, 400, "a malformed header: {body}");
    let (status, _, body) = none("/api/v0/instances");
    assert_eq!(status, 401);
    assert!(!body.contains(&engine.key[..12]), "the answer does not quote the credential: {body}");
    assert_eq!(engine.request("GET", "/api/v0/instances", &anonymous).0, 200, "the admin's key works");

    let user_key = create_user(dir.path(), &[], &[], "user@example.com", "user");
    let bearer = format!("Bearer {user_key}");
    let as_user = |method: &str, path: &str| engine.request(method, path, &[("authorization", bearer.as_str())]).0;
    assert_eq!(as_user("GET", "/api/v0/instances"), 200);
    assert_eq!(as_user("GET", "/api/v0/auth/keys"), 200, "a user lists their own keys");
    assert_eq!(as_user("GET", "/api/v0/users"), 403, "users are managed by admins");
    assert_eq!(as_user("POST", "/api/v0/admin/reload"), 403, "reload is an admin action");
    assert_eq!(engine.request("GET", "/api/v0/users", &[]).0, 200, "the admin lists users");

    let attempts = |labels: &str| engine.metric(&format!("compozy_auth_attempts_total{{{labels}}}")).unwrap_or(0.0);
    assert_eq!(attempts("outcome=\"failure\",reason=\"missing_auth\",method=\"unknown\""), 1.0);
    assert_eq!(attempts("outcome=\"failure\",reason=\"invalid_format\",method=\"unknown\""), 1.0);
    assert_eq!(attempts("outcome=\"failure\",reason=\"invalid_credentials\",method=\"api_key\""), 1.0);
    assert!(attempts("outcome=\"success\",reason=\"none\",method=\"api_key\"") >= 6.0);
}

#[test]
fn guessing_keys_from_one_address_is_throttled_by_its_masked_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [("COMPOZY_AUTH_RATE_LIMIT_AUTH_FAILURES_REQUESTS", "3".to_string())];
    let engine = Engine::start(dir.path(), &[], &env);
    let guess = |i: usize| {
        let bearer = format!("Bearer cpz_guess_{i:032}");
        engine.request("GET", "/api/v0/instances", &[("authorization", bearer.as_str())])
    };
    let statuses: Vec<u16> = (0..5).map(|i| guess(i).0).collect();
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    let (_, head, _) = guess(9);
    assert!(head.contains("retry-after:"), "{head}");
    // The peer address reached the limiter through the serve loop: masked, never "unknown".
    let hits = engine.metric("compozy_auth_rate_limit_hits_total{ip_address=\"127.0.0.0\",user_id=\"\"}");
    assert_eq!(hits, Some(3.0));
    // Credentials are checked first: the locked address still serves a valid key, and a request
    // without any credential is no guess (401, not 429).
    assert_eq!(engine.request("GET", "/api/v0/instances", &[]).0, 200, "the admin's key is never locked out");
    assert_eq!(http_anon(&engine, "/api/v0/instances").0, 401);
    assert_eq!(guess(10).0, 429, "the guesses stay refused");
}

const HS_SECRET: &str = "a-test-secret-of-more-than-32-bytes!!";

/// An engine trusting an HS256 issuer, as an operator would configure one.
fn engine_with_issuer(dir: &std::path::Path, env: &[(&str, String)]) -> Engine {
    std::fs::create_dir_all(dir).expect("dir");
    let yaml = format!(
        "auth:\n  jwt:\n    issuers:\n      - issuer: https://idp.example\n        audiences: [compozy]\n        \
         algorithm: HS256\n        secret: \"{HS_SECRET}\"\n"
    );
    std::fs::write(dir.join("compozy.yaml"), yaml).expect("config");
    Engine::start(dir, &["--config", "compozy.yaml"], env)
}

fn token(sub: &str, role: &str) -> String {
    let exp = jsonwebtoken::get_current_timestamp() + 600;
    let claims =
        serde_json::json!({"iss": "https://idp.example", "aud": "compozy", "sub": sub, "role": role, "exp": exp});
    let key = jsonwebtoken::EncodingKey::from_secret(HS_SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("sign")
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn a_token_whose_subject_is_the_admins_id_gets_nothing_of_the_admin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine_with_issuer(dir.path(), &[]);
    let users = json(&engine.get("/api/v0/users").2);
    let admin_id = users["data"]["users"][0]["id"].as_str().expect("admin id").to_string();
    let admin_key_id =
        json(&engine.get("/api/v0/auth/keys").2)["data"]["keys"][0]["id"].as_str().expect("id").to_string();
    let bearer = format!("Bearer {}", token(&admin_id, "user"));
    let as_token = |method: &str, path: &str| engine.request(method, path, &[("authorization", bearer.as_str())]);

    assert_eq!(as_token("GET", "/api/v0/users").0, 403, "not the admin");
    let (status, _, listing) = as_token("GET", "/api/v0/auth/keys");
    assert_eq!(status, 200);
    assert!(!listing.contains(&admin_key_id), "the admin's keys are not listed: {listing}");
    assert_eq!(as_token("DELETE", &format!("/api/v0/auth/keys/{admin_key_id}")).0, 404, "nor revocable");
    let (status, _, minted) = as_token("POST", "/api/v0/auth/generate");
    assert_eq!(status, 201, "{minted}");
    let minted = json(&minted);
    assert_eq!(minted["data"]["key"]["role"], "user", "the key carries the token's role");
    let key = format!("Bearer {}", minted["data"]["api_key"].as_str().expect("key"));
    assert_eq!(engine.request("GET", "/api/v0/users", &[("authorization", key.as_str())]).0, 403);
    assert_eq!(engine.get("/api/v0/users").0, 200, "the admin's own key is untouched");
}

#[test]
fn minting_stops_at_max_keys_per_user_and_keys_share_their_owners_budget() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [
        ("COMPOZY_AUTH_MAX_KEYS_PER_USER", "3".to_string()),
        ("COMPOZY_AUTH_RATE_LIMIT_GROUPS_AUTH_REQUESTS", "5".to_string()),
    ];
    let engine = Engine::start(dir.path(), &[], &env);
    let mint = |key: &str| {
        let bearer = format!("Bearer {key}");
        let (status, _, body) = engine.request("POST", "/api/v0/auth/generate", &[("authorization", bearer.as_str())]);
        (status, body)
    };
    let (status, body) = mint(&engine.key);
    assert_eq!(status, 201, "{body}");
    let second = json(&body)["data"]["api_key"].as_str().expect("key").to_string();
    assert_eq!(mint(&second).0, 201, "a minted key may mint, within the bound");
    let (status, body) = mint(&second);
    assert_eq!(status, 409, "a fourth active key: {body}");
    assert!(body.contains("too-many-keys"), "{body}");
    // Five requests of the `auth` group per minute for the user, whichever key: the three mints
    // (the refused one too) and two listings fill it; the next is refused for every key.
    let list = |key: &str| engine.request("GET", "/api/v0/auth/keys", &[("authorization", &format!("Bearer {key}"))]).0;
    assert_eq!([list(&second), list(&engine.key)], [200, 200]);
    assert_eq!([list(&second), list(&engine.key)], [429, 429], "a fresh key brings no fresh budget");
}

#[test]
fn auth_off_beyond_loopback_is_refused_unless_forced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let serve = |extra: &[(&str, &str)]| {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .current_dir(dir.path())
            .env("COMPOZY_AUTH_ENABLED", "false")
            .env("COMPOZY_LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.spawn().expect("spawn compozy")
    };
    let out = serve(&[]).wait_with_output().expect("exit");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("auth.allow_insecure"), "{stderr}");

    let mut child = serve(&[("COMPOZY_AUTH_ALLOW_INSECURE", "true")]);
    let lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let listening = lines.map_while(Result::ok).any(|l| l.contains("compozy listening"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(listening, "forced: it serves");
}

fn http_anon(engine: &Engine, path: &str) -> (u16, String, String) {
    common::http(engine.addr, "GET", path, &[]).expect("HTTP exchange")
}
