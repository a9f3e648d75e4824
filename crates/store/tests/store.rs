//! The store suite, run against PostgreSQL (a fresh database per test) and SQLite (a fresh
//! directory per test).

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Fixture, no_hang, registry, render, sample, wait_until};
use compozy_store::{Store, StoreConfig, StoreError, Unavailable};

/// Generates `mod $name { postgres(), sqlite() }`, both running `$body(fixture)`.
macro_rules! both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn postgres() {
                let Some(fx) = Fixture::postgres().await else { return };
                $body(&fx).await;
                fx.cleanup().await;
            }

            #[tokio::test]
            async fn sqlite() {
                let fx = Fixture::sqlite();
                $body(&fx).await;
                fx.cleanup().await;
            }
        }
    };
}

async fn open(fx: &Fixture) -> Store {
    let store = Store::connect(&fx.config(), &fx.data_dir(), &registry()).await.expect("connect");
    store.migrate().await.expect("migrate");
    store
}

fn now_millis() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis()).expect("millis")
}

async fn instances_roundtrip(fx: &Fixture) {
    let store = open(fx).await;
    assert_eq!(store.backend(), fx.backend());
    store.register_instance("b-worker", "worker").await.expect("register b");
    let a = store.register_instance("a-server", "server").await.expect("register a");
    assert_eq!((a.id.as_str(), a.role.as_str()), ("a-server", "server"));
    assert!(store.heartbeat("a-server").await.expect("heartbeat"));
    assert!(!store.heartbeat("missing").await.expect("heartbeat missing"));

    // A process that last reported an hour ago, written through the raw connection guard.
    let hour_ago = now_millis() - 3_600_000;
    let mut conn = store.acquire().await.expect("acquire");
    let insert = "INSERT INTO instances (id, role, started_at, heartbeat_at) VALUES ($1, 'worker', $2, $2)";
    if let Some(c) = conn.as_postgres() {
        sqlx::query(insert).bind("c-old").bind(hour_ago).execute(c).await.expect("insert");
    } else if let Some(c) = conn.as_sqlite() {
        sqlx::query(insert).bind("c-old").bind(hour_ago).execute(c).await.expect("insert");
    }
    drop(conn);

    let live: Vec<String> =
        store.list_instances(Duration::from_secs(60)).await.expect("list").into_iter().map(|i| i.id).collect();
    assert_eq!(live, ["a-server", "b-worker"]);
    let all = store.list_instances(Duration::from_secs(7200)).await.expect("list all");
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].id, "c-old");
    assert_eq!(all[2].heartbeat_at, UNIX_EPOCH + Duration::from_millis(u64::try_from(hour_ago).expect("positive")));

    assert!(store.remove_instance("b-worker").await.expect("remove"));
    assert!(!store.remove_instance("b-worker").await.expect("remove again"));
    assert_eq!(store.list_instances(Duration::from_secs(60)).await.expect("list").len(), 1);
}
both_backends!(instances, instances_roundtrip);

