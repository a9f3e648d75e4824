//! RFC 9457 problem responses (the same shape as the server's `Problem`), with messages that
//! never say which part of a credential was wrong.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

pub fn problem(status: StatusCode, slug: &str, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": format!("urn:compozy:problem:{slug}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE));
    response
}

pub fn unauthorized() -> Response {
    let mut r = problem(StatusCode::UNAUTHORIZED, "unauthorized", "invalid or missing credentials");
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"compozy\", charset=\"UTF-8\""));
    r
}

pub fn bad_header() -> Response {
    problem(StatusCode::BAD_REQUEST, "invalid-authorization-header", "invalid authorization header format")
}

pub fn forbidden() -> Response {
    problem(StatusCode::FORBIDDEN, "forbidden", "insufficient permissions")
}

pub fn unavailable(retry_after: u64) -> Response {
    let mut r = problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "authentication temporarily unavailable");
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    r
}

pub fn too_many(retry_after: u64) -> Response {
    let mut r = problem(StatusCode::TOO_MANY_REQUESTS, "rate-limited", "too many requests");
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
    r
}
