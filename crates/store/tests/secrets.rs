//! Passwords never reach logs or error text, whatever the log level.

mod common;

use std::time::Duration;

use common::{Captured, TestDb, registry};
use compozy_core::Secret;
use compozy_store::{Store, StoreConfig};

const PASSWORD: &str = "hunter2-not-logged";

/// Runs on one thread, so the thread-local subscriber sees every task, sqlx's included.
#[tokio::test(flavor = "current_thread")]
async fn passwords_stay_out_of_logs_and_errors() {
    let Some(db) = TestDb::create().await else { return };
    let (logs, _guard) = Captured::start();

    // Trust auth accepts any password, so this connects and runs real traffic.
    let url = format!("postgres://postgres:{PASSWORD}@127.0.0.1:5432/{}", db.name);
    let config = StoreConfig { url: Some(Secret::new(url)), ..StoreConfig::default() };
    let store = Store::open(&config, std::path::Path::new("/unused"), &registry()).await.expect("open");
    store.register_instance("i", "all").await.expect("query");
    let shown = format!("{store:?} {config:?} {}", serde_json::to_string(&config).expect("json"));

    // And a failing connection, whose error is logged and returned.
    let bad = StoreConfig {
        url: Some(Secret::new(format!("postgres://postgres:{PASSWORD}@127.0.0.1:1/x"))),
        acquire_timeout: Duration::from_millis(300),
        ..StoreConfig::default()
    };
    let err = Store::connect(&bad, std::path::Path::new("/unused"), &registry()).await.expect_err("port 1");
    tracing::error!(error = %err, "as the server would log it");
    store.close().await;

    let text = logs.text();
    assert!(text.contains("store connected"), "the capture works: {text}");
    assert!(text.contains("INSERT INTO instances"), "sqlx statement logs are captured too: {text}");
    assert!(!text.contains(PASSWORD), "password in logs:\n{text}");
    assert!(!shown.contains(PASSWORD), "password in Debug/Serialize: {shown}");
    assert!(!format!("{err} {err:?}").contains(PASSWORD));
    drop(_guard);
    db.drop_db().await;
}
