//! The audit log: one line per refusal with reason, masked address, key prefix and route
//! template, and never a key, a token or a full address.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use compozy_auth::{AuthConfig, Role};
use http::StatusCode;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn refusals_are_audited_without_secrets() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let h = harness(AuthConfig::default()).await;
    let (_, key) = h.user(Role::User).await;
    // A key that differs from the real one only in its last character.
    let mut wrong = key.clone();
    wrong.pop();
    wrong.push(if key.ends_with('A') { 'B' } else { 'A' });
    let (s, ..) = h.call(get_from("/api/v0/things/42", "203.0.113.77", &[("authorization", &bearer(&wrong))])).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, ..) = h.call(get_from("/api/v0/things/42", "203.0.113.77", &[("authorization", "Bearer a.b.c")])).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let log = String::from_utf8(buf.0.lock().expect("lock").clone()).expect("utf8");
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("audit") && l.contains("authn_fail")).collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(lines[0].contains("invalid_credentials") && lines[0].contains("203.0.113.0"), "{log}");
    assert!(lines[0].contains(&key[..12]) && lines[0].contains("/api/v0/things/{id}"), "{log}");
    assert!(!log.contains(&key[12..]) && !log.contains(&wrong[12..]), "no key material: {log}");
    assert!(!log.contains("203.0.113.77") && !log.contains("/things/42"), "no full address or raw path: {log}");
}
