//! Hands the matched route from the router to the metrics layer without allocating.
//!
//! Each route's `MethodRouter` carries a [`RouteTagLayer`] with the route's index. axum drives
//! the matched route's service (`poll_ready`, then `call`) inside the first poll of the
//! router's future, and the metrics layer polls that future on the same thread, so the index
//! travels through a thread-local. The metrics layer saves the thread-local before calling or
//! polling its inner service and restores it after ([`enter`] / [`leave`]), so a metered
//! service nested inside a handler cannot clobber the outer request's tag; the first tag seen
//! wins. Requests that match no route never set it and are labelled `unmatched`.

use std::cell::Cell;
use std::task::{Context, Poll};

use tower::{Layer, Service};

const NONE: usize = usize::MAX;

thread_local! {
    static MATCHED: Cell<usize> = const { Cell::new(NONE) };
}

/// Starts a scope: returns the enclosing scope's value and clears the thread-local.
#[inline]
pub(crate) fn enter() -> usize {
    MATCHED.replace(NONE)
}

/// Ends a scope: restores the enclosing value and returns the route tagged inside, if any.
#[inline]
pub(crate) fn leave(saved: usize) -> Option<usize> {
    let v = MATCHED.replace(saved);
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
        // Tag here too: a per-route layer that is not ready yet must not leave the request
        // unattributed (axum only drives the matched route's clone).
        MATCHED.set(self.index);
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        MATCHED.set(self.index);
        self.inner.call(req)
    }
}
