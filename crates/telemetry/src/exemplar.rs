//! Exemplars: which trace a recorded latency belongs to. Tracing installs the source once at
//! start; without it (tracing off) every lookup is one atomic load answering `None`.

use std::sync::OnceLock;

/// Returns the trace id of the sampled span the caller is in, if any.
pub type TraceIdSource = fn() -> Option<[u8; 16]>;

static SOURCE: OnceLock<TraceIdSource> = OnceLock::new();

/// Sets the process's source (once; later calls are ignored).
pub fn set_trace_id_source(f: TraceIdSource) {
    let _ = SOURCE.set(f);
}

/// The current sampled trace id, when a source is set and the caller is inside a sampled span.
pub fn current_trace_id() -> Option<[u8; 16]> {
    SOURCE.get().and_then(|f| f())
}
