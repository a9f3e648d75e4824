//! `rediss://`: TLS to Redis with rustls (ring), trusting the system roots or `redis.tls.ca_file`,
//! with an optional client certificate. No mode skips verification: the redis crate's
//! `#insecure` URL fragment needs a feature this build does not enable, so such a URL is refused.

use std::path::Path;

use redis::{Client, ClientTlsConfig, TlsCertificates};

use crate::config::{RedisTls, mask_url};
use crate::error::CacheError;

/// A Redis client for `url`: TLS with the configured files for `rediss://`, plain for `redis://`.
pub(crate) fn client(url: &str, tls: &RedisTls) -> Result<Client, CacheError> {
    let config = |msg: String| CacheError::Config(msg);
    let parse = |e: redis::RedisError| config(format!("cannot parse cache url {}: {e}", mask_url(url)));
    if !url.starts_with("rediss://") {
        if tls.is_set() {
            return Err(config("redis.tls.* is set but redis.url is not a rediss:// URL".into()));
        }
        return Client::open(url).map_err(parse);
    }
    // The redis crate builds its rustls config with the process-wide provider: make it ring, the
    // workspace's only one, whoever asks first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client_tls = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => Some(ClientTlsConfig {
            client_cert: read("redis.tls.cert_file", cert)?,
            client_key: read("redis.tls.key_file", key)?,
        }),
        (None, None) => None,
        _ => return Err(config("redis.tls.cert_file and redis.tls.key_file go together".into())),
    };
    let root_cert = tls.ca_file.as_deref().map(|f| read("redis.tls.ca_file", f)).transpose()?;
    Client::build_with_tls(url, TlsCertificates { client_tls, root_cert }).map_err(parse)
}

/// The file's bytes; errors name the key, never the content.
fn read(key: &str, path: &Path) -> Result<Vec<u8>, CacheError> {
    std::fs::read(path).map_err(|e| CacheError::Config(format!("{key}: cannot read {}: {}", path.display(), e.kind())))
}
