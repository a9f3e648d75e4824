//! The user and API-key endpoints (`/api/v0/auth/*`, `/api/v0/users*`), to be mounted behind the
//! middleware, and the admin bootstrap used by `compozy admin create-user`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post};
use http::StatusCode;
use serde::Deserialize;

use crate::authenticator::{AuthUser, Authenticator};
use crate::db::{self, DbError, Role, User};
use crate::keys;
use crate::principal::Principal;
use crate::problem::{ProblemType, forbidden, problem, unauthorized};
use compozy_core::envelope::ok_with as ok;

/// The routes, as `(path, method router)` pairs for the server to mount behind the middleware
/// (group `auth` for `/api/v0/auth/*`, group `users` for `/api/v0/users*`).
pub fn routes(auth: Arc<Authenticator>) -> Vec<(&'static str, MethodRouter)> {
    vec![
        ("/api/v0/auth/generate", post(generate).with_state(auth.clone())),
        ("/api/v0/auth/keys", get(list_keys).with_state(auth.clone())),
        ("/api/v0/auth/keys/{id}", delete(revoke_key).with_state(auth.clone())),
        ("/api/v0/users", get(list_users).post(create_user).with_state(auth.clone())),
        ("/api/v0/users/{id}", patch(update_user).delete(delete_user).with_state(auth)),
    ]
}

type Caller = Option<Extension<AuthUser>>;

/// Store failures: 503 when unavailable, 500 otherwise; the error text is logged, not returned.
fn db_error(e: &DbError) -> Response {
    match e {
        DbError::Conflict => problem(ProblemType::Conflict, "already exists"),
        DbError::TooManyKeys => problem(
            ProblemType::TooManyKeys,
            "the most active API keys allowed (auth.max_keys_per_user) are held; revoke one first",
        ),
        e if e.is_unavailable() => crate::problem::unavailable(compozy_store::RETRY_AFTER.as_secs()),
        e => {
            tracing::error!(error = %e, "auth store error");
            problem(ProblemType::Internal, "internal error")
        }
    }
}

