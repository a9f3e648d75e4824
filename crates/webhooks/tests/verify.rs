//! Every scheme against its provider's published example where one exists, and against
//! signatures generated here; wrong secrets, stale and future timestamps, truncated and
//! non-hex signatures, missing headers.

use std::time::Duration;

use compozy_autoload::resources::{Encoding, Verify, VerifyMethod};
use compozy_core::Secret;
use compozy_webhooks::verify::{VerifyError, sign, verify};
use http::{HeaderMap, HeaderName, HeaderValue};

fn cfg(method: VerifyMethod, secrets: &[&str]) -> Verify {
    Verify {
        method,
        secret: secrets.first().map(|s| Secret::new(*s)),
        secrets: secrets.iter().skip(1).map(|s| Secret::new(*s)).collect(),
        ..Verify::default()
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(k, v)| (HeaderName::from_bytes(k.as_bytes()).expect("name"), HeaderValue::from_str(v).expect("value")))
        .collect()
}

const NOW: i64 = 1_700_000_000;

// --- GitHub ------------------------------------------------------------------------------------

#[test]
fn github_published_example() {
    // docs.github.com "Validating webhook deliveries": secret, payload and signature as published.
    let c = cfg(VerifyMethod::Github, &["It's a Secret to Everybody"]);
    let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let h = headers(&[("X-Hub-Signature-256", sig)]);
    assert_eq!(verify(&c, &h, b"Hello, World!", NOW), Ok(()));
    assert_eq!(sign::github("It's a Secret to Everybody", b"Hello, World!"), sig);
    assert_eq!(verify(&c, &h, b"Hello, World?", NOW), Err(VerifyError::Mismatch));
}

#[test]
fn github_failures() {
    let c = cfg(VerifyMethod::Github, &["s3cret"]);
    let body = br#"{"a":1}"#;
    let good = sign::github("s3cret", body);
    assert_eq!(verify(&c, &headers(&[("x-hub-signature-256", &good)]), body, NOW), Ok(()));
    let wrong = sign::github("other", body);
    assert_eq!(verify(&c, &headers(&[("x-hub-signature-256", &wrong)]), body, NOW), Err(VerifyError::Mismatch));
    assert_eq!(verify(&c, &HeaderMap::new(), body, NOW), Err(VerifyError::MissingHeader));
    let truncated = &good[..good.len() - 2];
    assert_eq!(verify(&c, &headers(&[("x-hub-signature-256", truncated)]), body, NOW), Err(VerifyError::Malformed));
    let non_hex = format!("sha256={}", "zz".repeat(32));
    assert_eq!(verify(&c, &headers(&[("x-hub-signature-256", &non_hex)]), body, NOW), Err(VerifyError::Malformed));
    let bare = good.trim_start_matches("sha256=");
    assert_eq!(verify(&c, &headers(&[("x-hub-signature-256", bare)]), body, NOW), Err(VerifyError::Malformed));
}

#[test]
fn rotation_accepts_any_configured_secret() {
    let c = cfg(VerifyMethod::Github, &["old", "new"]);
    for s in ["old", "new"] {
        let h = headers(&[("x-hub-signature-256", &sign::github(s, b"x"))]);
        assert_eq!(verify(&c, &h, b"x", NOW), Ok(()), "secret {s}");
    }
    let h = headers(&[("x-hub-signature-256", &sign::github("retired", b"x"))]);
    assert_eq!(verify(&c, &h, b"x", NOW), Err(VerifyError::Mismatch));
}

// --- generic HMAC ------------------------------------------------------------------------------

#[test]
fn hmac_hex_base64_and_prefix() {
    let body = b"payload";
    let mut c = cfg(VerifyMethod::Hmac, &["k"]);
    c.header = Some("X-Signature".into());
    let hex = sign::hmac_hex("k", body);
    assert_eq!(verify(&c, &headers(&[("x-signature", &hex)]), body, NOW), Ok(()));
    assert_eq!(verify(&c, &headers(&[("x-signature", &hex[..63])]), body, NOW), Err(VerifyError::Malformed));
    assert_eq!(verify(&c, &headers(&[("x-other", &hex)]), body, NOW), Err(VerifyError::MissingHeader));

    c.prefix = Some("sha256=".into());
    assert_eq!(verify(&c, &headers(&[("x-signature", &hex)]), body, NOW), Err(VerifyError::Malformed));
    assert_eq!(verify(&c, &headers(&[("x-signature", &format!("sha256={hex}"))]), body, NOW), Ok(()));

    c.prefix = None;
    c.encoding = Encoding::Base64;
    let b64 = sign::hmac_base64("k", body);
    assert_eq!(verify(&c, &headers(&[("x-signature", &b64)]), body, NOW), Ok(()));
    assert_eq!(verify(&c, &headers(&[("x-signature", &hex)]), body, NOW), Err(VerifyError::Malformed));
    let wrong = sign::hmac_base64("j", body);
    assert_eq!(verify(&c, &headers(&[("x-signature", &wrong)]), body, NOW), Err(VerifyError::Mismatch));
}

