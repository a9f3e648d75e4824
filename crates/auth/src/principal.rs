//! Who a request acts as: a local user, or a JWT's (issuer, subject). The two never meet: a
//! token whose subject equals a local user's id is still only that token's principal.

use std::fmt::Write;

/// The owner of a credential and of the keys it mints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A row of `users`.
    Local(String),
    /// A token's `iss` and `sub`.
    Jwt { issuer: String, subject: String },
}

impl Principal {
    /// The id rate limits, metric labels and the audit log use: the user's id, or `jwt:` and 32
    /// hex digits of SHA-256(issuer, NUL, subject) — bounded, opaque, and never a local id.
    pub fn id(&self) -> String {
        match self {
            Principal::Local(id) => id.clone(),
            Principal::Jwt { issuer, subject } => {
                let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
                ctx.update(issuer.as_bytes());
                ctx.update(&[0]);
                ctx.update(subject.as_bytes());
                let digest = ctx.finish();
                let mut id = String::with_capacity(36);
                id.push_str("jwt:");
                for b in &digest.as_ref()[..16] {
                    let _ = write!(id, "{b:02x}");
                }
                id
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_subject_never_yields_a_local_id() {
        let local = Principal::Local("3f1c0a52-0000-4000-8000-000000000001".into());
        let token = Principal::Jwt { issuer: "https://idp".into(), subject: local.id() };
        assert_ne!(local, token);
        assert!(token.id().starts_with("jwt:") && token.id().len() == 36, "{}", token.id());
        let other = Principal::Jwt { issuer: "https://idp2".into(), subject: local.id() };
        assert_ne!(token.id(), other.id(), "the issuer is part of the principal");
    }
}
