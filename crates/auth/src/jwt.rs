//! JWT verification against configured issuers, each with one pinned algorithm and key.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde_json::Value;

use crate::config::{IssuerConfig, JwtAlgorithm, JwtConfig};
use crate::db::Role;
use crate::jwks::{self, KeySet, Refresh, RemoteJwks};

/// Verified identity from a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtIdentity {
    /// `iss`, the configured issuer it matched.
    pub issuer: String,
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

/// Keys known at start, or a set fetched from the issuer's URL.
enum Keys {
    Fixed(KeySet),
    Remote(Box<RemoteJwks>),
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
        let refresh = Refresh { ttl: config.jwks_cache_ttl, min_interval: config.jwks_refetch_interval };
        let mut issuers = HashMap::new();
        for c in &config.issuers {
            issuers.insert(c.issuer.clone(), issuer(c, leeway, refresh)?);
        }
        Ok(Self { issuers })
    }

    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// Verifies signature (with the issuer's pinned algorithm only), `exp`, `nbf`, `iss`, `aud`.
    pub async fn verify(&self, token: &str) -> Result<JwtIdentity, JwtError> {
        // The issuer is read unverified only to pick the key; the signature check that follows
        // uses that key and algorithm and nothing from the header.
        let claims: Value =
            jsonwebtoken::dangerous::insecure_decode::<Value>(token).map_err(|_| JwtError::Invalid)?.claims;
        let iss = claims.get("iss").and_then(Value::as_str).ok_or(JwtError::Invalid)?;
        let (iss, issuer) = self.issuers.get_key_value(iss).ok_or(JwtError::Invalid)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Invalid)?;
        let kid = header.kid.as_deref();
        let data = match &issuer.keys {
            Keys::Fixed(set) => decode(token, set.for_kid(kid), &issuer.validation)?,
            Keys::Remote(remote) => {
                let set = remote.keys_for(kid).await.ok_or(JwtError::Invalid)?;
                decode(token, set.for_kid(kid), &issuer.validation)?
            }
        };
        let subject =
            data.claims.get("sub").and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or(JwtError::Invalid)?;
        let role = match data.claims.get(&issuer.role_claim) {
            None => Role::User,
            Some(v) => v.as_str().and_then(Role::parse).ok_or(JwtError::Invalid)?,
        };
        Ok(JwtIdentity {
            issuer: iss.clone(),
            subject: subject.to_string(),
            role,
            issued_at: data.claims.get("iat").and_then(Value::as_i64),
        })
    }
}

fn decode(
    token: &str,
    key: Option<&DecodingKey>,
    validation: &Validation,
) -> Result<jsonwebtoken::TokenData<Value>, JwtError> {
    let key = key.ok_or(JwtError::Invalid)?;
    jsonwebtoken::decode::<Value>(token, key, validation).map_err(|e| match e.kind() {
        ErrorKind::ExpiredSignature => JwtError::Expired,
        _ => JwtError::Invalid,
    })
}

/// The subject of a token, unverified: for the audit log of a refused token only.
pub fn unverified_subject(token: &str) -> Option<String> {
    let claims: Value = jsonwebtoken::dangerous::insecure_decode::<Value>(token).ok()?.claims;
    let sub = claims.get("sub")?.as_str()?;
    Some(sub.chars().take(64).filter(|c| !c.is_control()).collect())
}

fn issuer(c: &IssuerConfig, leeway: u64, refresh: Refresh) -> Result<Issuer, JwtConfigError> {
    let err = |reason: &str| JwtConfigError { issuer: c.issuer.clone(), reason: reason.into() };
    let alg = match c.algorithm {
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
    };
    let keys = match (c.algorithm, &c.public_key_pem, &c.jwks_file, &c.jwks_url) {
        (JwtAlgorithm::HS256, _, _, _) => {
            let secret = c
                .secret
                .as_ref()
                .filter(|s| s.expose().len() >= 32)
                .ok_or_else(|| err("secret of >= 32 bytes is required"))?;
            Keys::Fixed(KeySet::One(DecodingKey::from_secret(secret.expose().as_bytes())))
        }
        (_, Some(pem), None, None) => {
            Keys::Fixed(KeySet::One(pem_key(c.algorithm, pem.as_bytes()).map_err(|e| err(&e.to_string()))?))
        }
        (_, None, Some(path), None) => {
            let text = std::fs::read_to_string(path).map_err(|e| err(&format!("jwks_file {}: {e}", path.display())))?;
            Keys::Fixed(
                jwks::parse(&text, c.algorithm).map_err(|e| err(&format!("jwks_file {}: {e}", path.display())))?,
            )
        }
        (_, None, None, Some(url)) => {
            let ca = match &c.jwks_ca_file {
                Some(path) => {
                    Some(std::fs::read(path).map_err(|e| err(&format!("jwks_ca_file {}: {e}", path.display())))?)
                }
                None => None,
            };
            Keys::Remote(Box::new(
                RemoteJwks::new(&c.issuer, url, ca.as_deref(), c.algorithm, refresh).map_err(|e| err(&e))?,
            ))
        }
        _ => return Err(err("exactly one of public_key_pem, jwks_file and jwks_url is required")),
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
