//! Problem normalisation: the framework's own error responses rewritten as problem+json.

use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};

pub use compozy_core::problem::{PROBLEM_CONTENT_TYPE, Problem, ProblemType};

/// Rewrites the framework's own error responses into problem+json, keeping their headers
/// (`Allow` on 405, `Connection`, `Retry-After`, ...): axum's 405 (no body), extractor
/// rejections (plain text) and the request timeout (an empty 503). Responses a handler wrote
/// with a body of another type (JSON from `/readyz`, for example) are left alone.
pub fn normalize(response: Response) -> Response {
    let status = response.status();
    if status.as_u16() < 400 || !is_framework_error(&response) {
        return response;
    }
    let bare = response.headers().get(header::CONTENT_TYPE).is_none();
    let (mut kept, _) = response.into_parts();
    let problem = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ProblemType::PayloadTooLarge.with("request body too large"),
        // The only bare 503 in the stack is the request timeout's.
        StatusCode::SERVICE_UNAVAILABLE if bare => ProblemType::Timeout.with("the request took too long"),
        _ => Problem::from_status(status),
    };
    // The table's status wins: an extractor's 422 is the same malformed request as its 400.
    let (mut parts, body) = problem.into_response().into_parts();
    std::mem::swap(&mut parts.status, &mut kept.status);
    for (name, value) in parts.headers {
        if let Some(name) = name {
            kept.headers.insert(name, value);
        }
    }
    kept.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(kept, body)
}

/// No content type, or plain text: what axum and tower-http produce for their errors.
fn is_framework_error(response: &Response) -> bool {
    match response.headers().get(header::CONTENT_TYPE) {
        None => true,
        Some(v) => v.as_bytes().starts_with(b"text/plain"),
    }
}
