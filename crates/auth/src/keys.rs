//! API keys: generation, format check and the keyed hash that is the only thing stored.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Every key starts with this, so secret scanners can find leaked keys.
pub const KEY_PREFIX: &str = "cpz_";
/// Random bytes per key: 256 bits, well beyond guessing, so a fast keyed hash suffices.
const KEY_BYTES: usize = 32;
/// `cpz_` + 43 base64url characters.
pub const KEY_LEN: usize = KEY_PREFIX.len() + 43;
/// Characters of the key kept in clear (table `prefix`, audit log): `cpz_` + 8, i.e. 48 bits
/// of the 256 — enough to tell keys apart, useless for guessing.
const SHOWN_LEN: usize = KEY_PREFIX.len() + 8;

/// HMAC-SHA-256 of a key under the server secret.
pub type KeyHash = [u8; 32];

#[derive(Debug, thiserror::Error)]
#[error("the system random generator failed")]
pub struct RandomError;

/// A new key in clear: shown to its owner once, never stored.
pub fn generate() -> Result<String, RandomError> {
    let mut bytes = [0u8; KEY_BYTES];
    SystemRandom::new().fill(&mut bytes).map_err(|_| RandomError)?;
    Ok(format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// Random bytes for a generated server secret.
pub fn random_secret() -> Result<String, RandomError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes).map_err(|_| RandomError)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `token` has the shape of one of our keys (cheap; no secret involved).
pub fn looks_like_key(token: &str) -> bool {
    token.len() == KEY_LEN
        && token.starts_with(KEY_PREFIX)
        && token.bytes().skip(KEY_PREFIX.len()).all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The part of a key that may be shown and logged.
pub fn shown_prefix(token: &str) -> &str {
    token.get(..SHOWN_LEN).unwrap_or(KEY_PREFIX)
}

/// Keys the HMAC with the server secret.
#[derive(Clone)]
pub struct KeyHasher {
    key: hmac::Key,
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHasher([redacted])")
    }
}

impl KeyHasher {
    pub fn new(server_secret: &[u8]) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, server_secret) }
    }

    pub fn hash(&self, token: &str) -> KeyHash {
        let tag = hmac::sign(&self.key, token.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let k = generate().expect("rng");
        assert!(looks_like_key(&k), "{}", k.len());
        assert_ne!(k, generate().expect("rng"));
        assert_eq!(shown_prefix(&k).len(), 12);
    }

    #[test]
    fn the_hash_depends_on_the_server_secret() {
        let k = generate().expect("rng");
        assert_ne!(KeyHasher::new(b"a").hash(&k), KeyHasher::new(b"b").hash(&k));
        assert_eq!(KeyHasher::new(b"a").hash(&k), KeyHasher::new(b"a").hash(&k));
    }
}