async fn acquires_are_all_recorded(fx: &Fixture) {
    const K: u32 = 3;
    const N: usize = 7;
    let reg = registry();
    let mut config = fx.config();
    config.max_connections = Some(K);
    config.acquire_timeout = Duration::from_millis(300);
    let store = Store::connect(&config, &fx.data_dir(), &reg).await.expect("connect");
    let p = fx.metric_prefix();
    let wait_count = format!("{p}_connection_wait_duration_seconds_count");
    let timeouts = format!("{p}_connection_timeouts_total");
    // connect() pings once: one acquire.
    assert_eq!(sample(&render(&reg), &wait_count), 1.0);

    for _ in 0..N {
        drop(store.acquire().await.expect("acquire"));
    }
    let text = render(&reg);
    assert_eq!(sample(&text, &wait_count), (1 + N) as f64);
    assert_eq!(sample(&text, &format!("{p}_max_open_connections")), f64::from(K));
    assert_eq!(sample(&text, &timeouts), 0.0);
    assert_eq!(sample(&text, &format!("{p}_connection_errors_total")), 0.0, "registered at zero");
    // sqlx returns a dropped connection to the pool from a spawned task: wait for it.
    let in_use = format!("{p}_connections_in_use");
    wait_until("connections released", Duration::from_secs(10), || sample(&render(&reg), &in_use) == 0.0).await;

    // Exhaust the pool: the next acquire times out, typed and counted.
    let mut held = Vec::new();
    for _ in 0..K {
        held.push(store.acquire().await.expect("acquire"));
    }
    let text = render(&reg);
    assert_eq!(sample(&text, &format!("{p}_connections_in_use")), f64::from(K));
    assert_eq!(sample(&text, &format!("{p}_connections_open")), f64::from(K));
    assert_eq!(sample(&text, &format!("{p}_connections_idle")), 0.0);
    let err = no_hang(Duration::from_secs(10), store.acquire()).await.expect_err("pool exhausted");
    assert!(
        matches!(err, StoreError::Unavailable { reason: Unavailable::Timeout, .. }),
        "expected a timeout, got {err:?}"
    );
    assert_eq!(err.retry_after(), Some(compozy_store::RETRY_AFTER));
    let text = render(&reg);
    assert_eq!(sample(&text, &timeouts), 1.0);
    assert_eq!(sample(&text, &format!("{p}_connection_errors_total")), 0.0, "a timeout is not an error");
    assert_eq!(sample(&text, &wait_count), (1 + N + K as usize + 1) as f64);
    // The failed wait lasted at least the acquire timeout, so it is not in the le=0.25 bucket.
    let le = format!("{p}_connection_wait_duration_seconds_bucket{{le=\"0.25\"}}");
    assert_eq!(sample(&text, &le), (1 + N + K as usize) as f64, "{text}");

    drop(held);
    wait_until("connections released", Duration::from_secs(10), || sample(&render(&reg), &in_use) == 0.0).await;
    let text = render(&reg);
    assert_eq!(sample(&text, &format!("{p}_connections_idle")), f64::from(K));
    assert_eq!(sample(&text, &format!("{p}_connections_open")), f64::from(K));
}
both_backends!(acquire_metrics, acquires_are_all_recorded);

/// A database file that cannot be opened fails at once: counted as a connection error, not as
/// a timeout (the twin of PostgreSQL refusing the session).
#[tokio::test]
async fn sqlite_unopenable_file_counts_as_a_connection_error() {
    let fx = Fixture::sqlite();
    // A directory where the database file should be.
    std::fs::create_dir_all(fx.data_dir().join(compozy_store::DB_FILE)).expect("mkdir");
    let reg = registry();
    let mut config = fx.config();
    config.acquire_timeout = Duration::from_secs(5);
    let started = std::time::Instant::now();
    let err = no_hang(Duration::from_secs(10), Store::connect(&config, &fx.data_dir(), &reg))
        .await
        .expect_err("a directory is not a database");
    assert!(started.elapsed() < config.acquire_timeout, "failed at once, not after the timeout: {err:?}");
    let text = render(&reg);
    assert_eq!(sample(&text, "compozy_sqlite_connection_errors_total"), 1.0, "{text}");
    assert_eq!(sample(&text, "compozy_sqlite_connection_timeouts_total"), 0.0, "{text}");
}

/// A database file removed under a running engine is an error on the next connection, not a
/// new empty database that the engine would go on writing to.
#[tokio::test]
async fn sqlite_file_removed_under_the_engine_is_not_recreated() {
    let fx = Fixture::sqlite();
    let reg = registry();
    // Every pooled connection is past its lifetime at the next acquire, which opens a new one.
    let config = StoreConfig { max_lifetime: Some(Duration::from_millis(1)), ..fx.config() };
    let store = Store::open(&config, &fx.data_dir(), &reg).await.expect("open");
    tokio::time::sleep(Duration::from_millis(10)).await;
    let db = fx.data_dir().join(compozy_store::DB_FILE);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let err = no_hang(Duration::from_secs(10), store.acquire()).await.expect_err("no database file");
    assert!(err.to_string().contains("unable to open database file"), "{err}");
    assert!(!db.exists(), "an empty database was created in its place");
    assert_eq!(sample(&render(&reg), "compozy_sqlite_connection_errors_total"), 1.0);
}

