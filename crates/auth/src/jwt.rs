//! JWT verification against configured issuers, each with one pinned algorithm and key.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde_json::Value;

use crate::config::{IssuerConfig, JwtAlgorithm, JwtConfig};
use crate::db::Role;

/// Verified identity from a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtIdentity {
    pub subject: String,
    pub role: Role,
    /// `iat`, seconds since the epoch, when present.
    pub issued_at: Option<i64>,
}

/// Why a token was refused. The unverified subject is kept only for the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwtError {
    Expired,
    Invalid,
}

#[derive(Debug, thiserror::Error)]
#[error("jwt issuer {issuer:?}: {reason}")]
pub struct JwtConfigError {
    issuer: String,
    reason: String,
}

struct Issuer {
    key: DecodingKey,
    validation: Validation,
    role_claim: String,
}

/// The configured issuers, keyed by `iss`.
pub struct JwtVerifier {
    issuers: HashMap<String, Issuer>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier").field("issuers", &self.issuers.keys().collect::<Vec<_>>()).finish()
    }
}

impl JwtVerifier {
    pub fn new(config: &JwtConfig) -> Result<Self, JwtConfigError> {
        // jsonwebtoken panics at the first verify unless exactly one provider is selected; pin it
        // (Err means one is already installed, which is fine).
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        let leeway = config.leeway.as_secs();
        let mut issuers = HashMap::new();
        for c in &config.issuers {
            issuers.insert(c.issuer.clone(), issuer(c, leeway)?);
        }
        Ok(Self { issuers })
    }

    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// Verifies signature (with the issuer's pinned algorithm only), `exp`, `nbf`, `iss`, `aud`.
    pub fn verify(&self, token: &str) -> Result<JwtIdentity, JwtError> {
        // The issuer is read unverified only to pick the key; the signature check that follows
        // uses that key and algorithm and nothing from the header.
        let claims: Value =
            jsonwebtoken::dangerous::insecure_decode::<Value>(token).map_err(|_| JwtError::Invalid)?.claims;
        let iss = claims.get("iss").and_then(Value::as_str).ok_or(JwtError::Invalid)?;
        let issuer = self.issuers.get(iss).ok_or(JwtError::Invalid)?;
        let data =
            jsonwebtoken::decode::<Value>(token, &issuer.key, &issuer.validation).map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => JwtError::Expired,
                _ => JwtError::Invalid,
            })?;
        let subject =
            data.claims.get("sub").and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or(JwtError::Invalid)?;
        let role = match data.claims.get(&issuer.role_claim) {
            None => Role::User,
            Some(v) => v.as_str().and_then(Role::parse).ok_or(JwtError::Invalid)?,
        };
        Ok(JwtIdentity {
            subject: subject.to_string(),
            role,
            issued_at: data.claims.get("iat").and_then(Value::as_i64),
        })
    }
}

/// The subject of a token, unverified: for the audit log of a refused token only.
pub fn unverified_subject(token: &str) -> Option<String> {
    let claims: Value = jsonwebtoken::dangerous::insecure_decode::<Value>(token).ok()?.claims;
    let sub = claims.get("sub")?.as_str()?;
    Some(sub.chars().take(64).filter(|c| !c.is_control()).collect())
}

fn issuer(c: &IssuerConfig, leeway: u64) -> Result<Issuer, JwtConfigError> {
    let err = |reason: &str| JwtConfigError { issuer: c.issuer.clone(), reason: reason.into() };
    let pem = || c.public_key_pem.as_deref().map(str::as_bytes).ok_or_else(|| err("public_key_pem is required"));
    let (alg, key) = match c.algorithm {
        JwtAlgorithm::HS256 => {
            let secret = c
                .secret
                .as_ref()
                .filter(|s| s.expose().len() >= 32)
                .ok_or_else(|| err("secret of >= 32 bytes is required"))?;
            (Algorithm::HS256, DecodingKey::from_secret(secret.expose().as_bytes()))
        }
        JwtAlgorithm::RS256 => (Algorithm::RS256, DecodingKey::from_rsa_pem(pem()?).map_err(|e| err(&e.to_string()))?),
        JwtAlgorithm::ES256 => (Algorithm::ES256, DecodingKey::from_ec_pem(pem()?).map_err(|e| err(&e.to_string()))?),
        JwtAlgorithm::EdDSA => (Algorithm::EdDSA, DecodingKey::from_ed_pem(pem()?).map_err(|e| err(&e.to_string()))?),
    };
    if c.audiences.is_empty() {
        return Err(err("audiences must not be empty"));
    }
    let mut v = Validation::new(alg);
    v.leeway = leeway;
    v.validate_nbf = true;
    v.set_issuer(&[&c.issuer]);
    v.set_audience(&c.audiences);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    Ok(Issuer { key, validation: v, role_claim: c.role_claim.clone() })
}
