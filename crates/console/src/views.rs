//! The page frame and the small pieces every page uses. `maud` escapes every spliced value;
//! nothing here uses `PreEscaped` on data.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use maud::{DOCTYPE, Markup, html};

use crate::Console;
use crate::viewer::{Refused, Viewer};

/// JSON longer than this is cut in pages, with a link to the whole document.
pub const MAX_INLINE: usize = 4096;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Runs,
    Queues,
    Webhooks,
    Workers,
    Project,
    None,
}

const NAV: [(Nav, &str, &str); 6] = [
    (Nav::Overview, "", "Overview"),
    (Nav::Runs, "/runs", "Runs"),
    (Nav::Queues, "/queues", "Queues"),
    (Nav::Webhooks, "/webhooks", "Webhooks"),
    (Nav::Workers, "/workers", "Workers"),
    (Nav::Project, "/project", "Project"),
];

/// A whole page: head (stylesheet and script from this origin only), navigation, the viewer
/// and their sign-out form, then `body`. `refresh` (seconds) makes the script reload the page
/// while something on it is still changing.
pub fn frame(
    c: &Console,
    viewer: Option<&Viewer>,
    title: &str,
    nav: Nav,
    refresh: Option<u32>,
    body: Markup,
) -> Markup {
    let version = c.deps().version;
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Compozy console" }
                link rel="stylesheet" href=(c.at(&format!("/static/console.css?v={version}")));
                script src=(c.at(&format!("/static/console.js?v={version}"))) defer {}
            }
            body data-base=(c.at("")) data-refresh=[refresh] {
                header.top {
                    a.brand href=(c.at("")) { "Compozy" }
                    @if viewer.is_some() {
                        nav {
                            @for (item, rest, label) in NAV {
                                a href=(c.at(rest)) class=[(item == nav).then_some("active")] { (label) }
                            }
                        }
                    }
                    @if let Some(v) = viewer {
                        div.who {
                            span class=(format!("role {}", v.role.as_str())) title=(v.id) { (v.role.as_str()) }
                            " "
                            @if v.cookie.is_some() {
                                form.inline method="post" action=(c.at("/sign-out")) {
                                    (csrf(v))
                                    button.link type="submit" { "Sign out" }
                                }
                            } @else {
                                span.muted { "authentication off" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The hidden field every form of a session carries.
pub fn csrf(v: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(v.csrf); }
}

/// A one-button form posting to `action` (an admin action; a `user` is refused by the server).
pub fn action(c: &Console, v: &Viewer, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(c.at(action)) {
            (csrf(v))
            button type="submit" class=(class) data-admin-only[!v.is_admin()] title=[(!v.is_admin()).then_some("admin role required")] { (label) }
        }
    }
}

/// An HTML response.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut r = (status, markup.into_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r
}

/// A page with just a message (errors, refusals).
pub fn message(c: &Console, viewer: Option<&Viewer>, status: StatusCode, title: &str, text: &str) -> Response {
    let body = html! {
        h1 { (title) }
        p.error { (text) }
        p { a href=(c.at("")) { "Back to the overview" } }
    };
    respond(status, frame(c, viewer, title, Nav::None, None, body))
}

pub fn unavailable(c: &Console) -> Response {
    let mut r = message(
        c,
        None,
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        "The store did not answer; try again in a few seconds.",
    );
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

/// An authentication refusal the API would answer with `refused` (429, 403, 503), as a page
/// with the same status and `Retry-After`.
pub fn refusal(c: &Console, refused: Response) -> Response {
    let status = refused.status();
    let text = match status {
        StatusCode::TOO_MANY_REQUESTS => "Too many requests; wait a moment and try again.",
        StatusCode::FORBIDDEN => "Your role does not allow this.",
        StatusCode::SERVICE_UNAVAILABLE => "Authentication is unavailable; try again in a few seconds.",
        _ => "The request was refused.",
    };
    let mut r = message(c, None, status, "Refused", text);
    if let Some(v) = refused.headers().get(header::RETRY_AFTER) {
        r.headers_mut().insert(header::RETRY_AFTER, v.clone());
    }
    r
}

/// An action refused before it ran.
pub fn refused(c: &Console, v: &Viewer, why: Refused) -> Response {
    match why {
        Refused::Forged => message(
            c,
            Some(v),
            StatusCode::FORBIDDEN,
            "Refused",
            "This form is stale or came from another site; reload the page and try again.",
        ),
        Refused::Role => message(
            c,
            Some(v),
            StatusCode::FORBIDDEN,
            "Admin role required",
            "Your role (user) can read every page; actions need the admin role.",
        ),
    }
}

pub fn not_found(c: &Console, v: &Viewer, what: &str) -> Response {
    message(c, Some(v), StatusCode::NOT_FOUND, "Not found", what)
}

pub fn bad_request(c: &Console, v: &Viewer, what: &str) -> Response {
    message(c, Some(v), StatusCode::BAD_REQUEST, "Bad request", what)
}

/// The store failed: 503 when it is unavailable, else 500; the error text goes to the log only.
pub fn store_failure(
    c: &Console,
    v: &Viewer,
    retry_after: Option<std::time::Duration>,
    e: &dyn std::fmt::Display,
) -> Response {
    tracing::warn!(error = %e, "console read failed");
    match retry_after {
        Some(_) => unavailable(c),
        None => message(c, Some(v), StatusCode::INTERNAL_SERVER_ERROR, "Error", "The request could not be completed."),
    }
}

/// Notices an action redirects with (`?notice=`): a fixed set, never text from the request.
pub fn notice(key: Option<&str>) -> Option<&'static str> {
    match key? {
        "cancelled" => Some("Run cancelled."),
        "retried" => Some("Retry started: this is the new run."),
        "started" => Some("Run started."),
        "replayed" => Some("Delivery replayed: this is its new run."),
        "reloaded" => Some("Project reloaded."),
        _ => None,
    }
}

pub fn notice_box(key: Option<&str>) -> Markup {
    html! { @if let Some(text) = notice(key) { p.notice role="status" { (text) } } }
}

/// Unix ms as RFC 3339 (UTC), in a `<time>` element.
pub fn time(ms: i64) -> Markup {
    let text = compozy_core::timestamp::format(ms);
    html! { time datetime=(text) { (text.replace('T', " ").trim_end_matches('Z')) } }
}

pub fn time_opt(ms: Option<i64>) -> Markup {
    match ms {
        Some(ms) => time(ms),
        None => html! { span.muted { "–" } },
    }
}

/// A duration in the largest sensible unit.
pub fn duration_ms(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m {}s", ms / 60_000, ms % 60_000 / 1000)
    } else {
        format!("{}h {}m", ms / 3_600_000, ms % 3_600_000 / 60_000)
    }
}

pub fn seconds(s: f64) -> String {
    duration_ms((s * 1000.0) as i64)
}

/// A run, task or attempt state as a badge; unknown states are shown plainly.
pub fn badge(state: &str) -> Markup {
    let known = [
        "pending",
        "running",
        "succeeded",
        "failed",
        "cancelled",
        "available",
        "dead",
        "success",
        "error",
        "timeout",
        "accepted",
        "lost",
    ];
    let class = if known.contains(&state) { state } else { "other" };
    html! { span class=(format!("badge {class}")) { (state) } }
}

/// A yes/no state as a green or red badge with its own words (`ready` / `not ready`).
pub fn flag(ok: bool, yes: &str, no: &str) -> Markup {
    html! { span class=(if ok { "badge succeeded" } else { "badge failed" }) { (if ok { yes } else { no }) } }
}

/// Pretty JSON, cut past [`MAX_INLINE`] bytes with a link to the whole document.
pub fn json_block(value: &serde_json::Value, full: Option<&str>) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    let cut = cut(&text, MAX_INLINE);
    html! {
        pre.json { (cut) }
        @if cut.len() < text.len() {
            p.muted {
                "Truncated (" (text.len()) " bytes). "
                @if let Some(href) = full { a href=(href) { "The full JSON" } }
            }
        }
    }
}

/// Text cut at most `max` bytes, on a character boundary.
pub fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Short ids in tables (the full id is the link target and the title).
pub fn short(id: &str) -> &str {
    cut(id, 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_is_escaped() {
        let evil = serde_json::json!({"x": "<script>alert(1)</script>\"'&"});
        let out = json_block(&evil, None).into_string();
        assert!(!out.contains("<script>"), "{out}");
        assert!(out.contains("&lt;script&gt;"), "{out}");
        assert!(badge("<img src=x onerror=alert(1)>").into_string().contains("&lt;img"));
    }

    #[test]
    fn long_json_is_cut_on_a_character_boundary() {
        let big = serde_json::json!({"s": "é".repeat(MAX_INLINE)});
        let out = json_block(&big, Some("/console/runs/r/json")).into_string();
        assert!(out.contains("Truncated ("), "{out}");
        assert!(out.contains("href=\"/console/runs/r/json\""));
        assert_eq!(cut("éé", 3), "é");
    }

    #[test]
    fn notices_come_from_a_fixed_table() {
        assert_eq!(notice(Some("cancelled")), Some("Run cancelled."));
        assert_eq!(notice(Some("<b>hi</b>")), None);
    }
}