/// The refusal for a caller that is not an admin; `None` for an admin.
fn deny_non_admin(caller: &Caller) -> Option<Response> {
    match caller {
        None => Some(unauthorized()),
        Some(Extension(u)) if u.is_admin() => None,
        Some(_) => Some(forbidden()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenerateBody {
    #[serde(default)]
    name: String,
}

async fn generate(
    State(auth): State<Arc<Authenticator>>,
    caller: Caller,
    body: Option<Json<GenerateBody>>,
) -> Response {
    let Some(Extension(user)) = caller else { return unauthorized() };
    let name = body.map(|b| b.0.name).unwrap_or_default();
    if name.len() > 100 {
        return problem(ProblemType::InvalidRequest, "name is longer than 100 characters");
    }
    // A local user's key follows the user's role; a JWT principal's is bound to it and carries
    // at most the role its credential had.
    let cap = match &user.principal {
        Principal::Local(id) => match db::get_user(auth.store(), id).await {
            Ok(Some(_)) => None,
            Ok(None) => return forbidden(),
            Err(e) => return db_error(&e),
        },
        Principal::Jwt { .. } => Some(user.role),
    };
    match issue_key(&auth, &user.principal, cap, &name).await {
        Ok((info, key)) => {
            tracing::info!(target: "audit", event = "authn_token_created", user = %user.id, prefix = %info.prefix, "api key created");
            ok(
                StatusCode::CREATED,
                serde_json::json!({"api_key": key, "key": info}),
                "API key created; it is shown only once",
            )
        }
        Err(e) => e.into_response(),
    }
}

async fn list_keys(State(auth): State<Arc<Authenticator>>, caller: Caller) -> Response {
    let Some(Extension(user)) = caller else { return unauthorized() };
    match db::list_keys(auth.store(), &user.principal).await {
        Ok(keys) => ok(StatusCode::OK, serde_json::json!({"keys": keys}), "Success"),
        Err(e) => db_error(&e),
    }
}

async fn revoke_key(State(auth): State<Arc<Authenticator>>, caller: Caller, Path(id): Path<String>) -> Response {
    let Some(Extension(user)) = caller else { return unauthorized() };
    let key = match db::get_key(auth.store(), &id).await {
        Ok(Some(k)) => k,
        Ok(None) => return problem(ProblemType::NotFound, "API key not found"),
        Err(e) => return db_error(&e),
    };
    if key.owner().as_ref() != Some(&user.principal) && !user.is_admin() {
        // Not the owner: answer as if the key did not exist, so ids of others cannot be probed.
        return problem(ProblemType::NotFound, "API key not found");
    }
    match db::revoke_key(auth.store(), &id).await {
        Ok(hash) => {
            if let Some(h) = hash {
                auth.evict(&h);
            }
            tracing::info!(target: "audit", event = "authn_token_revoked", user = %user.id, prefix = %key.prefix, "api key revoked");
            ok(StatusCode::OK, serde_json::Value::Null, "API key revoked")
        }
        Err(e) => db_error(&e),
    }
}

async fn list_users(State(auth): State<Arc<Authenticator>>, caller: Caller) -> Response {
    if let Some(r) = deny_non_admin(&caller) {
        return r;
    }
    match db::list_users(auth.store()).await {
        Ok(users) => ok(StatusCode::OK, serde_json::json!({"users": users}), "Success"),
        Err(e) => db_error(&e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    email: Option<String>,
    role: Option<Role>,
}

async fn create_user(State(auth): State<Arc<Authenticator>>, caller: Caller, Json(body): Json<UserBody>) -> Response {
    if let Some(r) = deny_non_admin(&caller) {
        return r;
    }
    let admin_user = caller.map(|Extension(u)| u.id).unwrap_or_default();
    let Some(email) = body.email.filter(|e| valid_email(e)) else {
        return problem(ProblemType::InvalidRequest, "a valid email is required");
    };
    match db::create_user(auth.store(), &email, body.role.unwrap_or(Role::User)).await {
        Ok(user) => {
            tracing::info!(target: "audit", event = "authz_admin", admin = %admin_user, user = %user.id, "user created");
            ok(StatusCode::CREATED, user, "User created")
        }
        Err(e) => db_error(&e),
    }
}

async fn update_user(
    State(auth): State<Arc<Authenticator>>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<UserBody>,
) -> Response {
    if let Some(r) = deny_non_admin(&caller) {
        return r;
    }
    if body.email.as_deref().is_some_and(|e| !valid_email(e)) {
        return problem(ProblemType::InvalidRequest, "a valid email is required");
    }
    match db::update_user(auth.store(), &id, body.email.as_deref(), body.role).await {
        Ok(Some(user)) => {
            // A role change must not wait for the warm cache to expire.
            auth.evict_user(&user.id);
            ok(StatusCode::OK, user, "User updated")
        }
        Ok(None) => problem(ProblemType::NotFound, "User not found"),
        Err(e) => db_error(&e),
    }
}

async fn delete_user(State(auth): State<Arc<Authenticator>>, caller: Caller, Path(id): Path<String>) -> Response {
    if let Some(r) = deny_non_admin(&caller) {
        return r;
    }
    match db::delete_user(auth.store(), &id).await {
        Ok(Some(hashes)) => {
            hashes.iter().for_each(|h| auth.evict(h));
            ok(StatusCode::OK, serde_json::Value::Null, "User deleted")
        }
        Ok(None) => problem(ProblemType::NotFound, "User not found"),
        Err(e) => db_error(&e),
    }
}

fn valid_email(e: &str) -> bool {
    let e = e.trim();
    e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && e.split_once('@').is_some_and(|(a, b)| !a.is_empty() && b.contains('.'))
}

/// Why the admin bootstrap failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("invalid email")]
    InvalidEmail,
    #[error("a user with this email already exists")]
    Exists,
    #[error(transparent)]
    Random(#[from] keys::RandomError),
    #[error(transparent)]
    Db(DbError),
}

impl From<DbError> for AdminError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Conflict => AdminError::Exists,
            e => AdminError::Db(e),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        match self {
            AdminError::Db(e) => db_error(&e),
            AdminError::Exists => db_error(&DbError::Conflict),
            AdminError::InvalidEmail => problem(ProblemType::InvalidRequest, "a valid email is required"),
            AdminError::Random(e) => {
                tracing::error!(error = %e, "key generation failed");
                problem(ProblemType::Internal, "internal error")
            }
        }
    }
}

async fn issue_key(
    auth: &Authenticator,
    owner: &Principal,
    role: Option<Role>,
    name: &str,
) -> Result<(db::KeyInfo, String), AdminError> {
    let key = keys::generate()?;
    let hash = auth.hasher().hash(&key);
    let new = db::NewKey { owner, role, prefix: keys::shown_prefix(&key), hash: &hash, name };
    let info = db::insert_key(auth.store(), new, auth.max_keys()).await?;
    Ok((info, key))
}

/// `compozy admin create-user --email E --role R`: creates the user and its first API key,
/// returned in clear this once (print it; it cannot be recovered).
pub async fn create_user_with_key(auth: &Authenticator, email: &str, role: Role) -> Result<(User, String), AdminError> {
    if !valid_email(email) {
        return Err(AdminError::InvalidEmail);
    }
    let user = db::create_user(auth.store(), email, role).await?;
    let (_, key) = issue_key(auth, &Principal::Local(user.id.clone()), None, "bootstrap").await?;
    tracing::info!(target: "audit", event = "authn_token_created", user = %user.id, "user and first api key created");
    Ok((user, key))
}
