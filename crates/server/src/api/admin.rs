//! `POST /api/v0/admin/reload`: reload the project's resources now.
//!
//! Mounted by the binary behind the admin role (`crates/cli/src/serve.rs`).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use compozy_autoload::{Autoloader, ReloadError};

use super::ok;
use compozy_core::problem::ProblemType;

pub fn routes(autoloader: Autoloader) -> Vec<(&'static str, MethodRouter)> {
    vec![("/api/v0/admin/reload", post(reload).with_state(autoloader))]
}

async fn reload(State(autoloader): State<Autoloader>) -> Response {
    match autoloader.reload().await {
        Ok(report) => ok(report, "project reloaded"),
        Err(ReloadError::Rejected(report)) => {
            // The old registry stays in service; say why the new one was refused.
            ProblemType::ReloadRejected
                .with("the project has errors; the previous resources stay in service")
                .with_extension("errors", serde_json::to_value(&report.errors).unwrap_or_default())
                .into_response()
        }
        Err(ReloadError::Aborted(_)) => ProblemType::Internal.with("the reload did not complete").into_response(),
    }
}
