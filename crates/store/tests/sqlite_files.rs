//! The embedded database's files: private to the engine's user, synced at every commit.

#![cfg(unix)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::registry;
use compozy_store::{DB_FILE, Store, StoreConfig, WAL_SIZE_LIMIT_BYTES};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

fn files(data_dir: &Path) -> Vec<std::path::PathBuf> {
    ["", "-wal", "-shm"].iter().map(|s| data_dir.join(format!("{DB_FILE}{s}"))).collect()
}

/// Opens the store and commits one row, so the WAL and shared-memory files exist.
async fn open_and_write(data_dir: &Path) -> Store {
    let store = Store::open(&StoreConfig::default(), data_dir, &registry()).await.expect("open");
    let mut conn = store.acquire().await.expect("acquire");
    let c = conn.as_sqlite().expect("sqlite");
    sqlx::query("CREATE TABLE IF NOT EXISTS probe (x INTEGER)").execute(&mut *c).await.expect("create");
    sqlx::query("INSERT INTO probe VALUES (1)").execute(&mut *c).await.expect("insert");
    drop(conn);
    store
}

#[tokio::test]
async fn a_new_data_directory_and_its_database_files_are_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let store = open_and_write(&data_dir).await;
    assert_eq!(mode(&data_dir), 0o700, "data directory");
    for file in files(&data_dir) {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    store.close().await;
}

#[tokio::test]
async fn files_left_readable_by_an_older_release_are_narrowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    open_and_write(&data_dir).await.close().await;
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    for file in files(&data_dir).iter().filter(|f| f.exists()) {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).expect("chmod file");
    }
    let store = open_and_write(&data_dir).await;
    assert_eq!(mode(&data_dir), 0o755, "an existing directory is left as it is (it may be shared)");
    for file in files(&data_dir) {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    store.close().await;
}

#[tokio::test]
async fn every_connection_syncs_at_each_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&StoreConfig::default(), dir.path(), &registry()).await.expect("open");
    // Every pooled connection, not only the first one.
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(store.acquire().await.expect("acquire"));
    }
    for conn in &mut conns {
        let c = conn.as_sqlite().expect("sqlite");
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut *c).await.expect("pragma");
        assert_eq!(sync, 2, "synchronous=FULL");
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut *c).await.expect("pragma");
        assert_eq!(journal, "wal");
    }
    drop(conns);
    store.close().await;
}

/// A transaction larger than the limit grows the `-wal` file past it; once a checkpoint has
/// copied it into the database, the next write starts the WAL over and the file is cut back.
/// Without the limit SQLite keeps the file at its peak size for good.
#[tokio::test]
async fn the_wal_file_shrinks_back_after_a_large_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&StoreConfig::default(), dir.path(), &registry()).await.expect("open");
    let wal = dir.path().join(format!("{DB_FILE}-wal"));
    let wal_size = || std::fs::metadata(&wal).expect("wal file").len();
    let mut conn = store.acquire().await.expect("acquire");
    let c = conn.as_sqlite().expect("sqlite");
    sqlx::query("CREATE TABLE blobs (b BLOB)").execute(&mut *c).await.expect("create");
    let megabytes = WAL_SIZE_LIMIT_BYTES / (1024 * 1024) + 8;
    let mut tx = compozy_store::begin_write(c).await.expect("begin");
    for _ in 0..megabytes {
        sqlx::query("INSERT INTO blobs VALUES (randomblob(1048576))").execute(&mut *tx).await.expect("insert");
    }
    tx.commit().await.expect("commit");
    let peak = wal_size();
    assert!(peak > WAL_SIZE_LIMIT_BYTES, "the transaction alone grows the WAL past the limit ({peak} bytes)");
    // The commit's automatic checkpoint copied the frames; make sure of it, then write again.
    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&mut *c).await.expect("checkpoint");
    sqlx::query("DELETE FROM blobs").execute(&mut *c).await.expect("delete");
    let after = wal_size();
    assert!(after <= WAL_SIZE_LIMIT_BYTES, "the WAL is cut back to the limit: {after} bytes after a {peak}-byte peak");
    drop(conn);
    store.close().await;
}
