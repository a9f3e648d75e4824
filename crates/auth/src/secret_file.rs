//! The HMAC server secret: from configuration, else generated once and kept in the data
//! directory (mode 0600) so keys survive restarts. Several instances must share one secret:
//! configure `auth.hmac_secret` for them.

use std::io::Write;
use std::path::Path;

use compozy_core::Secret;

/// File name of the generated secret inside the data directory.
pub const SECRET_FILE: &str = "auth_hmac_secret";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("auth secret file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("auth.hmac_secret must be at least 32 bytes")]
    TooShort,
    #[error(transparent)]
    Random(#[from] crate::keys::RandomError),
}

/// The configured secret, or the one kept in `data_dir` (created on first use).
pub fn resolve_hmac_secret(configured: Option<&Secret>, data_dir: &Path) -> Result<Secret, SecretError> {
    if let Some(s) = configured {
        return if s.expose().len() >= 32 { Ok(s.clone()) } else { Err(SecretError::TooShort) };
    }
    let path = data_dir.join(SECRET_FILE);
    let io = |source| SecretError::Io { path: path.display().to_string(), source };
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 32 => return Ok(Secret::new(s.trim())),
        Ok(_) => return Err(SecretError::TooShort),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        Err(_) => {}
    }
    let secret = crate::keys::random_secret()?;
    std::fs::create_dir_all(data_dir).map_err(io)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = match options.open(&path) {
        Ok(f) => f,
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return std::fs::read_to_string(&path).map(|s| Secret::new(s.trim())).map_err(io);
        }
        Err(e) => return Err(io(e)),
    };
    file.write_all(secret.as_bytes()).and_then(|()| file.sync_all()).map_err(io)?;
    tracing::info!(path = %path.display(), "generated the API-key HMAC secret");
    Ok(Secret::new(secret))
}
