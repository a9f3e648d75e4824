//! The execution API's handlers, for the server to mount (routes are not wired here):
//! `POST /api/v0/workflows/{id}/executions`, `GET /api/v0/executions[/{id}]`,
//! `POST /api/v0/executions/{id}/cancel`, `POST /api/v0/executions/{id}/retry`,
//! `GET /api/v0/workflows[/{id}]`.
//! Success bodies are `{"data": ..., "message": ...}`; errors RFC 9457 problems
//! ([`compozy_core::problem`]).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use http::StatusCode;
use serde::Deserialize;

use compozy_core::envelope::ok_with as ok;
use compozy_core::problem::{ProblemType, problem};

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

/// Store failures: 503 + `Retry-After` when unavailable, else 500; the error text is logged only.
fn failure(e: &WorkerError) -> Response {
    match e {
        WorkerError::UnknownWorkflow(_) => {
            return problem(ProblemType::NotFound, "no workflow with this id");
        }
        WorkerError::InvalidInput { .. } => {
            return problem(ProblemType::InvalidInput, &e.to_string());
        }
        WorkerError::UnknownRun(_) => {
            return problem(ProblemType::NotFound, "no execution with this id");
        }
        WorkerError::NotRetryable { .. } => {
            return problem(ProblemType::ExecutionNotRetryable, &e.to_string());
        }
        WorkerError::AlreadyRetried { .. } => {
            return problem(ProblemType::ExecutionAlreadyRetried, &e.to_string());
        }
        _ => {}
    }
    match e.retry_after() {
        Some(after) => {
            tracing::warn!(error = %e, "store unavailable; answered 503");
            ProblemType::Unavailable.with("the store is unavailable").with_retry_after(after.as_secs()).into_response()
        }
        None => {
            tracing::error!(error = %e, "execution request failed");
            problem(ProblemType::Internal, "the request could not be completed")
        }
    }
}

async fn list_workflows(State(w): State<Worker>) -> Response {
    let registry = w.project().registry();
    let items: Vec<_> = registry.list(compozy_autoload::ResourceKind::Workflow).collect();
    ok(StatusCode::OK, items, "workflows listed")
}

async fn one_workflow(State(w): State<Worker>, Path(id): Path<String>) -> Response {
    // The same shape as the listing's items (and `/api/v0/resources/workflows/{id}`).
    match w.project().registry().get(compozy_autoload::ResourceKind::Workflow, &id) {
        Some(wf) => ok(StatusCode::OK, wf, "workflow found"),
        None => problem(ProblemType::NotFound, "no workflow with this id"),
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
            Err(_) => return problem(ProblemType::InvalidRequest, "expected {\"input\": <JSON>}"),
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
        Ok(None) => return problem(ProblemType::NotFound, "no execution with this id"),
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

async fn list(
    State(w): State<Worker>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return problem(ProblemType::InvalidRequest, "unknown or malformed query parameter");
    };
    if q.status.as_deref().is_some_and(|s| RunStatus::parse(s).is_none()) {
        return problem(ProblemType::InvalidRequest, "status must be pending, running, succeeded, failed or cancelled");
    }
    let before = match q.cursor.as_deref().map(compozy_core::cursor::decode) {
        Some(None) => return problem(ProblemType::InvalidRequest, "malformed cursor"),
        Some(c) => c,
        None => None,
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let filter = RunFilter { workflow_id: q.workflow_id, status: q.status, before, limit };
    match w.queue().list_runs(&filter).await {
        Ok(runs) => {
            let next = (runs.len() == limit as usize)
                .then(|| runs.last().map(|r| compozy_core::cursor::encode(r.created_at, &r.id)))
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
            Ok(Some(_)) => problem(ProblemType::ExecutionFinished, "the execution has already ended"),
            Ok(None) => problem(ProblemType::NotFound, "no execution with this id"),
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
