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
    keys: Keys,
    validation: Validation,
    role_claim: String,
}

/// One key (a secret, a PEM, or a one-key JWKS without `kid`), or a JWKS chosen by `kid`.
enum Keys {
    One(DecodingKey),
    ByKid(HashMap<String, DecodingKey>),
}

impl Keys {
    fn for_token(&self, token: &str) -> Option<&DecodingKey> {
        match self {
            Keys::One(key) => Some(key),
            Keys::ByKid(keys) => keys.get(jsonwebtoken::decode_header(token).ok()?.kid.as_deref()?),
        }
    }
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
        let key = issuer.keys.for_token(token).ok_or(JwtError::Invalid)?;
        let data = jsonwebtoken::decode::<Value>(token, key, &issuer.validation).map_err(|e| match e.kind() {
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
    let alg = match c.algorithm {
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
    };
    let keys = match (c.algorithm, &c.public_key_pem, &c.jwks_file) {
        (JwtAlgorithm::HS256, _, _) => {
            let secret = c
                .secret
                .as_ref()
                .filter(|s| s.expose().len() >= 32)
                .ok_or_else(|| err("secret of >= 32 bytes is required"))?;
            Keys::One(DecodingKey::from_secret(secret.expose().as_bytes()))
        }
        (_, Some(pem), None) => Keys::One(pem_key(c.algorithm, pem.as_bytes()).map_err(|e| err(&e.to_string()))?),
        (_, None, Some(path)) => jwks_keys(path, c.algorithm).map_err(|e| err(&e))?,
        _ => return Err(err("exactly one of public_key_pem and jwks_file is required")),
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
    Ok(Issuer { keys, validation: v, role_claim: c.role_claim.clone() })
}

fn pem_key(algorithm: JwtAlgorithm, pem: &[u8]) -> jsonwebtoken::errors::Result<DecodingKey> {
    match algorithm {
        JwtAlgorithm::RS256 => DecodingKey::from_rsa_pem(pem),
        JwtAlgorithm::ES256 => DecodingKey::from_ec_pem(pem),
        JwtAlgorithm::EdDSA | JwtAlgorithm::HS256 => DecodingKey::from_ed_pem(pem),
    }
}

/// The keys of a JWKS file. Every key must be of the issuer's pinned algorithm's family (and,
/// when it names one, that algorithm): a symmetric or foreign key in the set is a start-up error,
/// never a way around the pin.
fn jwks_keys(path: &std::path::Path, algorithm: JwtAlgorithm) -> Result<Keys, String> {
    use jsonwebtoken::jwk::{AlgorithmParameters as P, JwkSet, KeyAlgorithm};
    let text = std::fs::read_to_string(path).map_err(|e| format!("jwks_file {}: {e}", path.display()))?;
    let set: JwkSet = serde_json::from_str(&text).map_err(|e| format!("jwks_file {}: {e}", path.display()))?;
    let (family_ok, named): (fn(&P) -> bool, KeyAlgorithm) = match algorithm {
        JwtAlgorithm::RS256 => (|p| matches!(p, P::RSA(_)), KeyAlgorithm::RS256),
        JwtAlgorithm::ES256 => (|p| matches!(p, P::EllipticCurve(_)), KeyAlgorithm::ES256),
        JwtAlgorithm::EdDSA => (|p| matches!(p, P::OctetKeyPair(_)), KeyAlgorithm::EdDSA),
        JwtAlgorithm::HS256 => return Err("jwks_file is for public-key algorithms".into()),
    };
    let mut by_kid = HashMap::new();
    for jwk in &set.keys {
        let kid = jwk.common.key_id.clone().unwrap_or_default();
        if !family_ok(&jwk.algorithm) || jwk.common.key_algorithm.is_some_and(|a| a != named) {
            return Err(format!("jwks_file key {kid:?} is not a {algorithm:?} key"));
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("jwks_file key {kid:?}: {e}"))?;
        by_kid.insert(kid, key);
    }
    match by_kid.len() {
        0 => Err("jwks_file has no keys".into()),
        1 if by_kid.contains_key("") => Ok(Keys::One(by_kid.into_values().next().ok_or("jwks_file has no keys")?)),
        _ if by_kid.contains_key("") => Err("jwks_file keys need a `kid` when there are several".into()),
        _ => Ok(Keys::ByKid(by_kid)),
    }
}
