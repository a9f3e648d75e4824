//! The success envelope of every API answer: `{"data": ..., "message": ...}`.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Envelope<T> {
    pub data: T,
    pub message: String,
}

/// A success answer with `status` (200, 201, 202).
pub fn ok_with<T: Serialize>(status: StatusCode, data: T, message: &str) -> Response {
    (status, Json(Envelope { data, message: message.to_string() })).into_response()
}

/// A 200 success answer.
pub fn ok<T: Serialize>(data: T, message: &str) -> Response {
    ok_with(StatusCode::OK, data, message)
}
