//! Runs: the filtered, paginated list (the worker's keyset listing), a run's tasks with every
//! attempt, and the actions (start, cancel, retry) through the worker's own API.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Response};
use compozy_autoload::ResourceKind;
use compozy_core::{cursor, timestamp};
use compozy_worker::{RunFilter, RunStatus, WorkerError};
use http::StatusCode;
use maud::{Markup, html};
use serde::Deserialize;

use crate::Console;
use crate::session::{Admin, Meta, Viewer, check_action};
use crate::views::{self, Nav, action, badge, csrf, frame, json_block, respond, short, time, time_opt};

const PAGE: u32 = 50;
const STATUSES: [&str; 5] = ["pending", "running", "succeeded", "failed", "cancelled"];

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    workflow: Option<String>,
    status: Option<String>,
    /// `YYYY-MM-DDTHH:MM[:SS]` (UTC, what `<input type="datetime-local">` sends) or RFC 3339.
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
    notice: Option<String>,
}

/// A form's empty field is no filter.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A time filter: RFC 3339, or a `datetime-local` value read as UTC.
fn parse_time(text: &str) -> Option<i64> {
    timestamp::parse(text).or_else(|| match text.len() {
        16 => timestamp::parse(&format!("{text}:00Z")),
        19 => timestamp::parse(&format!("{text}Z")),
        _ => None,
    })
}

pub async fn list(State(c): State<Console>, v: Viewer, query: Result<Query<ListQuery>, QueryRejection>) -> Response {
    let Ok(Query(q)) = query else { return views::bad_request(&c, &v, "Unknown or malformed filter.") };
    let status = given(&q.status);
    if status.is_some_and(|s| RunStatus::parse(s).is_none()) {
        return views::bad_request(&c, &v, "Unknown status.");
    }
    let (since, until) = (given(&q.since).map(parse_time), given(&q.until).map(parse_time));
    if matches!(since, Some(None)) || matches!(until, Some(None)) {
        return views::bad_request(&c, &v, "Times are YYYY-MM-DDTHH:MM (UTC) or RFC 3339.");
    }
    let (since, until) = (since.flatten(), until.flatten());
    let before = match given(&q.cursor).map(cursor::decode) {
        Some(None) => return views::bad_request(&c, &v, "Malformed cursor."),
        Some(position) => position,
        // `until`: runs created before it (no id is below the empty one, so ties are excluded).
        None => until.map(|t| (t, String::new())),
    };
    let filter = RunFilter {
        workflow_id: given(&q.workflow).map(str::to_string),
        status: status.map(str::to_string),
        before,
        limit: PAGE,
    };
    let mut runs = match c.deps().worker.queue().list_runs(&filter).await {
        Ok(r) => r,
        Err(e) => return views::store_failure(&c, &v, e.retry_after(), &e),
    };
    let full = runs.len() == PAGE as usize;
    // `since`: the listing is newest first, so the page ends at the first older run.
    let cut = since.and_then(|s| runs.iter().position(|r| r.created_at < s));
    if let Some(at) = cut {
        runs.truncate(at);
    }
    let next = (full && cut.is_none()).then(|| runs.last().map(|r| cursor::encode(r.created_at, &r.id))).flatten();
    let workflows: Vec<String> =
        c.deps().autoloader.current().list(ResourceKind::Workflow).map(|w| w.resource.id().to_string()).collect();
    let link_next = next.map(|n| {
        let mut params = vec![("cursor", n)];
        for (k, val) in [("workflow", &q.workflow), ("status", &q.status), ("since", &q.since), ("until", &q.until)] {
            if let Some(val) = given(val) {
                params.push((k, val.to_string()));
            }
        }
        format!("{}?{}", c.at("/runs"), encode_query(&params))
    });
    let active = runs.iter().any(|r| r.status == "pending" || r.status == "running");
    let body = html! {
        h1 { "Runs" }
        (views::notice_box(given(&q.notice)))
        form.filters method="get" action=(c.at("/runs")) {
            label { "Workflow " input type="text" name="workflow" list="workflows" value=[given(&q.workflow)]; }
            datalist id="workflows" { @for w in &workflows { option value=(w) {} } }
            label { "Status "
                select name="status" {
                    option value="" { "any" }
                    @for s in STATUSES { option value=(s) selected[status == Some(s)] { (s) } }
                }
            }
            label { "From " input type="datetime-local" name="since" value=[given(&q.since)]; }
            label { "Until " input type="datetime-local" name="until" value=[given(&q.until)]; }
            button type="submit" { "Filter" }
            " " a href=(c.at("/runs")) { "Clear" }
        }
        table.runs {
            thead { tr { th { "run" } th { "workflow" } th { "status" } th { "created (UTC)" } th { "duration" } th { "error" } } }
            tbody {
                @for r in &runs {
                    tr data-run=(r.id) data-status=(r.status) {
                        td { a href=(c.at(&format!("/runs/{}", r.id))) title=(r.id) { code { (short(&r.id)) } } }
                        td { (r.workflow_id) }
                        td { (badge(&r.status)) }
                        td { (time(r.created_at)) }
                        td { (duration(r.started_at, r.finished_at)) }
                        td.error { (views::cut(r.error.as_deref().unwrap_or(""), 120)) }
                    }
                }
                @if runs.is_empty() { tr { td colspan="6" { span.muted { "No runs match." } } } }
            }
        }
        @if let Some(href) = link_next { p { a.next href=(href) { "Older runs →" } } }
        @if !workflows.is_empty() { (start_form(&c, &v, &workflows)) }
    };
    let refresh = active.then_some(3);
    respond(StatusCode::OK, frame(&c, Some(&v), "Runs", Nav::Runs, refresh, body))
}

