//! PostgreSQL-only behaviour: awkward passwords, outages, unreachable servers.

mod common;

use std::time::Duration;

use common::{PG_ADMIN_URL, Proxy, TestDb, no_hang, registry, render, sample, wait_until};
use compozy_core::{Readiness, Secret};
use compozy_store::{Store, StoreConfig, StoreError};
use sqlx::{Connection, PgConnection};

fn config(url: String) -> StoreConfig {
    StoreConfig { url: Some(Secret::new(url)), ..StoreConfig::default() }
}

/// A password with a space, both quotes, `@`, `:`, `/` and `%` works when percent-encoded.
/// The local server trusts every login, so the test checks that the URL parses and that the
/// session runs as the role; with password auth the same URL carries the decoded password.
#[tokio::test]
async fn awkward_passwords_work_percent_encoded() {
    let Some(db) = TestDb::create().await else { return };
    let role = common::unique("compozy_r_");
    let password = r#"p a"s's@w:o/r%d"#;
    let mut admin = PgConnection::connect(PG_ADMIN_URL).await.expect("admin");
    let create = format!("CREATE ROLE {role} LOGIN PASSWORD '{}'", password.replace('\'', "''"));
    sqlx::query(sqlx::AssertSqlSafe(create)).execute(&mut admin).await.expect("create role");
    let encoded = "p%20a%22s%27s%40w%3Ao%2Fr%25d";
    let url = format!("postgres://{role}:{encoded}@127.0.0.1:5432/{}", db.name);
    let store = Store::connect(&config(url.clone()), std::path::Path::new("/unused"), &registry())
        .await
        .expect("connect with an awkward password");
    let mut conn = store.acquire().await.expect("acquire");
    let user: String =
        sqlx::query_scalar("SELECT current_user::text").fetch_one(conn.as_postgres().expect("pg")).await.expect("who");
    assert_eq!(user, role);
    drop(conn);
    store.close().await;

    // The masked form never carries the password, encoded or not.
    let masked = compozy_store::mask_url(&url);
    assert!(!masked.contains(encoded) && !masked.contains(password), "{masked}");
    // And sqlx decodes it to the exact password.
    let opts: sqlx::postgres::PgConnectOptions = url.parse().expect("parse");
    assert_eq!(opts.get_username(), role);
    let shown = format!("{opts:?}");
    assert!(shown.contains(&format!("password: {:?}", Some(password))), "decoded password in {shown}");

    db.drop_db().await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP ROLE {role}"))).execute(&mut admin).await.expect("drop role");
}

#[tokio::test]
async fn outage_fails_fast_then_recovers() {
    let Some(db) = TestDb::create().await else { return };
    let proxy = Proxy::start(common::PG_ADDR).await;
    let mut cfg = config(db.url_via(&proxy.addr()));
    cfg.acquire_timeout = Duration::from_millis(500);
    cfg.query_timeout = Duration::from_secs(2);
    let store = Store::open(&cfg, std::path::Path::new("/unused"), &registry()).await.expect("open");
    let readiness = Readiness::default();
    let _probe = store.spawn_health_probe(&readiness, Duration::from_millis(100));
    store.register_instance("i", "server").await.expect("works through the proxy");
    wait_until("ready", Duration::from_secs(10), || readiness.is_ready()).await;

    proxy.cut();
    let err = no_hang(Duration::from_secs(10), store.heartbeat("i")).await.expect_err("database cut off");
    assert!(err.is_unavailable(), "expected Unavailable, got {err:?}");
    assert!(err.retry_after().is_some());
    wait_until("not ready", Duration::from_secs(10), || !readiness.is_ready()).await;
    let state = &readiness.states()[0].1;
    assert_eq!((state.ready, state.backend.as_deref()), (false, Some("postgres")));

    proxy.restore();
    wait_until("ready again", Duration::from_secs(20), || readiness.is_ready()).await;
    assert!(no_hang(Duration::from_secs(10), store.heartbeat("i")).await.expect("recovered"));
    drop(store);
    db.drop_db().await;
}

#[tokio::test]
async fn unreachable_at_start_is_unavailable() {
    // Nothing listens on port 1.
    let mut cfg = config("postgres://postgres:hunter2@127.0.0.1:1/x".into());
    cfg.acquire_timeout = Duration::from_millis(300);
    let reg = registry();
    let err = no_hang(Duration::from_secs(10), Store::connect(&cfg, std::path::Path::new("/unused"), &reg))
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(!err.to_string().contains("hunter2"));
    // sqlx retries a refused TCP connect until the acquire timeout: a timeout, not an error.
    let text = render(&reg);
    assert_eq!(sample(&text, "compozy_postgres_connection_timeouts_total"), 1.0, "{text}");
    assert_eq!(sample(&text, "compozy_postgres_connection_errors_total"), 0.0, "{text}");
}

/// A server that refuses the session (here: the database does not exist) fails the acquire at
/// once; it is counted in `connection_errors_total`, which PostgresConnectionErrors pages on.
#[tokio::test]
async fn refused_session_counts_as_a_connection_error() {
    let Some(db) = TestDb::create().await else { return };
    let mut cfg = config(format!("postgres://postgres@{}/{}_missing", common::PG_ADDR, db.name));
    cfg.acquire_timeout = Duration::from_secs(5);
    let reg = registry();
    let started = std::time::Instant::now();
    let err = no_hang(Duration::from_secs(10), Store::connect(&cfg, std::path::Path::new("/unused"), &reg))
        .await
        .expect_err("no such database");
    assert!(started.elapsed() < cfg.acquire_timeout, "failed at once, not after the timeout: {err:?}");
    let text = render(&reg);
    assert_eq!(sample(&text, "compozy_postgres_connection_errors_total"), 1.0, "{text}");
    assert_eq!(sample(&text, "compozy_postgres_connection_timeouts_total"), 0.0, "{text}");
    db.drop_db().await;
}
