//! `POST /api/v0/admin/reload`: reload the project's resources now.
//!
//! Mounted by the binary behind the admin role (`crates/cli/src/serve.rs`).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use compozy_autoload::{Autoloader, ReloadError};
use http::StatusCode;

use super::ok;
use crate::problem::Problem;

pub fn routes(autoloader: Autoloader) -> Vec<(&'static str, MethodRouter)> {
    vec![("/api/v0/admin/reload", post(reload).with_state(autoloader))]
}

async fn reload(State(autoloader): State<Autoloader>) -> Response {
    match autoloader.reload().await {
        Ok(report) => ok(report, "project reloaded"),
        Err(ReloadError::Rejected(report)) => {
            // The old registry stays in service; say why the new one was refused.
            let mut response = (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(serde_json::json!({
                    "type": "urn:compozy:problem:reload-rejected",
                    "title": "Unprocessable Entity",
                    "status": 422,
                    "detail": "the project has errors; the previous resources stay in service",
                    "errors": report.errors,
                })),
            )
                .into_response();
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(crate::problem::PROBLEM_CONTENT_TYPE),
            );
            response
        }
        Err(ReloadError::Aborted(_)) => {
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", None).into_response()
        }
    }
}
