//! Traces: `tracing` spans exported as OpenTelemetry spans over OTLP http/protobuf, and the W3C
//! `traceparent` that carries a trace across HTTP calls and the task queue.
//!
//! Tracing is off unless [`Tracing::start`] ran: components check [`enabled`] (one relaxed load)
//! before building a span on a hot path, so an engine without a traces endpoint builds none.
//! Only spans whose target starts with `compozy` reach the OpenTelemetry layer; log events
//! never do (logs stay on stderr, and carry `trace_id`/`span_id` through [`WithTraceIds`]).
//!
//! The OTLP exporter runs on the SDK's batch thread; its HTTP requests are spawned on the
//! engine's Tokio runtime ([`RuntimeClient`]) with the workspace's `reqwest`, so no second HTTP
//! stack or TLS provider is built.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported by this process. Hot paths build no span when it is `false`.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Turns [`enabled`] on or off without touching the exporter: for benchmarks that compare both
/// in one process. The engine never calls it.
#[doc(hidden)]
pub fn force_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Where to export and how much to sample.
#[derive(Clone, Debug)]
pub struct TracingOptions {
    /// Collector base URL (`http://host:4318`); `/v1/traces` is appended unless present.
    pub endpoint: String,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    /// Share of new traces sampled (0–1); a trace started elsewhere keeps its caller's decision.
    pub sample_ratio: f64,
    pub service_name: String,
    pub service_version: String,
}

/// An error building the exporter.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the OTLP traces exporter: {0}")]
pub struct TracingError(String);

/// The running tracer: keep it until shutdown, then [`Tracing::shutdown`] flushes what is queued.
#[derive(Debug)]
pub struct Tracing {
    provider: SdkTracerProvider,
}

/// How often queued spans are sent: short enough that a trace shows up while one looks for it.
const EXPORT_DELAY: Duration = Duration::from_secs(1);

/// Spans queued for export at most; more are dropped (counted by the SDK) rather than held.
const MAX_QUEUE: usize = 8192;

impl Tracing {
    /// Builds the exporter (requests run on `runtime`), installs the exemplar trace-id source
    /// and turns [`enabled`] on.
    pub fn start(options: &TracingOptions, runtime: tokio::runtime::Handle) -> Result<Tracing, TracingError> {
        // reqwest is built without a default TLS provider; install ring's once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client =
            reqwest::Client::builder().timeout(options.timeout).build().map_err(|e| TracingError(e.to_string()))?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(traces_url(&options.endpoint))
            .with_timeout(options.timeout)
            .with_headers(options.headers.iter().cloned().collect::<HashMap<_, _>>())
            .with_http_client(RuntimeClient { client, runtime })
            .build()
            .map_err(|e| TracingError(e.to_string()))?;
        let batch = BatchConfigBuilder::default().with_scheduled_delay(EXPORT_DELAY).with_max_queue_size(MAX_QUEUE);
        let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batch.build()).build();
        let resource = opentelemetry_sdk::Resource::builder_empty()
            .with_service_name(options.service_name.clone())
            .with_attribute(KeyValue::new("service.version", options.service_version.clone()))
            .build();
        let ratio = options.sample_ratio.clamp(0.0, 1.0);
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio))))
            .with_resource(resource)
            .build();
        crate::exemplar::set_trace_id_source(sampled_trace_id);
        ENABLED.store(true, Ordering::Relaxed);
        Ok(Tracing { provider })
    }

    /// The layer turning the engine's spans (targets `compozy…`) into OpenTelemetry spans.
    pub fn layer<S>(&self) -> Box<dyn Layer<S> + Send + Sync>
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        let tracer = self.provider.tracer("compozy");
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_level(false)
            .with_target(false)
            // No `busy_ns`/`idle_ns`: they cost two clock reads per enter and exit of every span.
            .with_tracked_inactivity(false)
            .with_filter(filter_fn(|m| m.is_span() && m.target().starts_with("compozy")))
            .boxed()
    }

    /// Flushes the queued spans and stops the export thread. Blocks: call it off the runtime's
    /// worker threads (the export's requests run on them).
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "flushing traces at shutdown failed");
        }
    }
}

fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") { base.to_string() } else { format!("{base}/v1/traces") }
}

/// The OTLP exporter's HTTP client: sends each request as a task on the engine's runtime, so
/// the async `reqwest` client works from the SDK's batch thread (which is no Tokio thread).
#[derive(Debug)]
struct RuntimeClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for RuntimeClient {
    async fn send_bytes(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let response = client.execute(reqwest::Request::try_from(request)?).await?;
            let (status, headers) = (response.status(), response.headers().clone());
            let body = response.bytes().await?;
            let mut out = http::Response::new(body);
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            Ok::<_, reqwest::Error>(out)
        });
        Ok(sent.await??)
    }
}

