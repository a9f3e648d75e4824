//! The overview: each component's readiness and backend, version, uptime, and the live charts.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use maud::html;

use crate::Console;
use crate::series::Reading;
use crate::session::Viewer;
use crate::views::{self, Nav, flag, frame, respond};

/// `(series keys, title, unit)` of each chart; the script draws one line per key.
const CHARTS: [(&str, &str, &str); 7] = [
    ("requests_per_s", "Requests", "/s"),
    ("error_ratio", "Error ratio (5xx)", "ratio"),
    ("p95_ms", "p95 latency", "ms"),
    ("hooks_accepted_per_s,hooks_refused_per_s", "Webhooks accepted / refused", "/s"),
    ("queue_depth", "Queue depth", "tasks"),
    ("oldest_age_s", "Oldest ready task", "s"),
    ("utilization", "Worker utilization", "ratio"),
];

pub async fn page_handler(c: &Console, v: &Viewer) -> Response {
    let deps = c.deps();
    let states = deps.readiness.states();
    let ready = states.iter().all(|(_, s)| s.ready);
    let reading = Reading::take(&deps.registry);
    let every = c.config().sample_interval.as_secs();
    let body = html! {
        h1 { "Overview" }
        div.cards {
            div.card { div.label { "Status" } div.value { (flag(ready, "ready", "not ready")) } }
            div.card { div.label { "Version" } div.value { (deps.version) " " span.muted { (deps.commit) } } }
            div.card { div.label { "Uptime" } div.value { (views::seconds(reading.uptime_s)) } }
        }
        h2 { "Components" }
        table {
            thead { tr { th { "component" } th { "state" } th { "backend" } th { "reason" } } }
            tbody {
                @for (name, s) in &states {
                    tr {
                        td { (name) }
                        td { (flag(s.ready, "ready", "not ready")) }
                        td { (s.backend.as_deref().unwrap_or("–")) }
                        td { (s.reason.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
        h2 { "Last 15 minutes" }
        p.muted { "Sampled every " (every) " s from the instruments /metrics exposes; no Prometheus needed." }
        div.charts {
            @for (keys, title, unit) in CHARTS {
                figure.chart {
                    figcaption { (title) " " span.latest data-latest=(keys) {} }
                    canvas data-series=(keys) data-unit=(unit) width="360" height="140" {}
                }
            }
        }
    };
    respond(StatusCode::OK, frame(c, Some(v), "Overview", Nav::Overview, None, body))
}

pub async fn page(State(c): State<Console>, v: Viewer) -> Response {
    page_handler(&c, &v).await
}

/// The charts' data: `{"interval_s", "window_s", "points": [...]}`, oldest point first.
pub async fn series(State(c): State<Console>, _v: Viewer) -> Response {
    let body = serde_json::json!({
        "interval_s": c.config().sample_interval.as_secs_f64(),
        "window_s": crate::config::WINDOW.as_secs(),
        "points": c.series().points(),
    });
    axum::Json(body).into_response()
}
