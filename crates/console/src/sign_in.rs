//! Sign-in with an API key (exchanged for a session cookie) and sign-out.

use axum::Form;
use axum::extract::State;
use axum::response::Response;
use http::{StatusCode, header};
use maud::html;
use serde::Deserialize;

use crate::Console;
use crate::session::{self, Meta, Viewer, check_action, cookie, same_origin, set_cookie};
use crate::views::{self, Nav, frame, respond};

fn form(c: &Console, status: StatusCode, error: Option<&str>) -> Response {
    let body = html! {
        section.sign-in {
            h1 { "Sign in" }
            p.muted { "Paste an API key (" code { "compozy admin create-user" } " prints one). It is sent once; the console keeps a session cookie instead." }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action=(c.at("/sign-in")) {
                label for="key" { "API key" }
                input id="key" type="password" name="key" autocomplete="off" required autofocus;
                button type="submit" { "Sign in" }
            }
        }
    };
    respond(status, frame(c, None, "Sign in", Nav::None, None, body))
}

pub async fn page(State(c): State<Console>, meta: Meta) -> Response {
    let Some(access) = c.access() else { return session::see_other(&c.at("")) };
    // Already signed in: straight to the overview.
    if let Some(value) = cookie(&meta.headers)
        && matches!(access.sessions.find(&value).await, Ok(Some(_)))
    {
        return session::see_other(&c.at(""));
    }
    form(&c, StatusCode::OK, None)
}

#[derive(Deserialize)]
pub struct SignIn {
    #[serde(default)]
    key: String,
}

/// Checks the key through the API's failure guard (a wrong key counts against the address, 429
/// past `auth.rate_limit.auth_failures`), then opens a fresh session. Always lands on the
/// overview: no `next` parameter, so nothing can redirect elsewhere.
pub async fn submit(
    State(c): State<Console>,
    meta: Meta,
    body: Result<Form<SignIn>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some(access) = c.access() else { return session::see_other(&c.at("")) };
    if !same_origin(&meta.headers) {
        return form(&c, StatusCode::FORBIDDEN, Some("Sign-in must come from this page."));
    }
    let Ok(Form(SignIn { key })) = body else {
        return form(&c, StatusCode::BAD_REQUEST, Some("The form was malformed."));
    };
    let user = match access.guard.check_token(meta.peer, &meta.headers, &meta.route, &key).await {
        Ok(user) => user,
        Err(refused) => {
            let status = refused.status();
            let text = match status {
                StatusCode::TOO_MANY_REQUESTS => "Too many failed sign-ins from this address; wait and try again.",
                StatusCode::SERVICE_UNAVAILABLE => "Sign-in is unavailable; try again in a few seconds.",
                _ => "That is not a valid API key.",
            };
            let status = if status == StatusCode::BAD_REQUEST { StatusCode::UNAUTHORIZED } else { status };
            let mut r = form(&c, status, Some(text));
            if let Some(v) = refused.headers().get(header::RETRY_AFTER) {
                r.headers_mut().insert(header::RETRY_AFTER, v.clone());
            }
            return r;
        }
    };
    let opened = match access.sessions.open(&user).await {
        Ok(o) => o,
        Err(compozy_auth::sessions::OpenError::NotAKey) => {
            return form(&c, StatusCode::UNAUTHORIZED, Some("Sign in with an API key (a JWT opens no session)."));
        }
        Err(e) => {
            tracing::warn!(error = %e, "console session could not be stored");
            return form(
                &c,
                StatusCode::SERVICE_UNAVAILABLE,
                Some("Sign-in is unavailable; try again in a few seconds."),
            );
        }
    };
    tracing::info!(target: "audit", event = "console_sign_in", user = %user.id, role = user.role.as_str(), "console session opened");
    let secure = session::over_tls(&c, meta.peer, &meta.headers);
    let mut r = session::see_other(&c.at(""));
    let ttl = c.config().session_ttl.as_secs();
    r.headers_mut().insert(header::SET_COOKIE, set_cookie(&c.config().path, &opened.cookie, ttl, secure));
    r
}

#[derive(Deserialize)]
pub struct Csrf {
    #[serde(default)]
    csrf: String,
}

/// Revokes the session in the store (every instance sees it) and clears the cookie.
pub async fn sign_out(State(c): State<Console>, viewer: Viewer, meta: Meta, Form(f): Form<Csrf>) -> Response {
    if let Err(why) = check_action(&viewer, &meta.headers, &f.csrf, false) {
        return views::refused(&c, &viewer, why);
    }
    if let (Some(access), Some(value)) = (c.access(), viewer.cookie.as_deref()) {
        if let Err(e) = access.sessions.revoke(value).await {
            tracing::warn!(error = %e, "console session could not be revoked");
            return views::unavailable(&c);
        }
        tracing::info!(target: "audit", event = "console_sign_out", user = %viewer.id, "console session closed");
    }
    let mut r = session::see_other(&c.at("/sign-in"));
    r.headers_mut().insert(header::SET_COOKIE, set_cookie(&c.config().path, "", 0, false));
    r
}
