//! The refusals of authentication, as problem+json whose messages never say which part of a
//! credential was wrong.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};

pub use compozy_core::problem::{PROBLEM_CONTENT_TYPE, ProblemType, problem};

pub fn unauthorized() -> Response {
    let mut r = problem(ProblemType::Unauthorized, "invalid or missing credentials");
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"compozy\", charset=\"UTF-8\""));
    r
}

pub fn bad_header() -> Response {
    problem(ProblemType::InvalidRequest, "invalid authorization header format")
}

pub fn forbidden() -> Response {
    problem(ProblemType::Forbidden, "insufficient permissions")
}

pub fn unavailable(retry_after: u64) -> Response {
    ProblemType::Unavailable
        .with("authentication temporarily unavailable")
        .with_retry_after(retry_after)
        .into_response()
}

pub fn too_many(retry_after: u64) -> Response {
    ProblemType::RateLimited.with("too many requests").with_retry_after(retry_after).into_response()
}