fn start_form(c: &Console, v: &Viewer, workflows: &[String]) -> Markup {
    html! {
        details.start {
            summary { "Start a run" }
            form method="post" action=(c.at("/runs")) {
                (csrf(v))
                label { "Workflow " select name="workflow" { @for w in workflows { option value=(w) { (w) } } } }
                label { "Input (JSON) " textarea name="input" rows="4" cols="60" { "{}" } }
                button type="submit" data-admin-only[!v.is_admin()] { "Start" }
            }
        }
    }
}

fn duration(started: Option<i64>, finished: Option<i64>) -> Markup {
    match (started, finished) {
        (Some(s), Some(f)) => html! { (views::duration_ms(f - s)) },
        (Some(s), None) => html! { span.muted { (views::duration_ms(crate::series::now_ms() - s)) "…" } },
        _ => html! { span.muted { "–" } },
    }
}

/// `k=v&…` with values percent-encoded (cursor and filters are ours or typed by the operator).
fn encode_query(params: &[(&str, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| {
            let enc: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={enc}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[derive(Debug, Default, Deserialize)]
pub struct DetailQuery {
    notice: Option<String>,
}

pub async fn detail(
    State(c): State<Console>,
    v: Viewer,
    Path(id): Path<String>,
    query: Result<Query<DetailQuery>, QueryRejection>,
) -> Response {
    let notice = query.ok().and_then(|Query(q)| q.notice);
    let queue = c.deps().worker.queue();
    let run = match queue.get_run(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => return views::not_found(&c, &v, "No run with this id."),
        Err(e) => return views::store_failure(&c, &v, e.retry_after(), &e),
    };
    let tasks = match queue.run_history(&id).await {
        Ok(t) => t,
        Err(e) => return views::store_failure(&c, &v, e.retry_after(), &e),
    };
    let full = c.at(&format!("/runs/{id}/json"));
    let live = run.status == "pending" || run.status == "running";
    let retryable = (run.status == "failed" || run.status == "cancelled") && run.retried_by.is_none();
    let body = html! {
        h1 { "Run " code { (run.id) } }
        (views::notice_box(notice.as_deref()))
        dl.facts {
            dt { "Workflow" } dd { (run.workflow_id) }
            dt { "Status" } dd id="run-status" data-status=(run.status) { (badge(&run.status)) }
            dt { "Created" } dd { (time(run.created_at)) }
            dt { "Started" } dd { (time_opt(run.started_at)) }
            dt { "Finished" } dd { (time_opt(run.finished_at)) }
            dt { "Duration" } dd { (duration(run.started_at, run.finished_at)) }
            @if let Some(of) = &run.retry_of { dt { "Retry of" } dd { a href=(c.at(&format!("/runs/{of}"))) { code { (of) } } } }
            @if let Some(by) = &run.retried_by { dt { "Retried by" } dd { a href=(c.at(&format!("/runs/{by}"))) { code { (by) } } } }
        }
        div.actions {
            @if live { (action(&c, &v, &format!("/runs/{}/cancel", run.id), "Cancel run", "danger")) }
            @if retryable { (action(&c, &v, &format!("/runs/{}/retry", run.id), "Retry run", "")) }
            " " a href=(full) { "JSON" }
        }
        @if let Some(e) = &run.error { h2 { "Error" } pre.error { (e) } }
        h2 { "Input" }
        (json_block(&run.input, Some(&full)))
        @if let Some(out) = &run.output { h2 { "Output" } (json_block(out, Some(&full))) }
        h2 { "Tasks" }
        @for t in &tasks {
            section.task data-task=(t.task.name) data-state=(t.task.state) {
                h3 { (t.task.position + 1) ". " (t.task.name) " " span.muted { (t.task.kind) " on " (t.task.queue) } " " (badge(&t.task.state)) }
                p.muted { "Attempt " (t.task.attempt) " of " (t.task.max_attempts) "; ready " (time(t.task.available_at)) }
                @if t.attempts.is_empty() {
                    p.muted { "No attempt yet." }
                } @else {
                    table.attempts {
                        thead { tr { th { "#" } th { "worker" } th { "started" } th { "finished" } th { "outcome" } th { "error / output" } } }
                        tbody {
                            @for a in &t.attempts {
                                tr {
                                    td { (a.attempt) }
                                    td { code { (a.worker.as_deref().map(short).unwrap_or("–")) } }
                                    td { (time_opt(a.started_at)) }
                                    td { (time_opt(a.finished_at)) }
                                    td { (badge(a.outcome.as_deref().unwrap_or("running"))) }
                                    td {
                                        @if let Some(e) = &a.error { pre.error { (views::cut(e, views::MAX_INLINE)) } }
                                        @if let Some(o) = &a.output { (json_block(o, Some(&full))) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let refresh = live.then_some(2);
    respond(StatusCode::OK, frame(&c, Some(&v), "Run", Nav::Runs, refresh, body))
}

/// The whole run as the API shows it (`GET /api/v0/executions/{id}`'s data).
pub async fn json(State(c): State<Console>, v: Viewer, Path(id): Path<String>) -> Response {
    let queue = c.deps().worker.queue();
    let run = match queue.get_run(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => return views::not_found(&c, &v, "No run with this id."),
        Err(e) => return views::store_failure(&c, &v, e.retry_after(), &e),
    };
    match queue.run_history(&id).await {
        Ok(tasks) => axum::Json(serde_json::json!({"execution": run, "tasks": tasks})).into_response(),
        Err(e) => views::store_failure(&c, &v, e.retry_after(), &e),
    }
}

fn worker_failure(c: &Console, v: &Viewer, e: &WorkerError) -> Response {
    let conflict = |text: &str| views::message(c, Some(v), StatusCode::CONFLICT, "Not done", text);
    match e {
        WorkerError::UnknownRun(_) => views::not_found(c, v, "No run with this id."),
        WorkerError::UnknownWorkflow(_) => views::not_found(c, v, "No workflow with this id."),
        WorkerError::InvalidInput { .. } => {
            views::message(c, Some(v), StatusCode::UNPROCESSABLE_ENTITY, "Invalid input", &e.to_string())
        }
        WorkerError::NotRetryable { .. } | WorkerError::AlreadyRetried { .. } => conflict(&e.to_string()),
        _ => views::store_failure(c, v, e.retry_after(), e),
    }
}

pub async fn cancel(State(c): State<Console>, Path(id): Path<String>, Admin(v): Admin) -> Response {
    let queue = c.deps().worker.queue();
    match queue.cancel_run(&id).await {
        Ok(true) => {
            tracing::info!(target: "audit", event = "console_cancel", user = %v.id, run = %id, "run cancelled from the console");
            crate::session::see_other(&c.at(&format!("/runs/{id}?notice=cancelled")))
        }
        Ok(false) => match queue.get_run(&id).await {
            Ok(Some(_)) => views::message(&c, Some(&v), StatusCode::CONFLICT, "Not done", "The run has already ended."),
            Ok(None) => views::not_found(&c, &v, "No run with this id."),
            Err(e) => worker_failure(&c, &v, &e),
        },
        Err(e) => worker_failure(&c, &v, &e),
    }
}

pub async fn retry(State(c): State<Console>, Path(id): Path<String>, Admin(v): Admin) -> Response {
    match c.deps().worker.retry_run(&id).await {
        Ok(new) => {
            tracing::info!(target: "audit", event = "console_retry", user = %v.id, run = %id, retry = %new, "run retried from the console");
            crate::session::see_other(&c.at(&format!("/runs/{new}?notice=retried")))
        }
        Err(e) => worker_failure(&c, &v, &e),
    }
}

#[derive(Debug, Deserialize)]
pub struct StartForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    workflow: String,
    #[serde(default)]
    input: String,
}

pub async fn start(
    State(c): State<Console>,
    v: Viewer,
    meta: Meta,
    form: Result<Form<StartForm>, FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else { return views::bad_request(&c, &v, "The form was malformed.") };
    if let Err(why) = check_action(&v, &meta.headers, &f.csrf, true) {
        return views::refused(&c, &v, why);
    }
    let input = if f.input.trim().is_empty() { Ok(serde_json::json!({})) } else { serde_json::from_str(&f.input) };
    let Ok(input) = input else { return views::bad_request(&c, &v, "The input is not JSON.") };
    match c.deps().worker.start_run(&f.workflow, &input).await {
        Ok(run) => {
            tracing::info!(target: "audit", event = "console_start", user = %v.id, run = %run, "run started from the console");
            crate::session::see_other(&c.at(&format!("/runs/{run}?notice=started")))
        }
        Err(e) => worker_failure(&c, &v, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_accept_the_browser_form_and_rfc3339() {
        assert_eq!(parse_time("1970-01-01T00:01"), Some(60_000));
        assert_eq!(parse_time("1970-01-01T00:01:02"), Some(62_000));
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn query_values_are_percent_encoded() {
        let q = encode_query(&[("workflow", "a b&c=<d>".into()), ("cursor", "x_y-z".into())]);
        assert_eq!(q, "workflow=a%20b%26c%3D%3Cd%3E&cursor=x_y-z");
    }
}
