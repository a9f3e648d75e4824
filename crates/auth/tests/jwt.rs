//! JWT through the middleware: valid, expired, not yet valid, wrong issuer or audience,
//! `alg: none`, HS/RS confusion.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use compozy_auth::{AuthConfig, IssuerConfig, JwtAlgorithm};
use compozy_core::Secret;
use http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

const RSA_PRIVATE: &str = include_str!("keys/rsa_private.pem");
const RSA_PUBLIC: &str = include_str!("keys/rsa_public.pem");
const EC_PRIVATE: &str = include_str!("keys/ec_private.pem");
const EC_PUBLIC: &str = include_str!("keys/ec_public.pem");
const ED_PRIVATE: &str = include_str!("keys/ed_private.pem");
const ED_PUBLIC: &str = include_str!("keys/ed_public.pem");

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

fn issuer(name: &str, algorithm: JwtAlgorithm) -> IssuerConfig {
    IssuerConfig {
        issuer: name.into(),
        audiences: vec!["compozy".into()],
        algorithm,
        secret: (algorithm == JwtAlgorithm::HS256).then(|| Secret::new(HS_SECRET)),
        public_key_pem: match algorithm {
            JwtAlgorithm::RS256 => Some(RSA_PUBLIC.into()),
            JwtAlgorithm::ES256 => Some(EC_PUBLIC.into()),
            JwtAlgorithm::EdDSA => Some(ED_PUBLIC.into()),
            _ => None,
        },
        jwks_file: None,
        jwks_url: None,
        jwks_ca_file: None,
        role_claim: "role".into(),
    }
}

fn config() -> AuthConfig {
    let mut c = AuthConfig::default();
    c.jwt.issuers = vec![
        issuer("https://hs.example", JwtAlgorithm::HS256),
        issuer("https://rs.example", JwtAlgorithm::RS256),
        issuer("https://es.example", JwtAlgorithm::ES256),
        issuer("https://ed.example", JwtAlgorithm::EdDSA),
    ];
    c.jwt.leeway = std::time::Duration::from_secs(5);
    c
}

fn claims(iss: &str) -> serde_json::Value {
    json!({"iss": iss, "aud": "compozy", "sub": "alice", "iat": now() - 120, "exp": now() + 600})
}

fn hs(claims: &serde_json::Value) -> String {
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(HS_SECRET.as_bytes())).expect("sign")
}

fn rs(claims: &serde_json::Value) -> String {
    let key = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).expect("rsa key");
    encode(&Header::new(Algorithm::RS256), claims, &key).expect("sign")
}

fn ed(claims: &serde_json::Value) -> String {
    let key = EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).expect("ed key");
    encode(&Header::new(Algorithm::EdDSA), claims, &key).expect("sign")
}

fn es(claims: &serde_json::Value) -> String {
    let key = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).expect("ec key");
    encode(&Header::new(Algorithm::ES256), claims, &key).expect("sign")
}

async fn status(h: &Harness, token: &str) -> StatusCode {
    h.call(get_from("/api/v0/things/1", "192.0.2.1", &[("authorization", &bearer(token))])).await.0
}

#[tokio::test]
async fn valid_tokens_of_each_issuer_pass_and_map_sub_and_role() {
    let h = harness(config()).await;
    let tokens = [
        hs(&claims("https://hs.example")),
        rs(&claims("https://rs.example")),
        es(&claims("https://es.example")),
        ed(&claims("https://ed.example")),
    ];
    for token in tokens {
        let (s, _, body) =
            h.call(get_from("/api/v0/things/1", "192.0.2.1", &[("authorization", &bearer(&token))])).await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, "alice"));
    }
    let mut admin = claims("https://rs.example");
    admin["role"] = json!("admin");
    let (s, ..) = h.call(get_from("/api/v0/admin/x", "192.0.2.1", &[("authorization", &bearer(&rs(&admin)))])).await;
    assert_eq!(s, StatusCode::OK);
    let (s, ..) = h
        .call(get_from(
            "/api/v0/admin/x",
            "192.0.2.1",
            &[("authorization", &bearer(&rs(&claims("https://rs.example"))))],
        ))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let m = h.metrics();
    assert_eq!(attempts(&m, "success", "none", "jwt"), 6.0, "{m}");
    assert_eq!(sample(&m, "compozy_auth_token_age_seconds_bucket{method=\"jwt\",le=\"60\"}"), 0.0);
    assert_eq!(sample(&m, "compozy_auth_token_age_seconds_bucket{method=\"jwt\",le=\"300\"}"), 6.0, "{m}");
}

