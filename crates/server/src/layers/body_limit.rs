//! Request body limit, in two parts:
//! - [`BodyLimitLayer`] (outer) wraps every request body in `Limited`, so a streamed body is
//!   cut at the limit while the handler reads it (the extractors answer 413);
//! - [`DeclaredLengthLayer`] (per route) refuses a declared `Content-Length` over the limit at
//!   once with 413 problem+json and closes the connection, so the body is never read. It sits
//!   inside routing so the refusal is measured under the route's template.

use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use futures_util::future::{Either, Ready, ready};
use http::{HeaderValue, Request, header};
use http_body_util::Limited;
use tower::{Layer, Service};

use crate::problem::ProblemType;

#[derive(Clone, Copy, Debug)]
pub struct BodyLimitLayer(pub usize);

impl<S> Layer<S> for BodyLimitLayer {
    type Service = BodyLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        BodyLimit { inner, limit: self.0 }
    }
}

#[derive(Clone, Debug)]
pub struct BodyLimit<S> {
    inner: S,
    limit: usize,
}

impl<S, B> Service<Request<B>> for BodyLimit<S>
where
    S: Service<Request<Limited<B>>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let limit = self.limit;
        self.inner.call(req.map(|b| Limited::new(b, limit)))
    }
}

#[derive(Clone, Copy, Debug)]
pub struct DeclaredLengthLayer(pub usize);

impl<S> Layer<S> for DeclaredLengthLayer {
    type Service = DeclaredLength<S>;
    fn layer(&self, inner: S) -> Self::Service {
        DeclaredLength { inner, limit: self.0 }
    }
}

#[derive(Clone, Debug)]
pub struct DeclaredLength<S> {
    inner: S,
    limit: usize,
}

fn declared_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers().get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// The 413 answer: problem+json, and `Connection: close` so the unread body is not drained.
pub fn too_large(limit: usize) -> Response {
    let detail = format!("request body larger than {limit} bytes");
    let mut response = ProblemType::PayloadTooLarge.with(detail).into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

impl<S, B> Service<Request<B>> for DeclaredLength<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if declared_length(&req).is_some_and(|n| n > self.limit as u64) {
            return Either::Right(ready(Ok(too_large(self.limit))));
        }
        Either::Left(self.inner.call(req))
    }
}
