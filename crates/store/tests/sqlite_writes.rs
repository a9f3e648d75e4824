//! Embedded writers: a transaction that reads before it writes waits for another connection's
//! commit instead of failing with "database is locked".

mod common;

use std::time::Duration;

use common::registry;
use compozy_store::{Store, StoreConfig, begin_write};
use sqlx::Connection;

async fn store_with_table(data_dir: &std::path::Path) -> Store {
    let store = Store::open(&StoreConfig::default(), data_dir, &registry()).await.expect("open");
    let mut conn = store.acquire().await.expect("acquire");
    let c = conn.as_sqlite().expect("sqlite");
    sqlx::query("CREATE TABLE probe (x INTEGER)").execute(&mut *c).await.expect("create");
    sqlx::query("INSERT INTO probe VALUES (1)").execute(&mut *c).await.expect("insert");
    store
}

/// Reads in `tx`, lets another connection commit a row, then writes in `tx`.
async fn read_commit_elsewhere_then_write(
    store: &Store,
    tx: &mut sqlx::SqliteConnection,
) -> (Result<(), sqlx::Error>, tokio::task::JoinHandle<()>) {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM probe WHERE x = 1").fetch_one(&mut *tx).await.expect("read");
    assert_eq!(n, 1, "the row this transaction deletes");
    let other = store.clone();
    let writer = tokio::spawn(async move {
        let mut conn = other.acquire().await.expect("acquire");
        let c = conn.as_sqlite().expect("sqlite");
        sqlx::query("INSERT INTO probe VALUES (2)")
            .execute(&mut *c)
            .await
            .expect("the other writer waits, then commits");
    });
    // Long enough for the other insert to commit when nothing holds the write lock.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let write = sqlx::query("DELETE FROM probe WHERE x = 1").execute(&mut *tx).await.map(drop);
    (write, writer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_transaction_that_reads_first_waits_for_other_writers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with_table(dir.path()).await;

    // Why: a deferred transaction's read snapshot goes stale when another connection commits,
    // and its first write then fails at once; the busy timeout does not apply.
    let mut conn = store.acquire().await.expect("acquire");
    let mut deferred = conn.as_sqlite().expect("sqlite").begin().await.expect("begin");
    let (write, writer) = read_commit_elsewhere_then_write(&store, &mut deferred).await;
    let err = write.expect_err("a stale deferred transaction cannot write");
    assert!(err.to_string().contains("database is locked"), "{err}");
    writer.await.expect("other writer");
    drop(deferred);
    drop(conn);

    // `begin_write` holds the write lock from BEGIN: the other writer waits for the commit.
    let mut conn = store.acquire().await.expect("acquire");
    let mut tx = begin_write(conn.as_sqlite().expect("sqlite")).await.expect("begin immediate");
    let (write, writer) = read_commit_elsewhere_then_write(&store, &mut tx).await;
    write.expect("the write of an immediate transaction succeeds");
    assert!(!writer.is_finished(), "the other writer waits for the write lock");
    tx.commit().await.expect("commit");
    writer.await.expect("other writer");
    drop(conn);

    let mut conn = store.acquire().await.expect("acquire");
    let rows: Vec<i64> = sqlx::query_scalar("SELECT x FROM probe ORDER BY x")
        .fetch_all(conn.as_sqlite().expect("sqlite"))
        .await
        .expect("rows");
    assert_eq!(rows, vec![2, 2], "both writers' rows, and the row the immediate transaction deleted is gone");
}
