//! TLS to PostgreSQL (`sslmode`, `sslrootcert`) and Redis (`rediss://`, CA, client certificate)
//! against servers this test starts on free ports with a CA it generates: connects with full
//! verification, refuses a wrong CA and refuses plain text.

#![cfg(unix)]

mod common;
mod tls;

use std::time::Duration;

use common::registry;
use compozy_core::Secret;
use compozy_store::{Cache, CacheConfig, RedisTls, Store, StoreConfig};
use compozy_testkit::service_missing;
use tls::{Pki, TlsPostgres, TlsRedis};

fn store_config(url: String) -> StoreConfig {
    StoreConfig { url: Some(Secret::new(url)), acquire_timeout: Duration::from_secs(5), ..StoreConfig::default() }
}

async fn connect_pg(url: String) -> Result<Store, String> {
    Store::connect(&store_config(url), std::path::Path::new("/nonexistent"), &registry())
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn postgres_over_tls_verifies_the_server_and_refuses_plain_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::generate(dir.path());
    let server = match TlsPostgres::start(dir.path(), &pki) {
        Ok(s) => s,
        Err(why) => return service_missing("PostgreSQL server binaries (initdb, pg_ctl)", why),
    };
    let ca = pki.path("ca.pem").display().to_string();
    let other = pki.path("other-ca.pem").display().to_string();

    // verify-full: the chain and the host name; the session is encrypted.
    let store = connect_pg(server.url("localhost", &format!("sslmode=verify-full&sslrootcert={ca}")))
        .await
        .expect("verify-full");
    let mut conn = store.acquire().await.expect("acquire");
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(conn.as_postgres().expect("postgres"))
        .await
        .expect("pg_stat_ssl");
    assert!(ssl, "the session is TLS");
    drop(conn);
    store.close().await;

    let refusals = [
        ("a CA that did not sign the server", format!("sslmode=verify-full&sslrootcert={other}")),
        ("verify-ca with the wrong CA", format!("sslmode=verify-ca&sslrootcert={other}")),
        ("plain text (the server only accepts TLS)", "sslmode=disable".to_string()),
    ];
    for (what, query) in refusals {
        let err = connect_pg(server.url("localhost", &query)).await.err().unwrap_or_else(|| panic!("{what} connected"));
        assert!(!err.contains("hunter2"), "{what}: no password in {err}");
    }
    // The certificate names `localhost`: verify-full refuses 127.0.0.1, verify-ca checks only the chain.
    let err = connect_pg(server.url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}"))).await.err();
    assert!(err.is_some(), "host name not in the certificate");
    let store =
        connect_pg(server.url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}"))).await.expect("verify-ca");
    store.close().await;
    // require: encrypted, no verification (libpq's meaning).
    connect_pg(server.url("localhost", "sslmode=require")).await.expect("require").close().await;
}

fn cache_config(url: String, tls: RedisTls) -> CacheConfig {
    CacheConfig {
        url: Some(Secret::new(url)),
        tls,
        connect_timeout: Duration::from_secs(3),
        pool_timeout: Duration::from_secs(3),
        ..CacheConfig::default()
    }
}

async fn connect_redis(url: String, tls: RedisTls) -> Result<Cache, String> {
    Cache::connect(&cache_config(url, tls), &registry()).await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn redis_over_tls_verifies_the_server_presents_a_client_certificate_and_refuses_plain_text() {
    if let Err(why) = TlsRedis::supported() {
        return service_missing("redis-server with TLS", why);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::generate(dir.path());
    let server = match TlsRedis::start(dir.path(), &pki) {
        Ok(s) => s,
        Err(why) => return service_missing("redis-server with TLS", why),
    };
    let tls = |ca: &str, client: bool| RedisTls {
        ca_file: Some(pki.path(ca)),
        cert_file: client.then(|| pki.path("client.pem")),
        key_file: client.then(|| pki.path("client.key")),
    };
    let url = |scheme: &str, port: u16| format!("{scheme}://:{}@localhost:{port}/0", tls::PASSWORD);

    let cache = connect_redis(url("rediss", server.tls_port), tls("ca.pem", true))
        .await
        .expect("rediss with CA and client cert");
    cache.set("tls-probe", b"v", Duration::from_secs(30)).await.expect("set");
    assert_eq!(cache.get("tls-probe").await.expect("get").as_deref(), Some(&b"v"[..]));

    let refusals = [
        ("a CA that did not sign the server", url("rediss", server.tls_port), tls("other-ca.pem", true)),
        ("no client certificate", url("rediss", server.tls_port), tls("ca.pem", false)),
        ("plain text to the TLS port", url("redis", server.tls_port), RedisTls::default()),
        ("a plain-text server for a rediss:// URL", url("rediss", server.plain_port), tls("ca.pem", true)),
        ("TLS files with a redis:// URL", url("redis", server.plain_port), tls("ca.pem", true)),
    ];
    for (what, url, tls) in refusals {
        let err = connect_redis(url, tls).await.err().unwrap_or_else(|| panic!("{what} connected"));
        assert!(!err.contains("hunter2"), "{what}: no password in {err}");
    }
}