/// The exemplar source: the current span's trace id when it is sampled.
fn sampled_trace_id() -> Option<[u8; 16]> {
    Context::map_current(|cx| {
        let sc = cx.span().span_context().clone();
        (sc.is_valid() && sc.is_sampled()).then(|| sc.trace_id().to_bytes())
    })
}

/// The current span's context, when there is a valid one.
fn current_span_context() -> Option<SpanContext> {
    if !enabled() {
        return None;
    }
    Context::map_current(|cx| {
        let sc = cx.span().span_context().clone();
        sc.is_valid().then_some(sc)
    })
}

/// The W3C `traceparent` of the current span (`00-<trace>-<span>-<flags>`), to store with a
/// task or send to an HTTP target; `None` outside a span or when tracing is off.
pub fn traceparent() -> Option<String> {
    current_span_context().map(|sc| format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8()))
}

/// `trace_id` and `span_id` (hex) of the current span, when it is sampled: what logs carry.
pub fn current_ids() -> Option<(String, String)> {
    current_span_context()
        .filter(SpanContext::is_sampled)
        .map(|sc| (sc.trace_id().to_string(), sc.span_id().to_string()))
}

struct OneHeader<'a>(&'a str);

impl Extractor for OneHeader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0)
    }
    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

/// The remote span context of a `traceparent` value; `None` when it is malformed.
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let cx = TraceContextPropagator::new().extract(&OneHeader(value));
    let sc = cx.span().span_context().clone();
    sc.is_valid().then_some(sc)
}

/// Makes `span` a child of the span a `traceparent` names (an inbound request's, or the
/// enqueuer's of a task). Call before the span is first entered; a malformed value is ignored.
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    if let Some(sc) = parse_traceparent(traceparent) {
        let _ = span.set_parent(Context::new().with_remote_span_context(sc));
    }
}

/// Links `span` to the span a `traceparent` names, without making it its parent (a retry or a
/// rescue of a task starts its own trace, linked to the enqueuer's).
pub fn add_link(span: &tracing::Span, traceparent: &str) {
    if let Some(sc) = parse_traceparent(traceparent) {
        span.add_link(sc);
    }
}

/// Names `span` once its name is known (a server span's route is matched after it started).
pub fn rename(span: &tracing::Span, name: String) {
    span.context().span().update_name(name);
}

/// Makes `span` a new root: without it, a span created inside another span is its child.
pub fn set_root(span: &tracing::Span) {
    let _ = span.set_parent(Context::new());
}

/// A log line formatter adding `trace_id` and `span_id` to lines written inside a sampled span
/// (JSON: two more fields; text: two `key=value` pairs at the end).
#[derive(Debug)]
pub struct WithTraceIds<F> {
    inner: F,
    json: bool,
}

impl<F> WithTraceIds<F> {
    pub fn new(inner: F, json: bool) -> Self {
        Self { inner, json }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let Some((trace_id, span_id)) = current_ids() else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        let body = line.trim_end_matches('\n');
        if self.json && body.ends_with('}') {
            let open = &body[..body.len() - 1];
            let sep = if open.ends_with('{') { "" } else { "," };
            writeln!(writer, "{open}{sep}\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"}}")
        } else {
            writeln!(writer, "{body} trace_id={trace_id} span_id={span_id}")
        }
    }
}

/// An INFO span of the engine when tracing is on, [`tracing::Span::none`] (nothing built, nothing
/// recorded) when it is off. Same arguments as `tracing::info_span!` without a target: the
/// caller's module path (`compozy_…`) is the target the exporter's layer takes.
#[macro_export]
macro_rules! span {
    ($($args:tt)+) => {
        if $crate::traces::enabled() { ::tracing::info_span!($($args)+) } else { ::tracing::Span::none() }
    };
}

/// Whether the caller is inside a sampled span (tracing on). Child spans are built only then:
/// background loops start no traces of their own, and the steps of a request or task that is
/// not sampled cost no span each (their root alone carries the trace context on).
#[inline]
pub fn in_sampled_trace() -> bool {
    enabled() && Context::map_current(|cx| cx.span().span_context().is_sampled())
}

/// Whether `span` is exported: a sampled span of a running tracer. Attributes that only the
/// exported span shows (a name, a route) are worth recording only then.
pub fn is_sampled(span: &tracing::Span) -> bool {
    !span.is_none() && span.context().span().span_context().is_sampled()
}

/// Like [`span!`], but only inside a sampled trace ([`in_sampled_trace`]): for the steps of a
/// request or task and the client spans under them, never roots of their own.
#[macro_export]
macro_rules! child_span {
    ($($args:tt)+) => {
        if $crate::traces::in_sampled_trace() { ::tracing::info_span!($($args)+) } else { ::tracing::Span::none() }
    };
}
