//! The refusals of authentication, as problem+json whose messages never say which part of a
//! credential was wrong.

use axum::response::Response;
use http::{HeaderValue, StatusCode, header};

pub use compozy_core::problem::{PROBLEM_CONTENT_TYPE, problem};

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
