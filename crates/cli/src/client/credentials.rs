//! Where the client finds the engine and its key.
//!
//! The client file (`$COMPOZY_CLIENT_CONFIG`, else `$XDG_CONFIG_HOME/compozy/client.yaml`, else
//! `~/.config/compozy/client.yaml`) is YAML with `url` and `api_key`, both optional. It holds a
//! secret, so it must be readable by its owner only (mode 0600 or stricter): one that the group
//! or others may read or write is refused, as ssh refuses such a private key.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ClientError;

/// What a client request needs: the engine's base URL and, when known, a key.
#[derive(Debug)]
pub struct Settings {
    pub url: String,
    pub key: Option<String>,
    /// The client file's path, named in the hint of a 401.
    pub file: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFile {
    url: Option<String>,
    api_key: Option<String>,
}

/// `--url` (or `COMPOZY_URL`, through clap) wins over the file, which wins over `serve`'s default
/// listen address; `COMPOZY_API_KEY` wins over the file's key.
pub fn resolve(url: Option<String>) -> Result<Settings, ClientError> {
    let file = client_file();
    let stored = read(&file)?;
    let env_key = std::env::var("COMPOZY_API_KEY").ok().filter(|k| !k.trim().is_empty());
    let url = url
        .or(stored.url)
        .unwrap_or_else(|| format!("http://{}", compozy_server::config::DEFAULT_LISTEN))
        .trim_end_matches('/')
        .to_string();
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(ClientError::Setup(format!("--url must start with http:// or https://, not `{url}`")));
    }
    let key = env_key.or(stored.api_key).map(|k| k.trim().to_string());
    Ok(Settings { url, key, file })
}

/// The client file's path (it need not exist).
pub fn client_file() -> PathBuf {
    if let Some(p) = std::env::var_os("COMPOZY_CLIENT_CONFIG").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("compozy").join("client.yaml")
}

/// The file's settings; none when it does not exist. An unprotected file is refused.
fn read(path: &Path) -> Result<ClientFile, ClientError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ClientFile::default()),
        Err(e) => return Err(ClientError::Setup(format!("cannot read {}: {e}", path.display()))),
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ClientError::Setup(format!(
            "{} holds an API key but is open to other users (mode {mode:04o}); run `chmod 600 {}`",
            path.display(),
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| ClientError::Setup(format!("cannot read {}: {e}", path.display())))?;
    if text.trim().is_empty() {
        return Ok(ClientFile::default());
    }
    serde_saphyr::from_str(&text)
        .map_err(|e| ClientError::Setup(format!("{} is not a client file (`url`, `api_key`): {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(mode: u32, text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("client.yaml");
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        (dir, path)
    }

    #[test]
    fn only_a_file_its_owner_alone_can_read_is_used() {
        let (_d, path) = write(0o600, "url: http://h:1\napi_key: k\n");
        let f = read(&path).expect("0600 is accepted");
        assert_eq!((f.url.as_deref(), f.api_key.as_deref()), (Some("http://h:1"), Some("k")));
        for mode in [0o640, 0o604, 0o660, 0o644] {
            let (_d, path) = write(mode, "api_key: k\n");
            let err = read(&path).expect_err("refused").to_string();
            assert!(err.contains(&format!("{mode:04o}")) && err.contains("chmod 600"), "{err}");
        }
        assert!(read(Path::new("/nonexistent/compozy/client.yaml")).expect("absent is fine").api_key.is_none());
        let (_d, path) = write(0o600, "apikey: k\n");
        assert!(read(&path).is_err(), "unknown fields are refused");
    }
}
