//! Keys and users on PostgreSQL, and the generated HMAC secret file.

mod common;

use common::*;
use compozy_auth::secret_file::{SECRET_FILE, resolve_hmac_secret};
use compozy_auth::{AuthConfig, Role};
use compozy_core::Secret;
use compozy_telemetry::{Registry, RegistryOptions};
use http::StatusCode;

use compozy_testkit::postgres::TestDb;

#[tokio::test]
async fn key_lifecycle_on_postgres() {
    let Some(db) = TestDb::create().await else { return };
    let (store, registry) = postgres_store(&db).await;
    let h = build(AuthConfig::default(), store.clone(), registry, None, None);
    let (user_id, key) = h.user(Role::User).await;
    let dup = compozy_auth::create_user_with_key(&h.auth, "X@Example.com", Role::User).await;
    assert!(dup.is_ok());
    let again = compozy_auth::create_user_with_key(&h.auth, "x@example.COM", Role::User).await;
    assert!(matches!(again, Err(compozy_auth::AdminError::Exists)), "case-insensitive unique email");

    let auth = [("authorization", bearer(&key))];
    let (s, _, body) = h.call(get_from("/api/v0/things/1", "192.0.2.1", &[(auth[0].0, &auth[0].1)])).await;
    assert_eq!((s, body), (StatusCode::OK, user_id.clone()));

    // The stored row holds the HMAC only, never the key.
    let mut conn = store.acquire().await.expect("conn");
    let pg = conn.as_postgres().expect("postgres");
    let row: (Vec<u8>, String) = sqlx::query_as("SELECT hash, prefix FROM api_keys WHERE user_id = $1")
        .bind(&user_id)
        .fetch_one(pg)
        .await
        .expect("row");
    assert_eq!(row.0.len(), 32);
    assert!(key.starts_with(&row.1) && row.1.len() == 12);
    drop(conn);

    // Revocation by another process (straight in the table) is honoured once the warm entry expires;
    // a fresh authenticator has no warm entry, so it sees it at once.
    let mut conn = store.acquire().await.expect("conn");
    sqlx::query("UPDATE api_keys SET revoked_at = 1 WHERE user_id = $1")
        .bind(&user_id)
        .execute(conn.as_postgres().expect("pg"))
        .await
        .expect("revoke");
    drop(conn);
    let fresh = build(AuthConfig::default(), store, Registry::new(RegistryOptions::default()), None, None);
    let (s, ..) = fresh.call(get_from("/api/v0/things/1", "192.0.2.1", &[(auth[0].0, &auth[0].1)])).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

/// Mints racing on several pool connections: the count and the insert are one statement, but
/// under READ COMMITTED two such statements both see the old count; the advisory lock on the
/// owner is what keeps the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_mints_on_postgres_stop_at_max_keys_per_user() {
    const MAX: usize = 3;
    const RACERS: usize = 40;
    let Some(db) = TestDb::create().await else { return };
    let (store, registry) = postgres_store(&db).await;
    let h = build(AuthConfig { max_keys_per_user: MAX, ..AuthConfig::default() }, store, registry, None, None);
    let (_, key) = h.user(Role::User).await;
    let auth = bearer(&key);
    // The key is warm in the cache first, so every racer goes straight to the insert.
    let (s, ..) = h.call(get_from("/api/v0/things/1", "192.0.2.1", &[("authorization", &auth)])).await;
    assert_eq!(s, StatusCode::OK);
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..RACERS {
        let (app, auth, start) = (h.app.clone(), auth.clone(), start.clone());
        let ip = format!("192.0.2.{}", 100 + i);
        racers.spawn(async move {
            let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
            let req = request("POST", "/api/v0/auth/generate", &ip, &headers, axum::body::Body::from("{}"));
            start.wait().await;
            call(&app, req).await.0
        });
    }
    let mut statuses = Vec::new();
    while let Some(status) = racers.join_next().await {
        statuses.push(status.expect("racer"));
    }
    let minted = statuses.iter().filter(|s| **s == StatusCode::CREATED).count();
    let refused = statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count();
    // The bootstrap key is one of the MAX.
    assert_eq!((minted, refused), (MAX - 1, RACERS - (MAX - 1)), "{statuses:?}");
    let (s, _, listing) = h.call(get_from("/api/v0/auth/keys", "192.0.2.1", &[("authorization", &auth)])).await;
    assert_eq!(s, StatusCode::OK, "{listing}");
    let v: serde_json::Value = serde_json::from_str(&listing).expect("json");
    assert_eq!(v["data"]["keys"].as_array().map(Vec::len), Some(MAX), "{listing}");
}

#[test]
fn the_generated_secret_is_private_and_stable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = resolve_hmac_secret(None, dir.path()).expect("generate");
    let second = resolve_hmac_secret(None, dir.path()).expect("reread");
    assert_eq!(first.expose(), second.expose());
    assert!(first.expose().len() >= 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(SECRET_FILE)).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(resolve_hmac_secret(Some(&Secret::new("short")), dir.path()).is_err());
}
