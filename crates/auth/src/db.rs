//! The `users` and `api_keys` tables, on PostgreSQL or SQLite (same SQL; `$n` placeholders work
//! on both). Times are Unix milliseconds.

use std::time::{SystemTime, UNIX_EPOCH};

use compozy_store::{Store, StoreConn, StoreError, on_conn};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::keys::KeyHash;
use crate::principal::Principal;

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

    /// This role, lowered to `cap` when `cap` is less.
    pub fn at_most(self, cap: Role) -> Role {
        if cap == Role::User { Role::User } else { self }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: String,
    pub email: String,
    pub role: Role,
    /// Unix milliseconds.
    #[serde(serialize_with = "compozy_core::timestamp::serialize")]
    pub created_at: i64,
}

/// What an owner may see of a key: never the hash, never the key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    pub id: String,
    /// The local owner; `None` for a key minted by a JWT principal (`issuer`, `subject`).
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The most the key grants; `None`: its owner's role.
    pub role: Option<Role>,
    pub prefix: String,
    pub name: String,
    #[serde(serialize_with = "compozy_core::timestamp::serialize")]
    pub created_at: i64,
    #[serde(serialize_with = "compozy_core::timestamp::serialize_opt")]
    pub last_used_at: Option<i64>,
    #[serde(serialize_with = "compozy_core::timestamp::serialize_opt")]
    pub revoked_at: Option<i64>,
}

impl KeyInfo {
    pub fn owner(&self) -> Option<Principal> {
        owner_of(self.user_id.clone(), self.issuer.clone(), self.subject.clone())
    }
}

fn owner_of(user_id: Option<String>, issuer: Option<String>, subject: Option<String>) -> Option<Principal> {
    match (user_id, issuer, subject) {
        (Some(id), None, None) => Some(Principal::Local(id)),
        (None, Some(issuer), Some(subject)) => Some(Principal::Jwt { issuer, subject }),
        _ => None,
    }
}

/// A key found by its hash, with its owner and the role it grants.
#[derive(Clone, Debug)]
pub struct KeyRecord {
    pub id: String,
    pub hash: Vec<u8>,
    pub prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub owner: Principal,
    /// The owner's role (local) capped by the key's own, or the key's (JWT principal).
    pub role: Role,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("already exists")]
    Conflict,
    #[error("the principal already holds the most active keys allowed")]
    TooManyKeys,
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
            DbError::Conflict | DbError::TooManyKeys => false,
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
const KEY_COLS: &str = "id, user_id, issuer, subject, role, prefix, name, created_at, last_used_at, revoked_at";

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
            issuer: $r.try_get("issuer")?,
            subject: $r.try_get("subject")?,
            role: $r.try_get::<Option<String>, _>("role")?.as_deref().map(role_of).transpose()?,
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

/// A key to insert: its owner, the role it is capped at, what identifies it.
pub struct NewKey<'a> {
    pub owner: &'a Principal,
    pub role: Option<Role>,
    pub prefix: &'a str,
    pub hash: &'a KeyHash,
    pub name: &'a str,
}