#[tokio::test]
async fn bad_tokens_are_refused_with_their_reason() {
    let h = harness(config()).await;
    let iss = "https://rs.example";
    let mut expired = claims(iss);
    expired["exp"] = json!(now() - 60);
    assert_eq!(status(&h, &rs(&expired)).await, StatusCode::UNAUTHORIZED);
    let mut early = claims(iss);
    early["nbf"] = json!(now() + 600);
    assert_eq!(status(&h, &rs(&early)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(&h, &rs(&claims("https://evil.example"))).await, StatusCode::UNAUTHORIZED);
    let mut aud = claims(iss);
    aud["aud"] = json!("someone-else");
    assert_eq!(status(&h, &rs(&aud)).await, StatusCode::UNAUTHORIZED);
    // Signed by the RS key but claiming the HS issuer: the HS issuer's pinned algorithm refuses it.
    assert_eq!(status(&h, &rs(&claims("https://hs.example"))).await, StatusCode::UNAUTHORIZED);

    let m = h.metrics();
    assert_eq!(attempts(&m, "failure", "expired_token", "jwt"), 1.0, "{m}");
    assert_eq!(attempts(&m, "failure", "invalid_credentials", "jwt"), 4.0);
}

#[tokio::test]
async fn alg_none_is_refused() {
    let h = harness(config()).await;
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims("https://hs.example").to_string());
    for token in [format!("{header}.{body}."), format!("{header}.{body}.c2ln")] {
        assert_eq!(status(&h, &token).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(attempts(&h.metrics(), "failure", "invalid_credentials", "jwt"), 2.0);
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let h = harness(config()).await;
    // The classic confusion: HMAC keyed with the public PEM, presented to the RS256 issuer.
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &claims("https://rs.example"),
        &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
    )
    .expect("sign");
    assert_eq!(status(&h, &forged).await, StatusCode::UNAUTHORIZED);
    assert_eq!(attempts(&h.metrics(), "failure", "invalid_credentials", "jwt"), 1.0);
}

#[test]
fn misconfigured_issuers_are_rejected_at_start_up() {
    let mut short = issuer("x", JwtAlgorithm::HS256);
    short.secret = Some(Secret::new("short"));
    let mut no_pem = issuer("y", JwtAlgorithm::RS256);
    no_pem.public_key_pem = None;
    for bad in [short, no_pem] {
        let c = compozy_auth::JwtConfig { issuers: vec![bad], ..Default::default() };
        assert!(compozy_auth::jwt::JwtVerifier::new(&c).is_err());
    }
}

/// The Ed25519 public key of `keys/ed_public.pem` as a JWK `x` (the last 32 bytes of the SPKI).
fn ed_public_x() -> String {
    let b64: String = ED_PUBLIC.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64).expect("pem body");
    URL_SAFE_NO_PAD.encode(&der[der.len() - 32..])
}

fn ed_with_kid(claims: &serde_json::Value, kid: Option<&str>) -> String {
    let key = EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).expect("ed key");
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, &key).expect("sign")
}

#[tokio::test]
async fn a_jwks_file_picks_the_key_by_kid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jwks.json");
    let jwk = |kid: &str| json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": kid, "x": ed_public_x()});
    std::fs::write(&path, json!({"keys": [jwk("2026-10"), jwk("2026-11")]}).to_string()).expect("write jwks");
    let mut jwks_issuer = issuer("https://jwks.example", JwtAlgorithm::EdDSA);
    jwks_issuer.public_key_pem = None;
    jwks_issuer.jwks_file = Some(path);
    let mut c = config();
    c.jwt.issuers = vec![jwks_issuer];
    let h = harness(c).await;
    let claims = claims("https://jwks.example");
    assert_eq!(status(&h, &ed_with_kid(&claims, Some("2026-11"))).await, StatusCode::OK);
    assert_eq!(status(&h, &ed_with_kid(&claims, Some("2026-10"))).await, StatusCode::OK, "the previous key, rotating");
    assert_eq!(status(&h, &ed_with_kid(&claims, Some("retired"))).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(&h, &ed_with_kid(&claims, None)).await, StatusCode::UNAUTHORIZED, "several keys: kid needed");
    assert_eq!(attempts(&h.metrics(), "failure", "invalid_credentials", "jwt"), 2.0);
}

#[test]
fn a_jwks_key_outside_the_pinned_algorithm_is_a_start_up_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        ("symmetric key", json!({"kty": "oct", "k": URL_SAFE_NO_PAD.encode(HS_SECRET), "kid": "a"})),
        ("other alg named", json!({"kty": "OKP", "crv": "Ed25519", "alg": "ES256", "kid": "b", "x": ed_public_x()})),
    ];
    for (what, key) in cases {
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, json!({"keys": [key]}).to_string()).expect("write jwks");
        let mut i = issuer("z", JwtAlgorithm::EdDSA);
        i.public_key_pem = None;
        i.jwks_file = Some(path);
        let c = compozy_auth::JwtConfig { issuers: vec![i], ..Default::default() };
        assert!(compozy_auth::jwt::JwtVerifier::new(&c).is_err(), "{what}");
    }
}

