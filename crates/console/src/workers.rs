//! Workers: the processes sharing the store (dispatchers and API nodes) with their heartbeat
//! age; those silent past `worker.stale_after` are marked stale.

use std::time::SystemTime;

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use maud::html;

use crate::Console;
use crate::session::Viewer;
use crate::views::{self, Nav, flag, frame, respond, time};

fn millis(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub async fn page_handler(c: &Console, v: &Viewer) -> Response {
    let worker = &c.deps().worker;
    let config = worker.config();
    // Rows stay until pruned (`stale_prune_multiple` × `stale_after`): list all of them.
    let instances = match worker.queue().store().list_instances(config.prune_after()).await {
        Ok(i) => i,
        Err(e) => return views::store_failure(c, v, e.retry_after(), &e),
    };
    let now = SystemTime::now();
    let (activities, workflows) = config.slots();
    let body = html! {
        h1 { "Workers" }
        table.workers {
            thead { tr { th { "instance" } th { "role" } th { "started (UTC)" } th { "heartbeat age" } th { "slots (activities / workflows)" } th { "state" } } }
            tbody {
                @for i in &instances {
                    @let age = now.duration_since(i.heartbeat_at).unwrap_or_default();
                    @let stale = age > config.stale_after;
                    tr data-instance=(i.id) data-stale=(if stale { "true" } else { "false" }) class=[stale.then_some("stale")] {
                        td { code { (i.id) } @if i.id == worker.id() { " " span.muted { "(this process)" } } }
                        td { (i.role) }
                        td { (time(millis(i.started_at))) }
                        td.num { (views::duration_ms(i64::try_from(age.as_millis()).unwrap_or(i64::MAX))) }
                        td.num {
                            @if i.id == worker.id() { (activities) " / " (workflows) } @else { span.muted { "–" } }
                        }
                        td { (flag(!stale, "fresh", "stale")) }
                    }
                }
                @if instances.is_empty() { tr { td colspan="6" { span.muted { "No process is registered." } } } }
            }
        }
        p.muted { "Stale: no heartbeat for longer than worker.stale_after (" (views::duration_ms(i64::try_from(config.stale_after.as_millis()).unwrap_or(0))) "). Slots are known for this process only." }
    };
    respond(StatusCode::OK, frame(c, Some(v), "Workers", Nav::Workers, Some(5), body))
}

pub async fn page(State(c): State<Console>, v: Viewer) -> Response {
    page_handler(&c, &v).await
}