/// Inserts the key unless its owner already holds `max_active` unrevoked keys
/// ([`DbError::TooManyKeys`]). The count and the insert are one statement; on PostgreSQL a
/// transaction-scoped advisory lock on the owner serialises concurrent mints of one owner.
pub async fn insert_key(store: &Store, key: NewKey<'_>, max_active: usize) -> Result<KeyInfo, DbError> {
    let (user_id, issuer, subject) = match key.owner {
        Principal::Local(id) => (Some(id.clone()), None, None),
        Principal::Jwt { issuer, subject } => (None, Some(issuer.clone()), Some(subject.clone())),
    };
    let info = KeyInfo {
        id: uuid::Uuid::new_v4().to_string(),
        user_id,
        issuer,
        subject,
        role: key.role,
        prefix: key.prefix.into(),
        name: key.name.into(),
        created_at: now_millis(),
        last_used_at: None,
        revoked_at: None,
    };
    let sql = "INSERT INTO api_keys (id, user_id, issuer, subject, role, prefix, hash, name, created_at) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 WHERE (SELECT count(*) FROM api_keys WHERE revoked_at IS NULL \
         AND (user_id = $2 OR (issuer = $3 AND subject = $4))) < $10";
    let max = i64::try_from(max_active).unwrap_or(i64::MAX);
    macro_rules! insert {
        ($c:expr) => {
            sqlx::query(sql)
                .bind(&info.id)
                .bind(&info.user_id)
                .bind(&info.issuer)
                .bind(&info.subject)
                .bind(info.role.map(Role::as_str))
                .bind(&info.prefix)
                .bind(&key.hash[..])
                .bind(&info.name)
                .bind(info.created_at)
                .bind(max)
                .execute($c)
                .await
                .map_err(map)?
                .rows_affected()
        };
    }
    let mut conn = store.acquire().await?;
    let inserted = match &mut conn {
        StoreConn::Postgres(c) => {
            let mut tx = sqlx::Connection::begin(&mut **c).await.map_err(map)?;
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(format!("compozy.api_keys:{}", key.owner.id()))
                .execute(&mut *tx)
                .await
                .map_err(map)?;
            let n = insert!(&mut *tx);
            tx.commit().await.map_err(map)?;
            n
        }
        StoreConn::Sqlite(c) => insert!(&mut **c),
    };
    if inserted == 0 {
        return Err(DbError::TooManyKeys);
    }
    Ok(info)
}

/// The key whose stored hash equals `hash` (unique index), with its owner; `None` also when
/// the row names no valid owner.
pub async fn find_key(store: &Store, hash: &KeyHash) -> Result<Option<KeyRecord>, DbError> {
    let sql = "SELECT k.id, k.hash, k.prefix, k.created_at, k.revoked_at, k.user_id, k.issuer, k.subject, \
         k.role, u.role AS user_role FROM api_keys k LEFT JOIN users u ON u.id = k.user_id WHERE k.hash = $1";
    let mut conn = store.acquire().await?;
    let row = on_conn!(&mut conn, c => {
        let row = sqlx::query(sql).bind(&hash[..]).fetch_optional(&mut **c).await.map_err(map)?;
        row.map(|r| Ok::<_, sqlx::Error>((
            KeyRecordRow {
                id: r.try_get("id")?,
                hash: r.try_get("hash")?,
                prefix: r.try_get("prefix")?,
                created_at: r.try_get("created_at")?,
                revoked_at: r.try_get("revoked_at")?,
            },
            owner_of(r.try_get("user_id")?, r.try_get("issuer")?, r.try_get("subject")?),
            r.try_get::<Option<String>, _>("role")?.as_deref().map(role_of).transpose()?,
            r.try_get::<Option<String>, _>("user_role")?.as_deref().map(role_of).transpose()?,
        ))).transpose().map_err(map)?
    });
    let Some((k, Some(owner), key_role, user_role)) = row else { return Ok(None) };
    let Some(role) = granted(&owner, user_role, key_role) else { return Ok(None) };
    Ok(Some(KeyRecord {
        id: k.id,
        hash: k.hash,
        prefix: k.prefix,
        created_at: k.created_at,
        revoked_at: k.revoked_at,
        owner,
        role,
    }))
}

/// The role a key grants: its local owner's capped by the key's own, or a JWT principal's key's.
fn granted(owner: &Principal, user_role: Option<Role>, key_role: Option<Role>) -> Option<Role> {
    match (owner, user_role, key_role) {
        (Principal::Local(_), Some(user), cap) => Some(user.at_most(cap.unwrap_or(Role::Admin))),
        (Principal::Jwt { .. }, _, Some(role)) => Some(role),
        _ => None,
    }
}

/// A live console session (see [`crate::sessions`]) with the key it was opened with.
#[derive(Clone, Debug)]
pub struct SessionRecord {
    pub key_id: String,
    pub owner: Principal,
    /// What the key grants now: a demoted owner is demoted in open sessions too.
    pub role: Role,
    pub expires_at: i64,
}

