//! Project: the loaded resources by type, the last load's result with its errors (file, line,
//! column), and reload.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use compozy_autoload::{ReloadError, ResourceKind};
use http::StatusCode;
use maud::html;
use serde::Deserialize;

use crate::Console;
use crate::session::{Admin, Viewer};
use crate::views::{self, Nav, action, flag, frame, respond, time};

#[derive(Debug, Default, Deserialize)]
pub struct ProjectQuery {
    notice: Option<String>,
}

pub async fn page(State(c): State<Console>, v: Viewer, query: Result<Query<ProjectQuery>, QueryRejection>) -> Response {
    let notice = query.ok().and_then(|Query(q)| q.notice);
    render(&c, &v, StatusCode::OK, notice.as_deref())
}

fn render(c: &Console, v: &Viewer, status: StatusCode, notice: Option<&str>) -> Response {
    let autoloader = &c.deps().autoloader;
    let registry = autoloader.current();
    let last = autoloader.last_reload();
    let body = html! {
        h1 { "Project" }
        (views::notice_box(notice))
        div.cards {
            @for kind in ResourceKind::ALL {
                div.card data-kind=(kind.as_str()) { div.label { (kind.as_str()) "s" } div.value { (registry.count(kind)) } }
            }
        }
        h2 { "Last load" }
        @match &last {
            None => {
                p.muted { "The project has not been loaded (no project file, or autoload.enabled is false)." }
            }
            Some(l) => {
                p id="last-reload" data-applied=(if l.report.applied { "true" } else { "false" }) {
                    (flag(l.report.applied, "applied", "rejected"))
                    (if l.report.applied { "" } else { " (the previous resources stay in service)" })
                    " at " (time(l.at)) "; " (l.report.files_processed) " of " (l.report.files_discovered) " files, "
                    (l.report.files_failed) " failed, in " (views::duration_ms(i64::try_from(l.report.duration.as_millis()).unwrap_or(0)))
                }
                @if !l.report.errors.is_empty() {
                    table.errors {
                        thead { tr { th { "file" } th { "line" } th { "column" } th { "kind" } th { "message" } } }
                        tbody {
                            @for e in &l.report.errors {
                                tr {
                                    td { code { (e.file) } }
                                    td.num { (e.line.map_or_else(|| "–".to_string(), |l| l.to_string())) }
                                    td.num { (e.column.map_or_else(|| "–".to_string(), |c| c.to_string())) }
                                    td { (e.category.as_str()) }
                                    td { (e.message) }
                                }
                            }
                        }
                    }
                }
            }
        }
        div.actions { (action(c, v, "/project/reload", "Reload now", "")) }
        h2 { "Resources" }
        table.resources {
            thead { tr { th { "type" } th { "id" } th { "file" } } }
            tbody {
                @for kind in ResourceKind::ALL {
                    @for r in registry.list(kind) {
                        tr { td { (kind.as_str()) } td { (r.resource.id()) } td { code { (r.file) } } }
                    }
                }
                @if registry.is_empty() { tr { td colspan="3" { span.muted { "No resources are loaded." } } } }
            }
        }
    };
    respond(status, frame(c, Some(v), "Project", Nav::Project, None, body))
}

pub async fn reload(State(c): State<Console>, Admin(v): Admin) -> Response {
    tracing::info!(target: "audit", event = "console_reload", user = %v.id, "project reload from the console");
    match c.deps().autoloader.reload().await {
        Ok(_) => crate::session::see_other(&c.at("/project?notice=reloaded")),
        // The page shows the rejected load's errors (the last result).
        Err(ReloadError::Rejected(_)) => render(&c, &v, StatusCode::UNPROCESSABLE_ENTITY, None),
        Err(ReloadError::Aborted(_)) => {
            views::message(&c, Some(&v), StatusCode::INTERNAL_SERVER_ERROR, "Error", "The reload did not complete.")
        }
    }
}
