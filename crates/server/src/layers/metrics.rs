//! The HTTP metrics layer: sees every request, measures bytes as they actually stream, and
//! records one [`RequestFinished`] when the response body is finished or dropped.
//!
//! - The status is the one sent; a request whose response future is dropped before a response
//!   existed is recorded as 499 (client went away), or 500 when it is dropped by a panic.
//! - Request bytes are counted by wrapping the request body, so chunked uploads count what
//!   the handler actually read; response bytes by wrapping the response body.
//! - Per-request state is a pooled cell: after warm-up the layer allocates nothing.
//! - With tracing on, each request gets a server span (parent: the inbound `traceparent`), the
//!   handler runs inside it, and the request is recorded inside it (the duration's exemplar).
//!   With tracing off no span is built: one relaxed load decides.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Buf;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::request_id::X_REQUEST_ID;
use super::route_tag;
use crate::http_metrics::{HttpMetrics, RequestFinished, method_index};

/// Per-thread free lists of the per-request byte counters shared between a request body and
/// its metrics guard: a pop and a push, no atomic read-modify-write, and no allocation once
/// warm. A list holds at most `MAX_CACHED` cells; a thread that finishes more requests than it
/// starts simply drops the extra ones.
mod cells {
    use std::cell::RefCell;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    const MAX_CACHED: usize = 1024;

    thread_local! {
        static FREE: RefCell<Vec<Arc<AtomicU64>>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn take() -> Arc<AtomicU64> {
        FREE.with_borrow_mut(Vec::pop).unwrap_or_default()
    }

    pub(super) fn give(mut cell: Arc<AtomicU64>) {
        // Reuse only when the request body is gone too (`get_mut` synchronises with its last
        // write, which may have happened on another thread); otherwise let it drop normally.
        if let Some(bytes) = Arc::get_mut(&mut cell) {
            *bytes.get_mut() = 0;
            FREE.with_borrow_mut(|free| {
                if free.len() < MAX_CACHED {
                    free.push(cell);
                }
            });
        }
    }
}

/// What every request of one server shares. It lives as long as the process (one per built
/// application), so requests borrow it instead of cloning an `Arc`: two atomic operations less
/// per request.
struct Shared {
    metrics: Arc<HttpMetrics>,
    /// Reads the TSC directly (~10 ns) where `Instant::now` costs ~24 ns on a KVM guest.
    clock: quanta::Clock,
}

#[derive(Clone, Copy)]
pub struct MetricsLayer {
    shared: &'static Shared,
}

impl MetricsLayer {
    /// Build it once per server and clone it: each `new` keeps a small allocation for the
    /// process's lifetime.
    pub fn new(metrics: Arc<HttpMetrics>) -> Self {
        Self { shared: Box::leak(Box::new(Shared { metrics, clock: quanta::Clock::new() })) }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        MetricsService { inner, shared: self.shared }
    }
}

#[derive(Clone)]
pub struct MetricsService<S> {
    inner: S,
    shared: &'static Shared,
}

impl<S, B, ResBody> Service<Request<B>> for MetricsService<S>
where
    S: Service<Request<CountingBody<B>>, Response = Response<ResBody>>,
    B: Body,
{
    type Response = Response<MeteredBody<ResBody>>;
    type Error = S::Error;
    type Future = MetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let start = self.shared.clock.raw();
        let method = method_index(req.method());
        self.shared.metrics.started(method);
        // A body that is already at its end (most GETs) has 0 bytes: no counter needed.
        let cell = (!req.body().is_end_stream()).then(cells::take);
        let req = req.map(|inner| CountingBody { inner, cell: cell.clone() });
        let span = compozy_telemetry::traces::enabled().then(|| server_span(&req, method));
        let saved = route_tag::enter();
        let future = {
            let _entered = span.as_ref().map(tracing::Span::enter);
            self.inner.call(req)
        };
        let tagged = route_tag::leave(saved);
        let mut guard = Finish {
            shared: self.shared,
            cell,
            start,
            method,
            route: 0,
            status: None,
            response_bytes: 0,
            request_id: None,
            span,
        };
        if let Some(route) = tagged {
            guard.route = route;
        }
        MetricsFuture { future, guard: Some(guard) }
    }
}

/// Records the request when dropped: after the response body ended or was dropped, or when the
/// request was abandoned before a response existed.
struct Finish {
    shared: &'static Shared,
    cell: Option<Arc<AtomicU64>>,
    /// Raw clock reading at arrival (see `Shared::clock`).
    start: u64,
    method: usize,
    route: usize,
    /// `None` until a response exists.
    status: Option<StatusCode>,
    response_bytes: u64,
    /// Kept only when the log line will be written (5xx, or debug logging on).
    request_id: Option<HeaderValue>,
    /// The server span, when tracing is on.
    span: Option<tracing::Span>,
}

