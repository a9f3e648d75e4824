//! Queues: depth and oldest ready age (the worker's cluster-wide gauges), this process's
//! executing activities against its slots, and schedule-to-start p50/p95 over the chart window.

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use maud::html;

use crate::Console;
use crate::series::Reading;
use crate::session::Viewer;
use crate::views::{self, Nav, frame, respond};

pub async fn page_handler(c: &Console, v: &Viewer) -> Response {
    let deps = c.deps();
    let reading = Reading::take(&deps.registry);
    let schedule = c.series().schedule_to_start();
    let own = deps.worker.config().queue.clone();
    let mut names: Vec<&String> = reading.queues.keys().chain(schedule.keys()).collect();
    if !names.contains(&&own) {
        names.push(&own);
    }
    names.sort();
    names.dedup();
    let ms = |s: Option<f64>| s.map_or_else(|| "–".to_string(), |s| views::duration_ms((s * 1000.0).round() as i64));
    let body = html! {
        h1 { "Queues" }
        table.queues {
            thead { tr {
                th { "queue" } th { "ready (depth)" } th { "oldest ready" }
                th { "executing / slots (this process)" } th { "schedule-to-start p50" } th { "p95" }
            } }
            tbody {
                @for name in &names {
                    @let (depth, oldest) = reading.queues.get(*name).copied().unwrap_or_default();
                    @let (p50, p95) = schedule.get(*name).copied().unwrap_or_default();
                    tr data-queue=(name) {
                        td { (name) }
                        td.num { (depth) }
                        td.num { (views::seconds(oldest)) }
                        td.num {
                            @if **name == own {
                                (reading.activities_executing) " / " (reading.activity_slots)
                            } @else { span.muted { "–" } }
                        }
                        td.num { (ms(p50)) }
                        td.num { (ms(p95)) }
                    }
                }
            }
        }
        p.muted {
            "Depth and age are cluster-wide (refreshed every worker.refresh_interval); slots are this process's; "
            "schedule-to-start covers the last 15 minutes of tasks this process claimed."
        }
    };
    respond(StatusCode::OK, frame(c, Some(v), "Queues", Nav::Queues, Some(5), body))
}

pub async fn page(State(c): State<Console>, v: Viewer) -> Response {
    page_handler(&c, &v).await
}