async fn migrations_are_idempotent(fx: &Fixture) {
    let store = open(fx).await;
    store.migrate().await.expect("second migrate");
    let reopened = Store::open(&fx.config(), &fx.data_dir(), &registry()).await.expect("open migrates again");
    reopened.migrate().await.expect("third migrate");
    let mut conn = store.acquire().await.expect("acquire");
    let sql = "SELECT COUNT(*) FROM _sqlx_migrations";
    let applied: i64 = if let Some(c) = conn.as_postgres() {
        sqlx::query_scalar(sql).fetch_one(c).await.expect("count")
    } else {
        sqlx::query_scalar(sql).fetch_one(conn.as_sqlite().expect("sqlite")).await.expect("count")
    };
    assert_eq!(applied, migration_count(fx.backend()));
}
both_backends!(migrations_idempotent, migrations_are_idempotent);

fn migration_count(backend: &str) -> i64 {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend);
    i64::try_from(std::fs::read_dir(dir).expect("migrations dir").count()).expect("count")
}

async fn operations_fail_typed_after_close(fx: &Fixture) {
    let store = open(fx).await;
    store.close().await;
    let err = no_hang(Duration::from_secs(10), store.list_instances(Duration::from_secs(1))).await.expect_err("closed");
    assert!(matches!(err, StoreError::Unavailable { reason: Unavailable::Closed, .. }), "{err:?}");
}
both_backends!(closed_pool, operations_fail_typed_after_close);

#[tokio::test]
async fn sqlite_lives_in_the_data_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nested = dir.path().join("data");
    let store = Store::open(&compozy_store::StoreConfig::default(), &nested, &registry()).await.expect("open");
    assert_eq!(store.backend(), "sqlite");
    assert!(nested.join(compozy_store::DB_FILE).is_file());
}

#[tokio::test]
async fn rejects_unknown_url_schemes() {
    let config = compozy_store::StoreConfig {
        url: Some(compozy_core::Secret::new("mysql://u:hunter2@h/db")),
        ..Default::default()
    };
    let err = Store::connect(&config, std::path::Path::new("/tmp"), &registry()).await.expect_err("mysql");
    assert!(matches!(err, StoreError::Config(_)));
    assert!(!err.to_string().contains("hunter2"));
}

async fn concurrent_migrations_apply_once(fx: &Fixture) {
    let reg = registry();
    let a = Store::connect(&fx.config(), &fx.data_dir(), &reg).await.expect("connect a");
    let b = Store::connect(&fx.config(), &fx.data_dir(), &reg).await.expect("connect b");
    let (ra, rb) = no_hang(Duration::from_secs(60), async { tokio::join!(a.migrate(), b.migrate()) }).await;
    ra.expect("migrate a");
    rb.expect("migrate b");
    let mut conn = a.acquire().await.expect("acquire");
    let sql = "SELECT COUNT(*) FROM _sqlx_migrations WHERE success";
    let applied: i64 = if let Some(c) = conn.as_postgres() {
        sqlx::query_scalar(sql).fetch_one(c).await.expect("count")
    } else {
        sqlx::query_scalar(sql).fetch_one(conn.as_sqlite().expect("sqlite")).await.expect("count")
    };
    assert_eq!(applied, migration_count(fx.backend()));
    drop(conn);
    b.register_instance("x", "all").await.expect("table exists");
}
both_backends!(concurrent_migrations, concurrent_migrations_apply_once);
