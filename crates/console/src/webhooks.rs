//! Webhooks: deliveries per source by result (the `compozy_webhook_deliveries_total` counters of
//! this process), the stored delivery log with filters, and replay.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use compozy_core::{cursor, timestamp};
use compozy_webhooks::deliveries::Filter;
use http::StatusCode;
use maud::html;
use serde::Deserialize;

use crate::Console;
use crate::series::Reading;
use crate::session::{Admin, Viewer};
use crate::views::{self, Nav, action, badge, frame, respond, short, time};

const RESULTS: [&str; 12] = [
    "accepted",
    "no_match",
    "duplicate",
    "in_progress",
    "verification_failed",
    "bad_request",
    "payload_too_large",
    "body_timeout",
    "schema_error",
    "overloaded",
    "not_found",
    "error",
];

#[derive(Debug, Default, Deserialize)]
pub struct LogQuery {
    slug: Option<String>,
    result: Option<String>,
    since: Option<String>,
    cursor: Option<String>,
    notice: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

pub async fn page(State(c): State<Console>, v: Viewer, query: Result<Query<LogQuery>, QueryRejection>) -> Response {
    let Ok(Query(q)) = query else { return views::bad_request(&c, &v, "Unknown or malformed filter.") };
    let since = match given(&q.since) {
        Some(t) => match timestamp::parse(t).or_else(|| timestamp::parse(&format!("{t}:00Z"))) {
            Some(ms) => Some(ms),
            None => return views::bad_request(&c, &v, "Times are YYYY-MM-DDTHH:MM (UTC) or RFC 3339."),
        },
        None => None,
    };
    let before = match given(&q.cursor).map(cursor::decode) {
        Some(None) => return views::bad_request(&c, &v, "Malformed cursor."),
        Some(position) => position,
        None => None,
    };
    let limit = 50;
    let filter = Filter {
        slug: given(&q.slug).map(str::to_string),
        result: given(&q.result).map(str::to_string),
        since,
        before,
        limit,
    };
    let items = match c.deps().webhooks.deliveries(&filter).await {
        Ok(items) => items,
        Err(e) => return views::store_failure(&c, &v, e.retry_after(), &e),
    };
    let next =
        (items.len() == limit as usize).then(|| items.last().map(|d| cursor::encode(d.created_at, &d.id))).flatten();
    // Per source: accepted, then every other result seen, since this process started.
    let mut by_source: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for ((source, result), n) in Reading::take(&c.deps().registry).deliveries {
        by_source.entry(source).or_default().insert(result, n);
    }
    let next_href = next.map(|n| {
        let mut href = format!("{}?cursor={n}", c.at("/webhooks"));
        for (k, val) in [("slug", &q.slug), ("result", &q.result), ("since", &q.since)] {
            if let Some(val) = given(val) {
                href.push_str(&format!("&{k}={}", val.bytes().map(|b| format!("%{b:02X}")).collect::<String>()));
            }
        }
        href
    });
    let body = html! {
        h1 { "Webhooks" }
        (views::notice_box(given(&q.notice)))
        h2 { "Deliveries by source (since this process started)" }
        table.sources {
            thead { tr { th { "source" } th { "accepted" } th { "not accepted, by result" } } }
            tbody {
                @for (source, results) in &by_source {
                    tr data-source=(source) {
                        td { (source) }
                        td.num { (results.get("accepted").copied().unwrap_or(0)) }
                        td {
                            @for (result, n) in results.iter().filter(|(r, n)| r.as_str() != "accepted" && **n > 0) {
                                span.pill { (result) ": " (n) } " "
                            }
                        }
                    }
                }
                @if by_source.is_empty() { tr { td colspan="3" { span.muted { "No webhook is configured." } } } }
            }
        }
        h2 { "Delivery log" }
        form.filters method="get" action=(c.at("/webhooks")) {
            label { "Slug " input type="text" name="slug" value=[given(&q.slug)]; }
            label { "Result "
                select name="result" {
                    option value="" { "any" }
                    @for r in RESULTS { option value=(r) selected[given(&q.result) == Some(r)] { (r) } }
                }
            }
            label { "Since " input type="datetime-local" name="since" value=[given(&q.since)]; }
            button type="submit" { "Filter" }
            " " a href=(c.at("/webhooks")) { "Clear" }
        }
        table.deliveries {
            thead { tr { th { "delivery" } th { "received (UTC)" } th { "slug" } th { "event" } th { "result" } th { "run" } th {} } }
            tbody {
                @for d in &items {
                    tr data-delivery=(d.id) {
                        td { code title=(d.id) { (short(&d.id)) } @if let Some(of) = &d.replay_of { " " span.muted title=(of) { "replay" } } }
                        td { (time(d.created_at)) }
                        td { (d.slug) }
                        td { (d.event) }
                        td { (badge(&d.result)) }
                        td { a href=(c.at(&format!("/runs/{}", d.run_id))) { code { (short(&d.run_id)) } } }
                        td {
                            @if d.payload_kept {
                                (action(&c, &v, &format!("/webhooks/deliveries/{}/replay", d.id), "Replay", ""))
                            } @else { span.muted title="webhooks.retention is 0s or the payload expired" { "payload not kept" } }
                        }
                    }
                }
                @if items.is_empty() { tr { td colspan="7" { span.muted { "No deliveries match." } } } }
            }
        }
        @if let Some(href) = next_href { p { a.next href=(href) { "Older deliveries →" } } }
    };
    respond(StatusCode::OK, frame(&c, Some(&v), "Webhooks", Nav::Webhooks, None, body))
}

pub async fn replay(State(c): State<Console>, Path(id): Path<String>, Admin(v): Admin) -> Response {
    let answer = c.deps().webhooks.replay(&id).await;
    let status = answer.status();
    let body = axum::body::to_bytes(answer.into_body(), 64 * 1024).await.unwrap_or_default();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if status == StatusCode::ACCEPTED
        && let Some(run) = json["data"]["run_id"].as_str()
    {
        tracing::info!(target: "audit", event = "console_replay", user = %v.id, delivery = %id, run = %run, "delivery replayed from the console");
        return crate::session::see_other(&c.at(&format!("/runs/{run}?notice=replayed")));
    }
    // The pipeline's own answer (no match, schema error, unavailable, ...), its detail shown as text.
    let detail =
        json["detail"].as_str().or_else(|| json["data"]["status"].as_str()).unwrap_or("the delivery was not replayed");
    let status = if status.is_success() { StatusCode::CONFLICT } else { status };
    views::message(&c, Some(&v), status, "Not replayed", detail)
}
