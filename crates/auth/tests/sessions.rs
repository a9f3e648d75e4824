//! Console sessions on both backends: a fresh id per sign-in, only its hash stored, and a
//! session ends at sign-out, at expiry, or with its key; a demotion applies to open sessions.

mod common;

use std::time::Duration;

use common::*;
use compozy_auth::sessions::OpenError;
use compozy_auth::{AuthConfig, AuthUser, Method, Principal, Role, Sessions, db};
use compozy_testkit::postgres::TestDb;

async fn lifecycle(h: Harness) {
    let (user_id, key) = h.user(Role::Admin).await;
    let user = h.auth.authenticate(&key).await.expect("key");
    let sessions = Sessions::new(h.auth.clone(), Duration::from_secs(60));

    // Two sign-ins, two sessions: ids are never reused, and tokens are bound to their session.
    let a = sessions.open(&user).await.expect("open");
    let b = sessions.open(&user).await.expect("open");
    assert_ne!(a.cookie, b.cookie);
    assert!(!a.cookie.contains(&key) && a.cookie.len() == 43);
    let found = sessions.find(&a.cookie).await.expect("find").expect("live");
    assert_eq!((found.id.as_str(), found.role, found.method), (user_id.as_str(), Role::Admin, Method::Session));
    assert_eq!(found.key_id, user.key_id);
    let token = sessions.csrf_token(&a.cookie);
    assert!(sessions.csrf_matches(&a.cookie, &token));
    assert!(!sessions.csrf_matches(&b.cookie, &token), "a token only works with its own session");
    assert!(!sessions.csrf_matches(&a.cookie, ""));

    // Unknown or malformed ids find nothing (and cost no error).
    assert!(sessions.find("nope").await.expect("find").is_none());
    assert!(sessions.find(&"A".repeat(43)).await.expect("find").is_none());

    // Sign-out: revoked in the store.
    assert!(sessions.revoke(&a.cookie).await.expect("revoke"));
    assert!(sessions.find(&a.cookie).await.expect("find").is_none());
    assert!(!sessions.revoke(&a.cookie).await.expect("revoke"), "already revoked");

    // A demotion applies to the open session at its next request.
    db::update_user(h.auth.store(), &user_id, None, Some(Role::User)).await.expect("demote");
    let demoted = sessions.find(&b.cookie).await.expect("find").expect("live");
    assert_eq!(demoted.role, Role::User);

    // Expiry.
    let brief = Sessions::new(h.auth.clone(), Duration::from_millis(1));
    let c = brief.open(&user).await.expect("open");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(brief.find(&c.cookie).await.expect("find").is_none(), "expired");

    // Revoking the key ends every session opened with it.
    db::revoke_key(h.auth.store(), user.key_id.as_deref().expect("key id")).await.expect("revoke key");
    assert!(sessions.find(&b.cookie).await.expect("find").is_none());

    // Only a key opens a session (a JWT principal's token has no key to hang from).
    let jwt = AuthUser {
        id: "jwt".into(),
        principal: Principal::Jwt { issuer: "i".into(), subject: "s".into() },
        role: Role::Admin,
        method: Method::Jwt,
        key_id: None,
    };
    assert!(matches!(sessions.open(&jwt).await, Err(OpenError::NotAKey)));
}

#[tokio::test]
async fn sessions_on_sqlite() {
    lifecycle(harness(AuthConfig::default()).await).await;
}

#[tokio::test]
async fn sessions_on_postgres() {
    let Some(db) = TestDb::create().await else { return };
    let (store, registry) = postgres_store(&db).await;
    lifecycle(build(AuthConfig::default(), store, registry, None, None)).await;
}