/// Stores a session opened with key `key_id`; expired sessions are deleted first (sign-ins are
/// rare, so this bounds the table without a sweeper of its own).
pub async fn insert_session(
    store: &Store,
    hash: &KeyHash,
    key_id: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), DbError> {
    let mut conn = store.acquire().await?;
    on_conn!(&mut conn, c => {
        sqlx::query("DELETE FROM console_sessions WHERE expires_at < $1").bind(now)
            .execute(&mut **c).await.map_err(map)?;
        sqlx::query("INSERT INTO console_sessions (id_hash, key_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(&hash[..]).bind(key_id).bind(now).bind(expires_at)
            .execute(&mut **c).await.map(|_| ()).map_err(map)
    })
}

/// The session whose id hashes to `hash`, unless it expired, was revoked, or its key was revoked
/// or deleted (with its user).
pub async fn find_session(store: &Store, hash: &KeyHash, now: i64) -> Result<Option<SessionRecord>, DbError> {
    let sql = "SELECT k.id, k.user_id, k.issuer, k.subject, k.role, u.role AS user_role, s.expires_at \
         FROM console_sessions s JOIN api_keys k ON k.id = s.key_id LEFT JOIN users u ON u.id = k.user_id \
         WHERE s.id_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 AND k.revoked_at IS NULL";
    let mut conn = store.acquire().await?;
    let row = on_conn!(&mut conn, c => {
        let row = sqlx::query(sql).bind(&hash[..]).bind(now).fetch_optional(&mut **c).await.map_err(map)?;
        row.map(|r| Ok::<_, sqlx::Error>((
            r.try_get::<String, _>("id")?,
            owner_of(r.try_get("user_id")?, r.try_get("issuer")?, r.try_get("subject")?),
            r.try_get::<Option<String>, _>("role")?.as_deref().map(role_of).transpose()?,
            r.try_get::<Option<String>, _>("user_role")?.as_deref().map(role_of).transpose()?,
            r.try_get::<i64, _>("expires_at")?,
        ))).transpose().map_err(map)?
    });
    let Some((key_id, Some(owner), key_role, user_role, expires_at)) = row else { return Ok(None) };
    let Some(role) = granted(&owner, user_role, key_role) else { return Ok(None) };
    Ok(Some(SessionRecord { key_id, owner, role, expires_at }))
}

/// Marks the session revoked (sign-out); `false` when there was no live one.
pub async fn revoke_session(store: &Store, hash: &KeyHash, now: i64) -> Result<bool, DbError> {
    let mut conn = store.acquire().await?;
    on_conn!(&mut conn, c => sqlx::query(
            "UPDATE console_sessions SET revoked_at = $2 WHERE id_hash = $1 AND revoked_at IS NULL")
        .bind(&hash[..]).bind(now).execute(&mut **c).await.map(|r| r.rows_affected() == 1))
    .map_err(map)
}

struct KeyRecordRow {
    id: String,
    hash: Vec<u8>,
    prefix: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

/// The keys owned by `owner` (a JWT principal's never include a local user's, and back).
pub async fn list_keys(store: &Store, owner: &Principal) -> Result<Vec<KeyInfo>, DbError> {
    let sql = format!(
        "SELECT {KEY_COLS} FROM api_keys WHERE user_id = $1 OR (issuer = $2 AND subject = $3) ORDER BY created_at, id"
    );
    let (user_id, issuer, subject) = match owner {
        Principal::Local(id) => (Some(id.as_str()), None, None),
        Principal::Jwt { issuer, subject } => (None, Some(issuer.as_str()), Some(subject.as_str())),
    };
    let mut conn = store.acquire().await?;
    on_conn!(&mut conn, c => {
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user_id).bind(issuer).bind(subject)
            .fetch_all(&mut **c).await.map_err(map)?;
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
