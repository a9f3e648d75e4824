//! Browser sessions of the operator console: an API key presented once at sign-in is exchanged
//! for a random session id carried in a cookie.
//!
//! - The id is 256 random bits; the store keeps only its keyed hash (the key-hashing secret), so
//!   a leaked table opens no session.
//! - A session lives at most its TTL, ends at sign-out (revoked in the store, so every instance
//!   sees it at once), and ends with its key: revoking the key or deleting its user closes every
//!   session opened with it. The role is read from the key and its owner at each request, so a
//!   demotion applies to open sessions.
//! - The CSRF token of a session is a keyed hash of its id: only a holder of the cookie (and of
//!   the server secret) can compute it, nothing extra is stored, and it dies with the session.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use crate::authenticator::{AuthUser, Authenticator};
use crate::db::{self, DbError};
use crate::keys;
use crate::metrics::Method;

/// A session just opened: the cookie value (shown to the browser once) and when it expires.
#[derive(Debug)]
pub struct Opened {
    pub cookie: String,
    /// Unix milliseconds.
    pub expires_at: i64,
}

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("sessions are opened with an API key, not a token")]
    NotAKey,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Random(#[from] keys::RandomError),
}

/// Opens, finds and revokes console sessions. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Sessions {
    auth: Arc<Authenticator>,
    ttl: Duration,
}

impl Sessions {
    pub fn new(auth: Arc<Authenticator>, ttl: Duration) -> Self {
        Self { auth, ttl }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Opens a session for `user`, who has just signed in with an API key (`user.key_id`).
    /// Always a fresh id: an id the browser brought is never adopted (no session fixation).
    pub async fn open(&self, user: &AuthUser) -> Result<Opened, OpenError> {
        let key_id = user.key_id.as_deref().ok_or(OpenError::NotAKey)?;
        let cookie = keys::random_secret()?;
        let now = db::now_millis();
        let expires_at = now.saturating_add(i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX));
        db::insert_session(self.auth.store(), &self.auth.hasher().hash(&cookie), key_id, now, expires_at).await?;
        Ok(Opened { cookie, expires_at })
    }

    /// The user behind a session cookie, `None` when the session is unknown, expired, revoked,
    /// or its key is.
    pub async fn find(&self, cookie: &str) -> Result<Option<AuthUser>, DbError> {
        if !plausible(cookie) {
            return Ok(None);
        }
        let record = db::find_session(self.auth.store(), &self.auth.hasher().hash(cookie), db::now_millis()).await?;
        Ok(record.map(|r| AuthUser {
            id: r.owner.id(),
            principal: r.owner,
            role: r.role,
            method: Method::Session,
            key_id: Some(r.key_id),
        }))
    }

    /// Ends the session (sign-out); `false` when it was not live.
    pub async fn revoke(&self, cookie: &str) -> Result<bool, DbError> {
        if !plausible(cookie) {
            return Ok(false);
        }
        db::revoke_session(self.auth.store(), &self.auth.hasher().hash(cookie), db::now_millis()).await
    }

    /// The CSRF token of the session with this cookie.
    pub fn csrf_token(&self, cookie: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.auth.hasher().hash(&format!("csrf:{cookie}")))
    }

    /// Whether `presented` is the CSRF token of the session with this cookie (constant time).
    pub fn csrf_matches(&self, cookie: &str, presented: &str) -> bool {
        bool::from(self.csrf_token(cookie).as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// The shape of an id this module mints (43 base64url characters): anything else is refused
/// without a store round trip.
fn plausible(cookie: &str) -> bool {
    cookie.len() == 43 && cookie.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_ids_are_plausible_and_others_are_not() {
        let id = keys::random_secret().expect("rng");
        assert!(plausible(&id), "{id}");
        assert!(!plausible(""));
        assert!(!plausible(&format!("{id}x")));
        assert!(!plausible(&id.replace(|c: char| c.is_ascii_alphabetic(), "%")));
    }
}