/// `(status, body)` of a request with `token`.
async fn call_as(h: &Harness, method: &str, path: &str, token: &str) -> (StatusCode, String) {
    let hdr = [("authorization", bearer(token)), ("content-type", "application/json".into())];
    let hdr: Vec<(&str, &str)> = hdr.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let body = if method == "POST" { axum::body::Body::from("{}") } else { axum::body::Body::empty() };
    let (s, _, body) = h.call(request(method, path, "192.0.2.60", &hdr, body)).await;
    (s, body)
}

#[tokio::test]
async fn a_token_whose_subject_is_an_admins_id_is_not_that_admin() {
    let h = harness(config()).await;
    let (admin_id, admin_key) = h.user(compozy_auth::Role::Admin).await;
    let (_, listing) = call_as(&h, "GET", "/api/v0/auth/keys", &admin_key).await;
    let admin_key_id = serde_json::from_str::<serde_json::Value>(&listing).expect("json")["data"]["keys"][0]["id"]
        .as_str()
        .expect("key id")
        .to_string();
    let mut c = claims("https://rs.example");
    c["sub"] = json!(admin_id);
    c["role"] = json!("user");
    let token = rs(&c);

    assert_eq!(call_as(&h, "GET", "/api/v0/admin/x", &token).await.0, StatusCode::FORBIDDEN, "no admin role");
    let (s, listing) = call_as(&h, "GET", "/api/v0/auth/keys", &token).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!listing.contains(&admin_key_id), "the admin's keys are not the token's: {listing}");
    let revoke = format!("/api/v0/auth/keys/{admin_key_id}");
    assert_eq!(call_as(&h, "DELETE", &revoke, &token).await.0, StatusCode::NOT_FOUND, "nor can it revoke them");
    assert_eq!(
        call_as(&h, "GET", "/api/v0/admin/x", &admin_key).await.0,
        StatusCode::OK,
        "the admin's key still works"
    );

    // A key minted by the token is bound to (issuer, subject) and carries the token's role.
    let (s, body) = call_as(&h, "POST", "/api/v0/auth/generate", &token).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let minted = v["data"]["api_key"].as_str().expect("key").to_string();
    assert_eq!(v["data"]["key"]["user_id"], json!(null), "{body}");
    assert_eq!(
        (v["data"]["key"]["issuer"].as_str(), v["data"]["key"]["role"].as_str()),
        (Some("https://rs.example"), Some("user"))
    );
    assert_eq!(
        call_as(&h, "GET", "/api/v0/admin/x", &minted).await.0,
        StatusCode::FORBIDDEN,
        "the key is no admin either"
    );
    assert_eq!(call_as(&h, "DELETE", &revoke, &minted).await.0, StatusCode::NOT_FOUND);
    let (_, by_key) = call_as(&h, "GET", "/api/v0/auth/keys", &minted).await;
    let (_, by_token) = call_as(&h, "GET", "/api/v0/auth/keys", &token).await;
    // The same keys either way (their `last_used_at` is written in the background, so the bodies
    // may differ in it).
    let ids = |listing: &str| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(listing).expect("json");
        let keys = v["data"]["keys"].as_array().expect("keys").iter();
        keys.map(|k| k["id"].as_str().expect("id").to_string()).collect()
    };
    assert_eq!(ids(&by_key), ids(&by_token), "the token and its key are one principal");
    assert_eq!(ids(&by_key).len(), 1, "{by_key}");
    assert!(!by_key.contains(&admin_key_id));
    assert_eq!(call_as(&h, "GET", "/api/v0/auth/keys", &admin_key).await.1.matches("\"prefix\"").count(), 1);
}

#[tokio::test]
async fn a_key_minted_by_an_admin_token_carries_admin_and_no_more_than_the_token() {
    let h = harness(config()).await;
    let mut c = claims("https://rs.example");
    c["role"] = json!("admin");
    let (s, body) = call_as(&h, "POST", "/api/v0/auth/generate", &rs(&c)).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let minted = v["data"]["api_key"].as_str().expect("key").to_string();
    assert_eq!(call_as(&h, "GET", "/api/v0/admin/x", &minted).await.0, StatusCode::OK);
    // A key minted with that key by the same principal keeps the role; a user token's never gains it.
    let (_, body) = call_as(&h, "POST", "/api/v0/auth/generate", &minted).await;
    let again: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(again["data"]["key"]["role"], json!("admin"));
    let (_, body) = call_as(&h, "POST", "/api/v0/auth/generate", &rs(&claims("https://rs.example"))).await;
    let user: serde_json::Value = serde_json::from_str(&body).expect("json");
    let user_key = user["data"]["api_key"].as_str().expect("key").to_string();
    assert_eq!(call_as(&h, "GET", "/api/v0/admin/x", &user_key).await.0, StatusCode::FORBIDDEN);
}
