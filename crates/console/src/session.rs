//! Who is looking: the session cookie turned into a [`Viewer`] on every page, the cookie's
//! flags, CSRF and origin checks on every action, and the security headers of every response.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Form, FromRequest, FromRequestParts, MatchedPath, Request};
use axum::response::{IntoResponse, Response};
use compozy_auth::{Method, Reason, Role};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::Console;
use crate::config::SecureCookie;
pub use crate::viewer::{Refused, Viewer};
use crate::views;

pub const COOKIE: &str = "compozy_console";

/// Facts of the request the handlers need besides its body: the socket peer, the route
/// template and the headers.
#[derive(Debug)]
pub struct Meta {
    pub peer: Option<SocketAddr>,
    pub route: String,
    pub headers: HeaderMap,
}

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Meta { peer: peer(parts), route: route(parts), headers: parts.headers.clone() })
    }
}

pub(crate) fn peer(parts: &Parts) -> Option<SocketAddr> {
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

pub(crate) fn route(parts: &Parts) -> String {
    parts.extensions.get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_string()
}

/// The session cookie's value, if the request carries one.
pub fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_string())
}

impl FromRequestParts<Console> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Self::Rejection> {
        let Some(access) = console.access() else {
            // Authentication is off (loopback or `auth.allow_insecure`): everyone acts as admin,
            // and forms still carry a per-process token, so other sites cannot post them.
            return Ok(Viewer {
                id: "anonymous".into(),
                role: Role::Admin,
                csrf: console.anonymous_csrf(),
                cookie: None,
            });
        };
        let start = Instant::now();
        let (peer, route) = (peer(parts), route(parts));
        let json = parts.uri.path().ends_with(".json");
        let Some(value) = cookie(&parts.headers) else {
            access.guard.refused(peer, &parts.headers, &route, Reason::MissingAuth, Method::Unknown, start.elapsed());
            return Err(console.to_sign_in(json, false));
        };
        match access.sessions.find(&value).await {
            Ok(Some(user)) => {
                if let Err(refused) = access.guard.admit(peer, &parts.headers, &route, &user).await {
                    return Err(views::refusal(console, refused));
                }
                let csrf = access.sessions.csrf_token(&value);
                Ok(Viewer { id: user.id, role: user.role, csrf, cookie: Some(value) })
            }
            Ok(None) => {
                let (reason, elapsed) = (Reason::ExpiredToken, start.elapsed());
                access.guard.refused(peer, &parts.headers, &route, reason, Method::Session, elapsed);
                Err(console.to_sign_in(json, true))
            }
            Err(e) => {
                tracing::warn!(error = %e, "console session lookup failed");
                let elapsed = start.elapsed();
                access.guard.refused(peer, &parts.headers, &route, Reason::Unknown, Method::Session, elapsed);
                Err(views::unavailable(console))
            }
        }
    }
}

/// The viewer of an admin action (a one-button form posting only its CSRF token), once the
/// request passed [`check_action`] with the admin role; otherwise the refusal page. It reads
/// the body, so it comes last among a handler's extractors.
pub struct Admin(pub Viewer);

#[derive(Debug, serde::Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf: String,
}

impl FromRequest<Console> for Admin {
    type Rejection = Response;

    async fn from_request(req: Request, console: &Console) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, console).await?;
        let headers = parts.headers.clone();
        let form = Form::<ActionForm>::from_request(Request::from_parts(parts, body), console).await;
        let presented = form.map(|Form(f)| f.csrf).unwrap_or_default();
        match check_action(&viewer, &headers, &presented, true) {
            Ok(()) => Ok(Admin(viewer)),
            Err(why) => Err(views::refused(console, &viewer, why)),
        }
    }
}

