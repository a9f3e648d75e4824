//! The `users` and `api_keys` tables, on PostgreSQL or SQLite (same SQL; `$n` placeholders work
//! on both). Times are Unix milliseconds.

use std::time::{SystemTime, UNIX_EPOCH};

use compozy_store::{Store, StoreConn, StoreError};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::keys::KeyHash;

/// Runs `$body` with `$c` bound to the backend's connection, whichever it is.
macro_rules! on_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            StoreConn::Postgres($c) => $body,
            StoreConn::Sqlite($c) => $body,
        }
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: String,
    pub email: String,
    pub role: Role,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// What an owner may see of a key: never the hash, never the key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub user_id: String,
    pub prefix: String,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A key found by its hash, with its owner.
#[derive(Clone, Debug)]
pub struct KeyRecord {
    pub id: String,
    pub hash: Vec<u8>,
    pub prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub user: User,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("already exists")]
    Conflict,
    #[error("database error: {0}")]
    Sqlx(#[source] sqlx::Error),
}

impl DbError {
    /// Connection-level failures, worth a 503 and a retry.
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Store(e) => e.is_unavailable(),
            DbError::Sqlx(e) => matches!(
                e,
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Protocol(_)
            ),
            DbError::Conflict => false,
        }
    }
}

fn map(e: sqlx::Error) -> DbError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => DbError::Conflict,
        _ => DbError::Sqlx(e),
    }
}

pub fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn role_of(s: &str) -> Result<Role, sqlx::Error> {
    Role::parse(s).ok_or_else(|| sqlx::Error::Decode(format!("unknown role {s:?}").into()))
}

const USER_COLS: &str = "id, email, role, created_at";
const KEY_COLS: &str = "id, user_id, prefix, name, created_at, last_used_at, revoked_at";

macro_rules! user_row {
    ($r:expr) => {
        User {
            id: $r.try_get("id")?,
            email: $r.try_get("email")?,
            role: role_of(&$r.try_get::<String, _>("role")?)?,
            created_at: $r.try_get("created_at")?,
        }
    };
}

macro_rules! key_row {
    ($r:expr) => {
        KeyInfo {
            id: $r.try_get("id")?,
            user_id: $r.try_get("user_id")?,
            prefix: $r.try_get("prefix")?,
            name: $r.try_get("name")?,
            created_at: $r.try_get("created_at")?,
            last_used_at: $r.try_get("last_used_at")?,
            revoked_at: $r.try_get("revoked_at")?,
        }
    };
}

/// Emails compare case-insensitively; they are stored trimmed and lower-cased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

pub async fn create_user(store: &Store, email: &str, role: Role) -> Result<User, DbError> {
    let user =
        User { id: uuid::Uuid::new_v4().to_string(), email: normalize_email(email), role, created_at: now_millis() };
    let sql = "INSERT INTO users (id, email, role, created_at) VALUES ($1, $2, $3, $4)";
    let mut conn = store.acquire().await?;
    on_conn!(&mut conn, c => sqlx::query(sql)
        .bind(&user.id).bind(&user.email).bind(role.as_str()).bind(user.created_at)
        .execute(&mut **c).await.map(|_| ()))
    .map_err(map)?;
    Ok(user)
}

pub async fn list_users(store: &Store) -> Result<Vec<User>, DbError> {
    let sql = format!("SELECT {USER_COLS} FROM users ORDER BY created_at, id");
    let mut conn = store.acquire().await?;
    on_conn!(&mut conn, c => {
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&mut **c).await.map_err(map)?;
        rows.iter().map(|r| Ok(user_row!(r))).collect::<Result<Vec<_>, sqlx::Error>>().map_err(map)
    })
}

pub async fn get_user(store: &Store, id: &str) -> Result<Option<User>, DbError> {
    let sql = format!("SELECT {USER_COLS} FROM users WHERE id = $1");
    let mut conn = store.acquire().await?;
    on_conn!(&mut conn, c => {
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&mut **c).await.map_err(map)?;
        row.map(|r| Ok::<_, sqlx::Error>(user_row!(r))).transpose().map_err(map)
    })
}

/// Changes the given fields; `None` when there is no such user.
pub async fn update_user(
    store: &Store,
    id: &str,
    email: Option<&str>,
    role: Option<Role>,
) -> Result<Option<User>, DbError> {
    let sql = "UPDATE users SET email = COALESCE($2, email), role = COALESCE($3, role) WHERE id = $1";
    let email = email.map(normalize_email);
    let role = role.map(Role::as_str);
    let mut conn = store.acquire().await?;
    let n = on_conn!(&mut conn, c => sqlx::query(sql).bind(id).bind(&email).bind(role)
        .execute(&mut **c).await.map(|r| r.rows_affected()))
    .map_err(map)?;
    drop(conn);
    if n == 0 { Ok(None) } else { get_user(store, id).await }
}

