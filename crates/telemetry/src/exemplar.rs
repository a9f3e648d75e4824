//! Exemplars: the trace id of a sampled request, kept next to the histogram bucket its latency
//! fell into, so that a latency spike on a dashboard links to a trace that caused it.
//!
//! Telemetry does not know about tracing (components depend on telemetry, and tracing setup
//! lives above both): whoever sets up tracing registers a [`TraceIdSource`] once at start-up,
//! and the latency histograms ask [`current_trace_id`] when they record. Without a source,
//! asking costs one atomic load and nothing is kept.
//!
//! The trace id is an exemplar label, never a series label: it adds no series. Exemplars are
//! written only in the OpenMetrics exposition; Prometheus text 0.0.4 has no syntax for them.

use std::fmt::Write;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Returns the trace id of the calling context when it is sampled, `None` otherwise.
pub type TraceIdSource = fn() -> Option<[u8; 16]>;

static SOURCE: OnceLock<TraceIdSource> = OnceLock::new();

/// Registers the process's trace id source. Set once, at start-up, by the tracing setup; a
/// second call is ignored (the first source stays) and logged.
pub fn set_trace_id_source(f: TraceIdSource) {
    if SOURCE.set(f).is_err() {
        tracing::warn!("a trace id source was already set; the new one is ignored");
    }
}

/// The sampled trace id of the calling context, if a source is set and reports one.
#[inline]
pub fn current_trace_id() -> Option<[u8; 16]> {
    SOURCE.get().and_then(|f| f())
}

/// The label name of the trace id in an exemplar (Grafana's default `exemplarTraceIdDestinations`
/// name is `trace_id` too).
pub const TRACE_ID_LABEL: &str = "trace_id";

/// One observation kept as a bucket's exemplar.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exemplar {
    pub trace_id: [u8; 16],
    pub value: f64,
    /// When the value was recorded, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

impl Exemplar {
    /// An exemplar recorded now. `None` for the all-zero (invalid) trace id and for values
    /// that OpenMetrics exemplars cannot carry (NaN, infinities).
    pub fn now(trace_id: [u8; 16], value: f64) -> Option<Self> {
        if trace_id == [0; 16] || !value.is_finite() {
            return None;
        }
        let timestamp_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        Some(Self { trace_id, value, timestamp_ms })
    }

    /// The trace id as 32 lowercase hex digits, as W3C `traceparent` and OTLP viewers show it.
    pub fn trace_id_hex(&self) -> String {
        let mut s = String::with_capacity(32);
        self.push_hex(&mut s);
        s
    }

    fn push_hex(&self, out: &mut String) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for b in self.trace_id {
            out.push(char::from(DIGITS[usize::from(b >> 4)]));
            out.push(char::from(DIGITS[usize::from(b & 0xf)]));
        }
    }

    /// Appends the OpenMetrics exemplar suffix of a bucket line:
    /// ` # {trace_id="<32 hex>"} <value> <timestamp seconds>`.
    pub fn write_openmetrics(&self, out: &mut String) {
        out.push_str(" # {");
        out.push_str(TRACE_ID_LABEL);
        out.push_str("=\"");
        self.push_hex(out);
        let _ = write!(out, "\"}} {} {}.{:03}", self.value, self.timestamp_ms / 1000, self.timestamp_ms % 1000);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_suffix_carries_hex_trace_id_value_and_seconds() {
        let mut id = [0u8; 16];
        id[0] = 0x4b;
        id[15] = 0x36;
        let e = Exemplar { trace_id: id, value: 0.0125, timestamp_ms: 1_700_000_000_042 };
        let mut out = String::new();
        e.write_openmetrics(&mut out);
        assert_eq!(out, " # {trace_id=\"4b000000000000000000000000000036\"} 0.0125 1700000000.042");
    }

    #[test]
    fn invalid_trace_ids_and_values_make_no_exemplar() {
        assert!(Exemplar::now([0; 16], 1.0).is_none());
        assert!(Exemplar::now([1; 16], f64::NAN).is_none());
        assert!(Exemplar::now([1; 16], f64::INFINITY).is_none());
        let e = Exemplar::now([1; 16], 2.5).expect("exemplar");
        assert_eq!(e.value, 2.5);
        assert!(e.timestamp_ms > 1_600_000_000_000);
    }
}
