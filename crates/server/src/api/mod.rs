//! The `/api/v0` routes of the engine's components. Success bodies are
//! `{"data": ..., "message": ...}`; errors are problem+json.

pub mod admin;
pub mod instances;
pub mod resources;

use axum::response::{IntoResponse, Response};

pub use compozy_core::envelope::ok;
use compozy_core::problem::ProblemType;

/// A store or cache failure: 503 with `Retry-After` when the dependency is unavailable (the
/// client should retry), 500 otherwise. Internal error text is logged, never returned.
pub fn dependency_error(
    component: &str,
    retry_after: Option<std::time::Duration>,
    error: &dyn std::fmt::Display,
) -> Response {
    match retry_after {
        Some(after) => {
            tracing::warn!(component, error = %error, "dependency unavailable; answered 503");
            ProblemType::Unavailable
                .with(format!("the {component} is unavailable; retry later"))
                .with_retry_after(after.as_secs())
                .into_response()
        }
        None => {
            tracing::error!(component, error = %error, "dependency error; answered 500");
            ProblemType::Internal.with("internal error").into_response()
        }
    }
}
