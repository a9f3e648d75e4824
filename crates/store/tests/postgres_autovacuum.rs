//! The start-up warning about a PostgreSQL server without autovacuum. Alone in its test binary:
//! it captures logs with a thread-local subscriber, and a callsite first reached by another
//! test's thread at the same moment can miss it.

mod common;

use common::{Captured, PG_ADMIN_URL, TestDb, registry};
use compozy_core::Secret;
use compozy_store::{Store, StoreConfig};
use sqlx::{Connection, PgConnection};

fn config(url: String) -> StoreConfig {
    StoreConfig { url: Some(Secret::new(url)), ..StoreConfig::default() }
}

/// Without autovacuum nothing reclaims the rows retention deletes and the database grows without
/// end (this machine's shared server runs so), which the engine says at start; with it, nothing.
#[tokio::test(flavor = "current_thread")]
async fn autovacuum_off_is_reported_at_start() {
    let Some(db) = TestDb::create().await else { return };
    let mut admin = PgConnection::connect(PG_ADMIN_URL).await.expect("admin");
    let setting: String = sqlx::query_scalar("SHOW autovacuum").fetch_one(&mut admin).await.expect("show");
    let (logs, _guard) = Captured::start();
    let store = Store::connect(&config(db.url()), std::path::Path::new("/unused"), &registry()).await.expect("connect");
    store.close().await;
    let text = logs.text();
    assert!(text.contains("store connected"), "the capture works: {text}");
    let warned = text.contains("autovacuum off");
    assert_eq!(warned, setting == "off", "autovacuum = {setting}, logs:\n{text}");
}
