//! Hands the matched route from the router to the metrics layer without allocating.
//!
//! Each route's `MethodRouter` carries a [`RouteTagLayer`] with the route's index. axum calls
//! the matched route's service inside the first poll of the router's future, and the metrics
//! layer polls that future on the same thread, so the index travels through a thread-local
//! that the metrics layer clears before and reads after each poll of its inner future.
//! Requests that match no route never set it and are labelled `unmatched`.

use std::cell::Cell;
use std::task::{Context, Poll};

use tower::{Layer, Service};

const NONE: usize = usize::MAX;

thread_local! {
    static MATCHED: Cell<usize> = const { Cell::new(NONE) };
}

/// Forgets any route recorded on this thread.
#[inline]
pub(crate) fn clear() {
    MATCHED.set(NONE);
}

/// The route recorded on this thread since the last [`clear`], if any.
#[inline]
pub(crate) fn take() -> Option<usize> {
    let v = MATCHED.replace(NONE);
    (v != NONE).then_some(v)
}

/// Marks requests reaching the wrapped route with the route's index.
#[derive(Clone, Copy, Debug)]
pub struct RouteTagLayer(pub usize);

impl<S> Layer<S> for RouteTagLayer {
    type Service = RouteTag<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RouteTag { inner, index: self.0 }
    }
}

#[derive(Clone, Debug)]
pub struct RouteTag<S> {
    inner: S,
    index: usize,
}

impl<S: Service<R>, R> Service<R> for RouteTag<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        MATCHED.set(self.index);
        self.inner.call(req)
    }
}
