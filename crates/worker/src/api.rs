//! The execution API's handlers, for the server to mount (routes are not wired here):
//! `POST /api/v0/workflows/{id}/executions`, `GET /api/v0/executions[/{id}]`,
//! `POST /api/v0/executions/{id}/cancel`, `POST /api/v0/executions/{id}/retry`,
//! `GET /api/v0/workflows[/{id}]`.
//! Success bodies are `{"data": ..., "message": ...}`; errors RFC 9457 problems
//! ([`compozy_core::problem`]).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use http::{HeaderValue, StatusCode, header};
use serde::Deserialize;

use compozy_core::problem::problem;

use crate::error::WorkerError;
use crate::model::RunStatus;
use crate::runs::RunFilter;
use crate::worker::Worker;

pub fn routes(worker: Worker) -> Vec<(&'static str, MethodRouter)> {
    vec![
        ("/api/v0/workflows", get(list_workflows).with_state(worker.clone())),
        ("/api/v0/workflows/{id}", get(one_workflow).with_state(worker.clone())),
        ("/api/v0/workflows/{id}/executions", post(start).with_state(worker.clone())),
        ("/api/v0/executions", get(list).with_state(worker.clone())),
        ("/api/v0/executions/{id}", get(one).with_state(worker.clone())),
        ("/api/v0/executions/{id}/cancel", post(cancel).with_state(worker.clone())),
        ("/api/v0/executions/{id}/retry", post(retry).with_state(worker)),
    ]
}

fn ok<T: serde::Serialize>(status: StatusCode, data: T, message: &str) -> Response {
    (status, Json(serde_json::json!({"data": data, "message": message}))).into_response()
}

/// Store failures: 503 + `Retry-After` when unavailable, else 500; the error text is logged only.
fn failure(e: &WorkerError) -> Response {
    match e {
        WorkerError::UnknownWorkflow(_) => {
            return problem(StatusCode::NOT_FOUND, "workflow-not-found", "no workflow with this id");
        }
        WorkerError::InvalidInput { .. } => {
            return problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-input", &e.to_string());
        }
        WorkerError::UnknownRun(_) => {
            return problem(StatusCode::NOT_FOUND, "execution-not-found", "no execution with this id");
        }
        WorkerError::NotRetryable { .. } => {
            return problem(StatusCode::CONFLICT, "execution-not-retryable", &e.to_string());
        }
        WorkerError::AlreadyRetried { .. } => {
            return problem(StatusCode::CONFLICT, "execution-already-retried", &e.to_string());
        }
        _ => {}
    }
    match e.retry_after() {
        Some(after) => {
            tracing::warn!(error = %e, "store unavailable; answered 503");
            let mut r = problem(StatusCode::SERVICE_UNAVAILABLE, "dependency-unavailable", "the store is unavailable");
            if let Ok(v) = HeaderValue::from_str(&after.as_secs().to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        None => {
            tracing::error!(error = %e, "execution request failed");
            problem(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the request could not be completed")
        }
    }
}

async fn list_workflows(State(w): State<Worker>) -> Response {
    let registry = w.project().registry();
    let items: Vec<_> = registry.list(compozy_autoload::ResourceKind::Workflow).collect();
    ok(StatusCode::OK, items, "workflows listed")
}

async fn one_workflow(State(w): State<Worker>, Path(id): Path<String>) -> Response {
    match w.project().registry().workflow(&id) {
        Some(wf) => ok(StatusCode::OK, wf, "workflow found"),
        None => problem(StatusCode::NOT_FOUND, "workflow-not-found", "no workflow with this id"),
    }
}

/// The body is `{"input": <any JSON>}` or empty (input `{}`).
async fn start(State(w): State<Worker>, Path(id): Path<String>, body: Bytes) -> Response {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Start {
        #[serde(default)]
        input: Option<serde_json::Value>,
    }
    let input = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        match serde_json::from_slice::<Start>(&body) {
            Ok(s) => s.input.unwrap_or_else(|| serde_json::json!({})),
            Err(_) => return problem(StatusCode::BAD_REQUEST, "invalid-body", "expected {\"input\": <JSON>}"),
        }
    };
    match w.start_run(&id, &input).await {
        Ok(run) => ok(
            StatusCode::ACCEPTED,
            serde_json::json!({"execution_id": run, "workflow_id": id, "status": "pending"}),
            "execution started",
        ),
        Err(e) => failure(&e),
    }
}

async fn one(State(w): State<Worker>, Path(id): Path<String>) -> Response {
    let run = match w.queue().get_run(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => return problem(StatusCode::NOT_FOUND, "execution-not-found", "no execution with this id"),
        Err(e) => return failure(&e),
    };
    match w.queue().run_history(&id).await {
        Ok(tasks) => ok(StatusCode::OK, serde_json::json!({"execution": run, "tasks": tasks}), "execution found"),
        Err(e) => failure(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    workflow_id: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

fn parse_cursor(c: &str) -> Option<(i64, String)> {
    let (at, id) = c.split_once('_')?;
    Some((at.parse().ok()?, id.to_string()))
}

async fn list(
    State(w): State<Worker>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return problem(StatusCode::BAD_REQUEST, "invalid-query", "unknown or malformed query parameter");
    };
    if q.status.as_deref().is_some_and(|s| RunStatus::parse(s).is_none()) {
        return problem(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            "status must be pending, running, succeeded, failed or cancelled",
        );
    }
    let before = match q.cursor.as_deref().map(parse_cursor) {
        Some(None) => return problem(StatusCode::BAD_REQUEST, "invalid-query", "malformed cursor"),
        Some(c) => c,
        None => None,
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let filter = RunFilter { workflow_id: q.workflow_id, status: q.status, before, limit };
    match w.queue().list_runs(&filter).await {
        Ok(runs) => {
            let next = (runs.len() == limit as usize)
                .then(|| runs.last().map(|r| format!("{}_{}", r.created_at, r.id)))
                .flatten();
            ok(StatusCode::OK, serde_json::json!({"executions": runs, "next_cursor": next}), "executions listed")
        }
        Err(e) => failure(&e),
    }
}

async fn cancel(State(w): State<Worker>, Path(id): Path<String>) -> Response {
    match w.queue().cancel_run(&id).await {
        Ok(true) => {
            ok(StatusCode::OK, serde_json::json!({"execution_id": id, "status": "cancelled"}), "execution cancelled")
        }
        Ok(false) => match w.queue().get_run(&id).await {
            Ok(Some(_)) => problem(StatusCode::CONFLICT, "execution-finished", "the execution has already ended"),
            Ok(None) => problem(StatusCode::NOT_FOUND, "execution-not-found", "no execution with this id"),
            Err(e) => failure(&e),
        },
        Err(e) => failure(&e),
    }
}

/// A new run with the failed (or cancelled) run's workflow and input, linked to it both ways.
async fn retry(State(w): State<Worker>, Path(id): Path<String>) -> Response {
    match w.retry_run(&id).await {
        Ok(run) => ok(
            StatusCode::ACCEPTED,
            serde_json::json!({"execution_id": run, "retry_of": id, "status": "pending"}),
            "execution retried",
        ),
        Err(e) => failure(&e),
    }
}
