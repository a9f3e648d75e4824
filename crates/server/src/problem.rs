//! Problem normalisation: the framework's own error responses rewritten as problem+json.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};

pub use compozy_core::problem::{PROBLEM_CONTENT_TYPE, Problem};

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
    let (mut parts, _) = response.into_parts();
    let problem = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::new(status, "payload-too-large", "request body too large".to_string())
        }
        // The only bare 503 in the stack is the request timeout's.
        StatusCode::SERVICE_UNAVAILABLE if bare => {
            Problem::new(status, "timeout", "the request took too long".to_string())
        }
        _ => Problem::from_status(status),
    };
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE));
    Response::from_parts(parts, Body::from(body))
}

/// No content type, or plain text: what axum and tower-http produce for their errors.
fn is_framework_error(response: &Response) -> bool {
    match response.headers().get(header::CONTENT_TYPE) {
        None => true,
        Some(v) => v.as_bytes().starts_with(b"text/plain"),
    }
}