/// Checks an action (every POST): same-site request, the session's CSRF token, and the admin
/// role when `admin` is set.
pub fn check_action(viewer: &Viewer, headers: &HeaderMap, presented: &str, admin: bool) -> Result<(), Refused> {
    if !same_origin(headers) {
        return Err(Refused::Forged);
    }
    let expected = viewer.csrf.as_bytes();
    let matches = expected.len() == presented.len()
        && expected.iter().zip(presented.as_bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if !matches {
        return Err(Refused::Forged);
    }
    if admin && !viewer.is_admin() {
        tracing::warn!(target: "audit", event = "authz_fail", user = %viewer.id, "console action refused: admin role required");
        return Err(Refused::Role);
    }
    Ok(())
}

/// A browser says where a request comes from: `Sec-Fetch-Site` when it sends it (only
/// `same-origin`, or `none` for a request the user made directly, passes: another port of the
/// same host is `same-site` and refused), else `Origin`, whose host must be the `Host` asked
/// for. Requests with neither (non-browser clients) still need the CSRF token.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        return site == "same-origin" || site == "none";
    }
    match (get("origin"), get("host")) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .map(|(_, rest)| rest.trim_end_matches('/'))
            .is_some_and(|h| h.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
    }
}

/// Whether this request reached us over TLS: only a trusted proxy is believed.
pub(crate) fn over_tls(console: &Console, parts_peer: Option<SocketAddr>, headers: &HeaderMap) -> bool {
    match console.config().secure_cookie {
        SecureCookie::Always => true,
        SecureCookie::Never => false,
        SecureCookie::Auto => {
            console.access().is_some_and(|a| a.guard.clients.is_trusted(parts_peer))
                && headers
                    .get("x-forwarded-proto")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
        }
    }
}

/// `Set-Cookie` for a new session (or, with `value` empty and `max_age` 0, its removal).
pub(crate) fn set_cookie(path: &str, value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!("{COOKIE}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("compozy_console=; Max-Age=0"))
}

/// The Content-Security-Policy of every console response: scripts, styles, images and fetches
/// only from this origin (no inline script or style at all), no framing, forms post here only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers to every console response.
pub async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // `same-origin`, not `no-referrer`: with the latter browsers post forms with `Origin: null`.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A `303 See Other` to `location` (always a path of ours, never one taken from the request).
pub(crate) fn see_other(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().expect("value"));
        }
        h
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        assert_eq!(cookie(&headers(&[("cookie", "a=1; compozy_console=abc; b=2")])), Some("abc".into()));
        assert_eq!(cookie(&headers(&[("cookie", "a=1"), ("cookie", "compozy_console=x")])), Some("x".into()));
        assert_eq!(cookie(&headers(&[("cookie", "xcompozy_console=abc")])), None);
        assert_eq!(cookie(&HeaderMap::new()), None);
    }

    #[test]
    fn cross_site_requests_are_refused() {
        assert!(same_origin(&HeaderMap::new()));
        assert!(same_origin(&headers(&[("origin", "http://127.0.0.1:5001"), ("host", "127.0.0.1:5001")])));
        assert!(!same_origin(&headers(&[("origin", "http://evil.example"), ("host", "127.0.0.1:5001")])));
        assert!(!same_origin(&headers(&[("origin", "null"), ("host", "127.0.0.1:5001")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "same-site")])), "another port of the host");
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin"), ("origin", "null")])));
    }

    #[test]
    fn actions_need_the_token_and_the_role() {
        let user = Viewer { id: "u".into(), role: Role::User, csrf: "tok".into(), cookie: None };
        let admin = Viewer { role: Role::Admin, ..user.clone() };
        let none = HeaderMap::new();
        assert_eq!(check_action(&admin, &none, "tok", true), Ok(()));
        assert_eq!(check_action(&admin, &none, "tox", true), Err(Refused::Forged));
        assert_eq!(check_action(&admin, &none, "", true), Err(Refused::Forged));
        assert_eq!(check_action(&user, &none, "tok", true), Err(Refused::Role));
        assert_eq!(check_action(&user, &none, "tok", false), Ok(()));
    }

    #[test]
    fn cookies_carry_their_flags() {
        let c = set_cookie("/console", "abc", 60, true);
        assert_eq!(c, "compozy_console=abc; Path=/console; Max-Age=60; HttpOnly; SameSite=Strict; Secure");
        let plain = set_cookie("/console", "abc", 60, false);
        assert!(!plain.to_str().expect("ascii").contains("Secure"));
    }
}