/// Deletes the user and (by cascade) its keys; returns the hashes of those keys so the caller
/// can evict them from the warm cache.
pub async fn delete_user(store: &Store, id: &str) -> Result<Option<Vec<Vec<u8>>>, DbError> {
    let mut conn = store.acquire().await?;
    on_conn!(&mut conn, c => {
        let hashes: Vec<Vec<u8>> = sqlx::query("SELECT hash FROM api_keys WHERE user_id = $1")
            .bind(id).fetch_all(&mut **c).await.map_err(map)?
            .iter().map(|r| r.try_get("hash")).collect::<Result<_, _>>().map_err(map)?;
        let n = sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(&mut **c).await.map_err(map)?;
        Ok(if n.rows_affected() == 0 { None } else { Some(hashes) })
    })
}

pub async fn insert_key(
    store: &Store,
    user_id: &str,
    prefix: &str,
    hash: &KeyHash,
    name: &str,
) -> Result<KeyInfo, DbError> {
    let info = KeyInfo {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user_id.into(),
        prefix: prefix.into(),
        name: name.into(),
        created_at: now_millis(),
        last_used_at: None,
        revoked_at: None,
    };
    let sql = "INSERT INTO api_keys (id, user_id, prefix, hash, name, created_at) VALUES ($1, $2, $3, $4, $5, $6)";
    let mut conn = store.acquire().await?;
    on_conn!(&mut conn, c => sqlx::query(sql)
        .bind(&info.id).bind(&info.user_id).bind(&info.prefix).bind(&hash[..]).bind(&info.name).bind(info.created_at)
        .execute(&mut **c).await.map(|_| ()))
    .map_err(map)?;
    Ok(info)
}

/// The key whose stored hash equals `hash` (unique index), with its owner.
pub async fn find_key(store: &Store, hash: &KeyHash) -> Result<Option<KeyRecord>, DbError> {
    let sql = "SELECT k.id AS kid, k.hash, k.prefix, k.created_at AS kcreated, k.revoked_at, \
         u.id, u.email, u.role, u.created_at FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.hash = $1";
    let mut conn = store.acquire().await?;
    on_conn!(&mut conn, c => {
        let row = sqlx::query(sql).bind(&hash[..]).fetch_optional(&mut **c).await.map_err(map)?;
        row.map(|r| Ok::<_, sqlx::Error>(KeyRecord {
            id: r.try_get("kid")?,
            hash: r.try_get("hash")?,
            prefix: r.try_get("prefix")?,
            created_at: r.try_get("kcreated")?,
            revoked_at: r.try_get("revoked_at")?,
            user: user_row!(r),
        })).transpose().map_err(map)
    })
}

pub async fn list_keys(store: &Store, user_id: &str) -> Result<Vec<KeyInfo>, DbError> {
    let sql = format!("SELECT {KEY_COLS} FROM api_keys WHERE user_id = $1 ORDER BY created_at, id");
    let mut conn = store.acquire().await?;
    on_conn!(&mut conn, c => {
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user_id).fetch_all(&mut **c).await.map_err(map)?;
        rows.iter().map(|r| Ok(key_row!(r))).collect::<Result<Vec<_>, sqlx::Error>>().map_err(map)
    })
}

pub async fn get_key(store: &Store, id: &str) -> Result<Option<KeyInfo>, DbError> {
    let sql = format!("SELECT {KEY_COLS} FROM api_keys WHERE id = $1");
    let mut conn = store.acquire().await?;
    on_conn!(&mut conn, c => {
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&mut **c).await.map_err(map)?;
        row.map(|r| Ok::<_, sqlx::Error>(key_row!(r))).transpose().map_err(map)
    })
}

/// Marks the key revoked (idempotent); returns its hash for local eviction.
pub async fn revoke_key(store: &Store, id: &str) -> Result<Option<Vec<u8>>, DbError> {
    let mut conn = store.acquire().await?;
    on_conn!(&mut conn, c => {
        sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
            .bind(id).bind(now_millis()).execute(&mut **c).await.map_err(map)?;
        let row = sqlx::query("SELECT hash FROM api_keys WHERE id = $1").bind(id).fetch_optional(&mut **c).await.map_err(map)?;
        row.map(|r| r.try_get::<Vec<u8>, _>("hash")).transpose().map_err(map)
    })
}

pub async fn touch_key(store: &Store, id: &str, at: i64) -> Result<(), DbError> {
    let mut conn = store.acquire().await?;
    on_conn!(&mut conn, c => sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
        .bind(id).bind(at).execute(&mut **c).await.map(|_| ()))
    .map_err(map)
}