// --- Stripe ------------------------------------------------------------------------------------

const STRIPE_BODY: &[u8] =
    br#"{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","type":"payment_intent.succeeded"}"#;

#[test]
fn stripe_reference_vector() {
    // Stripe publishes the scheme (HMAC-SHA256 of "{t}.{body}" keyed with the whole `whsec_`
    // string, hex) but no fixed example; this digest was computed independently with Python's
    // hmac module, not with the code under test.
    let sig = "74a8b51ec50b32dbb891e6cca0a93215d89cdff98e9e021774659a62080e1cb9";
    let c = cfg(VerifyMethod::Stripe, &["whsec_test_secret"]);
    let h = headers(&[("Stripe-Signature", &format!("t=1614556800,v1={sig}"))]);
    assert_eq!(verify(&c, &h, STRIPE_BODY, 1_614_556_800 + 10), Ok(()));
    assert_eq!(sign::stripe(&["whsec_test_secret"], 1_614_556_800, STRIPE_BODY), format!("t=1614556800,v1={sig}"));
}

#[test]
fn stripe_tolerance_both_ways_and_candidates() {
    let c = cfg(VerifyMethod::Stripe, &["whsec_x"]);
    let at = |ts: i64| headers(&[("stripe-signature", &sign::stripe(&["whsec_x"], ts, b"{}"))]);
    assert_eq!(verify(&c, &at(NOW - 300), b"{}", NOW), Ok(()));
    assert_eq!(verify(&c, &at(NOW - 301), b"{}", NOW), Err(VerifyError::Stale));
    assert_eq!(verify(&c, &at(NOW + 301), b"{}", NOW), Err(VerifyError::Future));
    let mut tight = c.clone();
    tight.tolerance = Some(Duration::from_secs(10));
    assert_eq!(verify(&tight, &at(NOW - 11), b"{}", NOW), Err(VerifyError::Stale));

    // A garbage candidate before the good one does not abort (the Go engine's bug).
    let good = sign::stripe(&["whsec_x"], NOW, b"{}");
    let v1 = good.split_once(",v1=").expect("v1").1;
    let h = headers(&[("stripe-signature", &format!("t={NOW},v1=nothex,v0=abc,v1={v1}"))]);
    assert_eq!(verify(&c, &h, b"{}", NOW), Ok(()));
    // Several v1 during a secret roll: the one for our secret is second.
    let rolled = headers(&[("stripe-signature", &sign::stripe(&["whsec_other", "whsec_x"], NOW, b"{}"))]);
    assert_eq!(verify(&c, &rolled, b"{}", NOW), Ok(()));

    let wrong = headers(&[("stripe-signature", &sign::stripe(&["whsec_y"], NOW, b"{}"))]);
    assert_eq!(verify(&c, &wrong, b"{}", NOW), Err(VerifyError::Mismatch));
    let no_v1 = headers(&[("stripe-signature", &format!("t={NOW}"))]);
    assert_eq!(verify(&c, &no_v1, b"{}", NOW), Err(VerifyError::Malformed));
    let no_t = headers(&[("stripe-signature", &format!("v1={v1}"))]);
    assert_eq!(verify(&c, &no_t, b"{}", NOW), Err(VerifyError::Malformed));
    let bad_t = headers(&[("stripe-signature", &format!("t=soon,v1={v1}"))]);
    assert_eq!(verify(&c, &bad_t, b"{}", NOW), Err(VerifyError::Malformed));
    let truncated = headers(&[("stripe-signature", &format!("t={NOW},v1={}", &v1[..40]))]);
    assert_eq!(verify(&c, &truncated, b"{}", NOW), Err(VerifyError::Malformed));
    assert_eq!(verify(&c, &HeaderMap::new(), b"{}", NOW), Err(VerifyError::MissingHeader));
}

// --- Standard Webhooks ---------------------------------------------------------------------------

#[test]
fn standard_published_example() {
    // The Standard Webhooks / Svix documentation's example: secret, id, timestamp, payload, signature.
    let c = cfg(VerifyMethod::Standard, &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]);
    let body = br#"{"test": 2432232314}"#;
    let sig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    let h = headers(&[
        ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
        ("webhook-timestamp", "1614265330"),
        ("webhook-signature", sig),
    ]);
    assert_eq!(verify(&c, &h, body, 1_614_265_330), Ok(()));
    let ours =
        sign::standard("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body);
    assert_eq!(ours.as_deref(), Some(sig));
    // The same delivery an hour later is a replay.
    assert_eq!(verify(&c, &h, body, 1_614_265_330 + 3600), Err(VerifyError::Stale));
}

