//! JWKS from an `https://` URL: a local TLS server (certificates from a CA the test makes with
//! `openssl`) serves the set and rotates it; the verifier fetches it once, refetches on an
//! unknown `kid` at most once per `jwks_refetch_interval` and when `jwks_cache_ttl` has passed,
//! and trusts only the configured CA.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use compozy_auth::{AuthConfig, IssuerConfig, JwtAlgorithm};
use http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl (installed by .ci/install)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA and a certificate for `localhost` / 127.0.0.1 signed by it: (ca.pem, srv.pem, srv.key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=compozy-test-ca"]);
    ca.extend(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"]);
    openssl(dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend(["-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=localhost"]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    (dir.join("ca.pem"), dir.join("srv.pem"), dir.join("srv.key"))
}

/// A fresh Ed25519 key: its signing key and its public JWK for `kid`.
fn ed_key(dir: &Path, kid: &str) -> (EncodingKey, serde_json::Value) {
    let pem = format!("{kid}.pem");
    let der = format!("{kid}.der");
    openssl(dir, &["genpkey", "-algorithm", "ed25519", "-out", &pem]);
    openssl(dir, &["pkey", "-in", &pem, "-pubout", "-outform", "DER", "-out", &der]);
    let spki = std::fs::read(dir.join(&der)).expect("der");
    let x = URL_SAFE_NO_PAD.encode(&spki[spki.len() - 32..]);
    let key = EncodingKey::from_ed_pem(&std::fs::read(dir.join(&pem)).expect("pem")).expect("ed key");
    (key, json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": kid, "x": x}))
}

/// An HTTPS server answering every request with the current JWKS; counts the requests served.
struct JwksServer {
    port: u16,
    body: Arc<Mutex<String>>,
    served: Arc<AtomicUsize>,
}

impl JwksServer {
    fn start(cert: &Path, key: &Path) -> JwksServer {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_file_iter(cert).expect("cert").collect::<Result<Vec<_>, _>>().expect("certs");
        let key = PrivateKeyDer::from_pem_file(key).expect("key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server config");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let body = Arc::new(Mutex::new(String::new()));
        let served = Arc::new(AtomicUsize::new(0));
        let (b, s) = (body.clone(), served.clone());
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let Ok(conn) = rustls::ServerConnection::new(config.clone()) else { continue };
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                if !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    continue; // the handshake or the request failed (an untrusting client)
                }
                s.fetch_add(1, Ordering::SeqCst);
                let text = b.lock().expect("lock").clone();
                let _ = write!(
                    tls,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                    text.len()
                );
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });
        JwksServer { port, body, served }
    }

    fn serve(&self, keys: &[&serde_json::Value]) {
        *self.body.lock().expect("lock") = json!({ "keys": keys }).to_string();
    }

    fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

fn url_issuer(name: &str, url: String, ca: Option<PathBuf>) -> IssuerConfig {
    IssuerConfig {
        issuer: name.into(),
        audiences: vec!["compozy".into()],
        algorithm: JwtAlgorithm::EdDSA,
        secret: None,
        public_key_pem: None,
        jwks_file: None,
        jwks_url: Some(url),
        jwks_ca_file: ca,
        role_claim: "role".into(),
    }
}

fn token(iss: &str, key: &EncodingKey, kid: &str) -> String {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let claims = json!({"iss": iss, "aud": "compozy", "sub": "alice", "exp": now + 600});
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.into());
    encode(&header, &claims, key).expect("sign")
}

async fn status(h: &Harness, token: &str) -> StatusCode {
    h.call(get_from("/api/v0/things/1", "192.0.2.1", &[("authorization", &bearer(token))])).await.0
}

#[tokio::test]
async fn the_jwks_is_fetched_cached_refetched_on_rotation_and_pinned_to_its_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = certificates(dir.path());
    let server = JwksServer::start(&cert, &key);
    let (k1, jwk1) = ed_key(dir.path(), "k1");
    let (k2, jwk2) = ed_key(dir.path(), "k2");
    let (k3, jwk3) = ed_key(dir.path(), "k3");
    server.serve(&[&jwk1]);
    let url = format!("https://localhost:{}/.well-known/jwks.json", server.port);
    let mut c = AuthConfig::default();
    c.jwt.issuers = vec![
        url_issuer("https://idp.example", url.clone(), Some(ca)),
        url_issuer("https://untrusted.example", url, None),
    ];
    c.jwt.jwks_cache_ttl = Duration::from_secs(2);
    c.jwt.jwks_refetch_interval = Duration::from_secs(1);
    c.rate_limit.auth_failures.requests = 1000; // the refusals below are the point, not the guard
    let h = harness(c).await;
    let iss = "https://idp.example";

    assert_eq!(status(&h, &token(iss, &k1, "k1")).await, StatusCode::OK, "fetched at first use");
    assert_eq!(status(&h, &token(iss, &k1, "k1")).await, StatusCode::OK);
    assert_eq!(server.served(), 1, "then cached");
    for i in 0..10 {
        assert_eq!(status(&h, &token(iss, &k1, &format!("made-up-{i}"))).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(server.served(), 1, "unknown kids refetch at most once per jwks_refetch_interval");

    // The provider rotates: k1 retired, k2 published.
    server.serve(&[&jwk2]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(status(&h, &token(iss, &k2, "k2")).await, StatusCode::OK, "an unknown kid refetches the set");
    assert_eq!(server.served(), 2);
    assert_eq!(status(&h, &token(iss, &k1, "k1")).await, StatusCode::UNAUTHORIZED, "the retired key is gone");
    // A token naming k2 but signed by another key is still refused.
    assert_eq!(status(&h, &token(iss, &k3, "k2")).await, StatusCode::UNAUTHORIZED);

    // Past the cache lifetime, a known kid refetches too.
    server.serve(&[&jwk2, &jwk3]);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(status(&h, &token(iss, &k2, "k2")).await, StatusCode::OK);
    assert_eq!(server.served(), 3, "the expired cache was refreshed");
    assert_eq!(status(&h, &token(iss, &k3, "k3")).await, StatusCode::OK, "with the key published since");
    assert_eq!(server.served(), 3);

    // The same URL without the test CA: the system roots do not trust it, nothing is served.
    let other = "https://untrusted.example";
    assert_eq!(status(&h, &token(other, &k2, "k2")).await, StatusCode::UNAUTHORIZED);
    assert_eq!(server.served(), 3, "the TLS handshake was refused");
}

#[test]
fn a_jwks_url_must_be_https() {
    for url in ["http://127.0.0.1:1/jwks.json", "file:///etc/jwks.json", "not a url"] {
        let c = compozy_auth::JwtConfig {
            issuers: vec![url_issuer("https://idp.example", url.into(), None)],
            ..Default::default()
        };
        assert!(compozy_auth::jwt::JwtVerifier::new(&c).is_err(), "{url}");
    }
}
