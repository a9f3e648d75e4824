//! Embedded SQLite: one database file in the data directory.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use compozy_core::private_fs::{ensure_private_dir, private_open_options, restrict_file};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Sqlite, SqliteConnection, SqlitePool, Transaction};

use crate::config::{SQLITE_DEFAULT_MAX_CONNECTIONS, StoreConfig};
use crate::error::StoreError;

pub(crate) const BACKEND: &str = "sqlite";

/// File name of the embedded database inside the data directory.
pub const DB_FILE: &str = "compozy.db";

pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// Lock file beside the database that serializes migrations.
const MIGRATE_LOCK_FILE: &str = "compozy.db.migrate-lock";

pub(crate) fn migrate_lock_path(data_dir: &Path) -> PathBuf {
    data_dir.join(MIGRATE_LOCK_FILE)
}

/// Takes an exclusive lock on `path`, waiting for other holders (other processes included);
/// released when the file is dropped. sqlx's SQLite migrator has no lock of its own, so without
/// this two concurrent runs both try to apply the same migration.
pub(crate) async fn lock_migrations(path: PathBuf) -> Result<File, StoreError> {
    let shown = path.display().to_string();
    let locked = tokio::task::spawn_blocking(move || {
        let file = private_open_options().create(true).truncate(false).write(true).open(&path)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await;
    match locked {
        Ok(Ok(file)) => Ok(file),
        Ok(Err(e)) => Err(StoreError::Migrate(format!("cannot lock {shown}: {e}"))),
        Err(e) => Err(StoreError::Migrate(format!("cannot lock {shown}: {e}"))),
    }
}

/// Suffixes of the files SQLite keeps beside the database in WAL mode.
const SIDE_FILES: [&str; 2] = ["-wal", "-shm"];

/// Creates the data directory (0700 when new) and the database file (0600) before SQLite opens it:
/// SQLite creates the WAL and shared-memory files with the database file's mode, so they are
/// 0600 too. Files created by an older release are narrowed.
fn private_database_file(data_dir: &Path) -> Result<PathBuf, StoreError> {
    let fail = |what: &str, e: std::io::Error| StoreError::Config(format!("cannot secure {what}: {e}"));
    ensure_private_dir(data_dir).map_err(|e| fail(&format!("data directory {}", data_dir.display()), e))?;
    let file = data_dir.join(DB_FILE);
    match private_open_options().write(true).create_new(true).open(&file) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(fail(&file.display().to_string(), e)),
    }
    for suffix in std::iter::once("").chain(SIDE_FILES) {
        let path = data_dir.join(format!("{DB_FILE}{suffix}"));
        restrict_file(&path).map_err(|e| fail(&path.display().to_string(), e))?;
    }
    Ok(file)
}

/// Begins a transaction that takes SQLite's write lock at once (`BEGIN IMMEDIATE`). A deferred
/// transaction that reads before it writes fails at its first write with `SQLITE_BUSY`, without
/// waiting for the busy timeout, when another connection has committed since its read (its
/// snapshot is stale). Taking the lock first makes it wait like any other writer.
pub async fn begin_write(conn: &mut SqliteConnection) -> Result<Transaction<'_, Sqlite>, sqlx::Error> {
    conn.begin_with("BEGIN IMMEDIATE").await
}

/// How long a writer waits for SQLite's single write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// What the `-wal` file is cut back to once a checkpoint has emptied it. SQLite reuses the file
/// from its start and never shrinks it by default, so one large transaction, or a reader that
/// held checkpoints back for a while, left the file at its peak size for good. Normal traffic
/// keeps the WAL near the 1,000-page auto-checkpoint (about 4 MiB), well below this.
pub const WAL_SIZE_LIMIT_BYTES: u64 = 16 * 1024 * 1024;

pub(crate) fn pool(config: &StoreConfig, data_dir: &Path) -> Result<(SqlitePool, u32), StoreError> {
    let file = private_database_file(data_dir)?;
    // WAL lets readers proceed while one connection writes. FULL syncs the WAL at every commit,
    // so a delivery answered 202 survives an OS crash or power loss (NORMAL may roll back the
    // last commits then); docs/performance.md has its cost.
    let options = SqliteConnectOptions::new()
        .filename(file)
        // Created above; a file removed under the running engine must fail the next connection,
        // not be replaced by an empty database.
        .create_if_missing(false)
        // Pages freed by retention can be given back (`PRAGMA incremental_vacuum`); see the
        // migration 20261130000310 for databases created before.
        .auto_vacuum(SqliteAutoVacuum::Incremental)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(BUSY_TIMEOUT)
        .pragma("journal_size_limit", WAL_SIZE_LIMIT_BYTES.to_string())
        .foreign_keys(true);
    let max = config.max_connections.unwrap_or(SQLITE_DEFAULT_MAX_CONNECTIONS);
    let pool = SqlitePoolOptions::new()
        .max_connections(max)
        .min_connections(config.min_connections.min(max))
        .acquire_timeout(config.acquire_timeout)
        .idle_timeout(config.idle_timeout)
        .max_lifetime(config.max_lifetime_or(None))
        .connect_lazy_with(options);
    Ok((pool, max))
}
