//! Tracing's glue, in process: log lines inside a sampled span carry its `trace_id` and
//! `span_id` (JSON fields or text pairs), lines outside carry none, and the exemplar source and
//! `traceparent` name the same span; the steps of an unsampled trace build no span.

use std::io::Write;
use std::sync::{Arc, Mutex};

use compozy_telemetry::traces::{Tracing, TracingOptions, WithTraceIds};
use tracing_subscriber::layer::SubscriberExt;

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lines").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn take(&self) -> Vec<String> {
        let bytes = std::mem::take(&mut *self.0.lock().expect("lines"));
        String::from_utf8(bytes).expect("utf-8").lines().map(str::to_string).collect()
    }
}

fn tracing_on(rt: &tokio::runtime::Runtime) -> Tracing {
    tracing_at(rt, 1.0)
}

fn tracing_at(rt: &tokio::runtime::Runtime, sample_ratio: f64) -> Tracing {
    let options = TracingOptions {
        // Nothing listens there: exports fail quietly, spans are still built and sampled.
        endpoint: "http://127.0.0.1:9".into(),
        headers: Vec::new(),
        timeout: std::time::Duration::from_millis(200),
        sample_ratio,
        service_name: "test".into(),
        service_version: "0".into(),
    };
    Tracing::start(&options, rt.handle().clone()).expect("tracing starts")
}

/// Logs `inside` within a span (target `compozy…`, as the engine's) and `outside` after it;
/// returns the lines and the span's `traceparent`.
fn log_in_span(subscriber: impl tracing::Subscriber + Send + Sync) -> (String, Option<[u8; 16]>) {
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!(target: "compozy::test", "work");
        let (traceparent, exemplar) = span.in_scope(|| {
            tracing::info!(answer = 42, "inside");
            (compozy_telemetry::traces::traceparent(), compozy_telemetry::exemplar::current_trace_id())
        });
        drop(span);
        tracing::info!("outside");
        assert!(compozy_telemetry::exemplar::current_trace_id().is_none(), "no trace outside a span");
        (traceparent.expect("a traceparent inside a sampled span"), exemplar)
    })
}

#[test]
fn log_lines_in_a_sampled_span_carry_its_ids() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let tracing = tracing_on(&rt);

    let lines = Lines::default();
    let writer = lines.clone();
    let format = tracing_subscriber::fmt::format().json().flatten_event(true);
    let json = tracing_subscriber::fmt::layer()
        .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
        .event_format(WithTraceIds::new(format, true))
        .with_writer(move || writer.clone());
    let (traceparent, exemplar) = log_in_span(tracing_subscriber::registry().with(json).with(tracing.layer()));
    let (trace_id, span_id) = {
        let parts: Vec<&str> = traceparent.split('-').collect();
        (parts[1].to_string(), parts[2].to_string())
    };
    let hex: String =
        exemplar.expect("the exemplar source names the trace").iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, trace_id);

    let logged = lines.take();
    assert_eq!(logged.len(), 2, "{logged:?}");
    let inside: serde_json::Value = serde_json::from_str(&logged[0]).expect("JSON line");
    assert_eq!(inside["message"], "inside");
    assert_eq!(inside["answer"], 42);
    assert_eq!(inside["trace_id"], trace_id.as_str());
    assert_eq!(inside["span_id"], span_id.as_str());
    let outside: serde_json::Value = serde_json::from_str(&logged[1]).expect("JSON line");
    assert_eq!(outside["message"], "outside");
    assert!(outside.get("trace_id").is_none(), "{outside}");

    let lines = Lines::default();
    let writer = lines.clone();
    let text = tracing_subscriber::fmt::layer()
        .event_format(WithTraceIds::new(tracing_subscriber::fmt::format().with_ansi(false), false))
        .with_writer(move || writer.clone());
    let (traceparent, _) = log_in_span(tracing_subscriber::registry().with(text).with(tracing.layer()));
    let logged = lines.take();
    let ids = format!("trace_id={} span_id={}", &traceparent[3..35], &traceparent[36..52]);
    assert!(logged[0].contains("inside") && logged[0].ends_with(&ids), "{logged:?}");
    assert!(!logged[1].contains("trace_id"), "{logged:?}");
    tracing.shutdown();
}

/// A root span (what a request or task attempt builds) and, inside it, one step built with
/// `child_span!`: whether the root is sampled, the step's span, and the root's `traceparent`.
fn step_in_root(tracing: &Tracing) -> (bool, tracing::Span, Option<String>) {
    let subscriber = tracing_subscriber::registry().with(tracing.layer());
    tracing::subscriber::with_default(subscriber, || {
        let root = tracing::info_span!(target: "compozy::test", "root");
        let sampled = compozy_telemetry::traces::is_sampled(&root);
        root.in_scope(|| (sampled, compozy_telemetry::child_span!("step"), compozy_telemetry::traces::traceparent()))
    })
}

#[test]
fn the_steps_of_an_unsampled_trace_build_no_span_but_its_context_still_propagates() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (sampled, step, traceparent) = step_in_root(&tracing_at(&rt, 0.0));
    assert!(!sampled, "ratio 0 samples no new trace");
    assert!(step.is_none(), "a step of an unsampled trace is not built");
    let traceparent = traceparent.expect("the unsampled root still carries a context to propagate");
    assert!(traceparent.ends_with("-00"), "propagated as not sampled: {traceparent}");

    let (sampled, step, traceparent) = step_in_root(&tracing_at(&rt, 1.0));
    assert!(sampled, "ratio 1 samples every new trace");
    assert!(!step.is_none(), "a step of a sampled trace is built");
    assert!(traceparent.expect("a sampled root's context").ends_with("-01"));
}
