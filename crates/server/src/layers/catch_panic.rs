//! Turns a handler panic into a 500 problem response, so the connection survives and the
//! metrics layer (outside this one) records a real 500 with the bytes actually sent.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use futures_util::future::CatchUnwind;
use http::{Request, StatusCode};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::problem::ProblemType;

#[derive(Clone, Copy, Debug, Default)]
pub struct CatchPanicLayer;

impl<S> Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CatchPanic { inner }
    }
}

#[derive(Clone, Debug)]
pub struct CatchPanic<S> {
    inner: S,
}

/// The 500 answer. The panic's location and message are logged once by the process's panic
/// hook; the payload is not logged again here (it may quote request input).
fn panic_response(_payload: &(dyn Any + Send)) -> Response {
    tracing::error!("handler panicked; answered 500");
    ProblemType::Internal.with("internal error").into_response()
}

impl<S, B> Service<Request<B>> for CatchPanic<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = CatchPanicFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(future) => CatchPanicFuture::Running { future: AssertUnwindSafe(future).catch_unwind() },
            Err(payload) => CatchPanicFuture::Panicked { response: Some(panic_response(&*payload)) },
        }
    }
}

pin_project! {
    #[project = CatchPanicProj]
    pub enum CatchPanicFuture<F> {
        Running { #[pin] future: CatchUnwind<AssertUnwindSafe<F>> },
        Panicked { response: Option<Response> },
    }
}

impl<F, E> Future for CatchPanicFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            CatchPanicProj::Running { future } => match std::task::ready!(future.poll(cx)) {
                Ok(result) => Poll::Ready(result),
                Err(payload) => Poll::Ready(Ok(panic_response(&*payload))),
            },
            CatchPanicProj::Panicked { response } => {
                Poll::Ready(Ok(response.take().unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())))
            }
        }
    }
}
