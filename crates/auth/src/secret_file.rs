//! The HMAC server secret: from configuration, else generated once and kept in the data
//! directory (mode 0600) so keys survive restarts. Several instances must share one secret:
//! configure `auth.hmac_secret` for them.
//!
//! The file is published whole: written to a temporary file (`O_EXCL`, 0600), synced, then
//! moved into place with a rename that never replaces an existing file. Of two processes
//! starting together, one publishes and the other reads the published secret; neither can read
//! a half-written file or overwrite the other's.

use std::io::Write;
use std::path::Path;

use compozy_core::Secret;
use compozy_core::private_fs::{ensure_private_dir, restrict_file};

/// File name of the generated secret inside the data directory.
pub const SECRET_FILE: &str = "auth_hmac_secret";

/// Shortest secret accepted, from configuration or from the file.
pub const MIN_SECRET_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("auth secret file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("auth.hmac_secret must be at least 32 bytes")]
    TooShort,
    #[error(
        "auth secret file {path} holds fewer than 32 bytes; remove it to generate a new one (existing API keys stop working) or set auth.hmac_secret"
    )]
    FileTooShort { path: String },
    #[error(transparent)]
    Random(#[from] crate::keys::RandomError),
}

/// The configured secret, or the one kept in `data_dir` (created on first use).
pub fn resolve_hmac_secret(configured: Option<&Secret>, data_dir: &Path) -> Result<Secret, SecretError> {
    if let Some(s) = configured {
        return if s.expose().len() >= MIN_SECRET_LEN { Ok(s.clone()) } else { Err(SecretError::TooShort) };
    }
    let path = data_dir.join(SECRET_FILE);
    let io = |source| SecretError::Io { path: path.display().to_string(), source };
    if let Some(secret) = read_secret(&path)? {
        return Ok(secret);
    }
    ensure_private_dir(data_dir).map_err(io)?;
    let secret = crate::keys::random_secret()?;
    let mut file = tempfile::Builder::new().prefix(".auth_hmac_secret.").tempfile_in(data_dir).map_err(io)?;
    file.write_all(secret.as_bytes()).and_then(|()| file.as_file().sync_all()).map_err(io)?;
    match file.persist_noclobber(&path) {
        Ok(_) => {}
        // Another process published first: use theirs (complete, since published by rename).
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
            return read_secret(&path)?.ok_or_else(|| io(std::io::ErrorKind::NotFound.into()));
        }
        Err(e) => return Err(io(e.error)),
    }
    sync_dir(data_dir).map_err(io)?;
    tracing::info!(file = SECRET_FILE, "generated the API-key HMAC secret");
    Ok(Secret::new(secret))
}

/// The secret kept in `path`, `None` when there is no file yet.
fn read_secret(path: &Path) -> Result<Option<Secret>, SecretError> {
    let shown = || path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(s) if s.trim().len() >= MIN_SECRET_LEN => {
            restrict_file(path).map_err(|source| SecretError::Io { path: shown(), source })?;
            Ok(Some(Secret::new(s.trim())))
        }
        Ok(_) => Err(SecretError::FileTooShort { path: shown() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SecretError::Io { path: shown(), source }),
    }
}

/// Makes the new directory entry durable, so a crash after start-up cannot lose the secret
/// that keys were already hashed with.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