/// The request's server span (semantic conventions: the route and status are recorded when
/// known). A `traceparent` header makes it a child of the caller's span.
fn server_span<B>(req: &Request<B>, method: usize) -> tracing::Span {
    let span = tracing::info_span!(
        target: "compozy::http",
        "HTTP",
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = crate::http_metrics::METHODS[method],
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    if let Some(parent) = req.headers().get("traceparent").and_then(|v| v.to_str().ok()) {
        compozy_telemetry::traces::set_parent(&span, parent);
    }
    span
}

/// The route, status and name of a finished request's span: only for a sampled span, since
/// nothing else reads them (the metrics have their own copy).
fn finish_span(span: &tracing::Span, metrics: &HttpMetrics, e: &RequestFinished) {
    if !compozy_telemetry::traces::is_sampled(span) {
        return;
    }
    let method = crate::http_metrics::METHODS[e.method];
    let status = e.status.as_u16();
    if e.route != 0 {
        let route = metrics.route(e.route);
        span.record("http.route", route);
        compozy_telemetry::traces::rename(span, format!("{method} {route}"));
    } else {
        compozy_telemetry::traces::rename(span, method.to_string());
    }
    span.record("http.response.status_code", i64::from(status));
    if e.status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}

/// nginx's code for "client closed the request before the response was sent".
const CLIENT_CLOSED: u16 = 499;

impl Drop for Finish {
    fn drop(&mut self) {
        let status = self.status.unwrap_or_else(|| {
            if std::thread::panicking() {
                StatusCode::INTERNAL_SERVER_ERROR
            } else if self.shared.metrics.is_aborting() {
                // Cut by the shutdown deadline: the server's doing, not the client's.
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::from_u16(CLIENT_CLOSED).unwrap_or(StatusCode::BAD_REQUEST)
            }
        });
        let request_bytes = self.cell.as_ref().map_or(0, |c| c.load(Ordering::Relaxed));
        let event = RequestFinished {
            method: self.method,
            route: self.route,
            status,
            duration: self.shared.clock.delta(self.start, self.shared.clock.raw()),
            request_bytes,
            response_bytes: self.response_bytes,
        };
        let span = self.span.take();
        // Inside the span: the duration's exemplar and the log line carry its trace.
        let _entered = span.as_ref().map(|span| {
            finish_span(span, &self.shared.metrics, &event);
            span.enter()
        });
        self.shared.metrics.finished(&event);
        log_finished(&self.shared.metrics, &event, self.request_id.as_ref());
        if let Some(cell) = self.cell.take() {
            cells::give(cell);
        }
    }
}

/// The access log line of a finished request: route template, never the raw path.
fn log_finished(metrics: &HttpMetrics, e: &RequestFinished, request_id: Option<&HeaderValue>) {
    let route = metrics.route(e.route);
    let method = crate::http_metrics::METHODS[e.method];
    let ms = e.duration.as_secs_f64() * 1000.0;
    let request_id = request_id.and_then(|v| v.to_str().ok()).unwrap_or("");
    if e.status.is_server_error() {
        tracing::warn!(method, route, status = e.status.as_u16(), duration_ms = ms, request_id, "request failed");
    } else {
        tracing::debug!(
            method,
            route,
            status = e.status.as_u16(),
            request_id,
            duration_ms = ms,
            request_bytes = e.request_bytes,
            response_bytes = e.response_bytes,
            "request finished"
        );
    }
}

pin_project! {
    pub struct MetricsFuture<F> {
        #[pin]
        future: F,
        guard: Option<Finish>,
    }
}

impl<F, ResBody, E> Future for MetricsFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<MeteredBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let saved = route_tag::enter();
        let polled = {
            // Borrowed, not cloned: entering takes no reference count per poll.
            let _entered = this.guard.as_ref().and_then(|g| g.span.as_ref()).map(tracing::Span::enter);
            this.future.poll(cx)
        };
        if let (Some(route), Some(guard)) = (route_tag::leave(saved), this.guard.as_mut())
            && guard.route == 0
        {
            guard.route = route;
        }
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(response)) => {
                let mut guard = this.guard.take();
                if let Some(g) = guard.as_mut() {
                    g.status = Some(response.status());
                    if response.status().is_server_error() || tracing::enabled!(tracing::Level::DEBUG) {
                        g.request_id = response.headers().get(&X_REQUEST_ID).cloned();
                    }
                }
                Poll::Ready(Ok(response.map(|inner| MeteredBody { inner, guard })))
            }
            Poll::Ready(Err(e)) => {
                if let Some(g) = this.guard.as_mut() {
                    g.status = Some(StatusCode::INTERNAL_SERVER_ERROR);
                }
                this.guard.take();
                Poll::Ready(Err(e))
            }
        }
    }
}

/// Bytes of data in a polled frame (trailers and pending polls count nothing).
#[inline]
fn data_len<D: Buf, E>(polled: &Poll<Option<Result<Frame<D>, E>>>) -> Option<u64> {
    match polled {
        Poll::Ready(Some(Ok(frame))) => frame.data_ref().map(|d| d.remaining() as u64),
        _ => None,
    }
}

pin_project! {
    /// A request body that counts the bytes read through it.
    pub struct CountingBody<B> {
        #[pin]
        inner: B,
        cell: Option<Arc<AtomicU64>>,
    }
}

impl<B: Body> Body for CountingBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let (Some(n), Some(cell)) = (data_len(&polled), this.cell.as_ref()) {
            cell.fetch_add(n, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project! {
    /// A response body that counts the bytes sent and records the request when it is dropped.
    pub struct MeteredBody<B> {
        #[pin]
        inner: B,
        guard: Option<Finish>,
    }
}

impl<B: Body> Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let (Some(n), Some(guard)) = (data_len(&polled), this.guard.as_mut()) {
            guard.response_bytes += n;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