#[test]
fn standard_several_signatures_and_failures() {
    let secret = "whsec_c2VjcmV0LWtleS1ieXRlcy0xMjM0NTY3OA==";
    let c = cfg(VerifyMethod::Standard, &[secret]);
    let sig = sign::standard(secret, "msg_1", NOW, b"{}").expect("sig");
    let h = |sigs: &str, ts: i64| {
        headers(&[("webhook-id", "msg_1"), ("webhook-timestamp", &ts.to_string()), ("webhook-signature", sigs)])
    };
    assert_eq!(verify(&c, &h(&format!("v1,garbage!! v1a,xyz {sig}"), NOW), b"{}", NOW), Ok(()));
    assert_eq!(verify(&c, &h(&sig, NOW), b"{}", NOW + 301), Err(VerifyError::Stale));
    let future = sign::standard(secret, "msg_1", NOW + 301, b"{}").expect("sig");
    assert_eq!(verify(&c, &h(&future, NOW + 301), b"{}", NOW), Err(VerifyError::Future));
    let other = sign::standard("whsec_b3RoZXIta2V5", "msg_1", NOW, b"{}").expect("sig");
    assert_eq!(verify(&c, &h(&other, NOW), b"{}", NOW), Err(VerifyError::Mismatch));
    assert_eq!(verify(&c, &h(&sig[..20], NOW), b"{}", NOW), Err(VerifyError::Malformed));
    // The id is signed: another id with the same signature fails.
    let moved =
        headers(&[("webhook-id", "msg_2"), ("webhook-timestamp", &NOW.to_string()), ("webhook-signature", &sig)]);
    assert_eq!(verify(&c, &moved, b"{}", NOW), Err(VerifyError::Mismatch));
    let missing = headers(&[("webhook-id", "msg_1"), ("webhook-signature", &sig)]);
    assert_eq!(verify(&c, &missing, b"{}", NOW), Err(VerifyError::MissingHeader));
}

// --- Slack ---------------------------------------------------------------------------------------

#[test]
fn slack_published_example() {
    // api.slack.com "Verifying requests from Slack": signing secret, timestamp, body and signature.
    let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    let c = cfg(VerifyMethod::Slack, &["8f742231b10e8888abcd99yyyzzz85a5"]);
    let sig = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    let h = headers(&[("X-Slack-Request-Timestamp", "1531420618"), ("X-Slack-Signature", sig)]);
    assert_eq!(verify(&c, &h, body, 1_531_420_618), Ok(()));
    assert_eq!(sign::slack("8f742231b10e8888abcd99yyyzzz85a5", 1_531_420_618, body), sig);
    assert_eq!(verify(&c, &h, body, 1_531_420_618 + 301), Err(VerifyError::Stale));
    assert_eq!(verify(&c, &h, body, 1_531_420_618 - 301), Err(VerifyError::Future));
}

#[test]
fn slack_failures() {
    let c = cfg(VerifyMethod::Slack, &["s"]);
    let sig = sign::slack("s", NOW, b"{}");
    let ts = NOW.to_string();
    let h = |sig: &str| headers(&[("x-slack-request-timestamp", &ts), ("x-slack-signature", sig)]);
    assert_eq!(verify(&c, &h(&sig), b"{}", NOW), Ok(()));
    assert_eq!(verify(&c, &h(&sign::slack("t", NOW, b"{}")), b"{}", NOW), Err(VerifyError::Mismatch));
    assert_eq!(verify(&c, &h(&sig[..30]), b"{}", NOW), Err(VerifyError::Malformed));
    assert_eq!(verify(&c, &h(&sig.replace("v0=", "v1=")), b"{}", NOW), Err(VerifyError::Malformed));
    let only_sig = headers(&[("x-slack-signature", &sig)]);
    assert_eq!(verify(&c, &only_sig, b"{}", NOW), Err(VerifyError::MissingHeader));
}

#[test]
fn none_accepts_anything_and_odd_input_never_panics() {
    assert_eq!(verify(&Verify::default(), &HeaderMap::new(), b"", NOW), Ok(()));
    let c = cfg(VerifyMethod::Stripe, &["k"]);
    for v in ["", ",", "t=", "t=1,v1=", "=", "t=99999999999999999999999,v1=00", "v1=ä"] {
        let Ok(value) = HeaderValue::from_str(v) else { continue };
        let mut h = HeaderMap::new();
        h.insert("stripe-signature", value);
        assert!(verify(&c, &h, b"{}", NOW).is_err(), "{v:?}");
    }
    let mut h = HeaderMap::new();
    h.insert("stripe-signature", HeaderValue::from_bytes(b"t=1,v1=\xff").expect("opaque"));
    assert_eq!(verify(&c, &h, b"{}", NOW), Err(VerifyError::Malformed));
}
