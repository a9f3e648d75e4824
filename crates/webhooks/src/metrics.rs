//! The catalog's webhook metrics. Label values are bounded: `source` and `event_type` are
//! configured names (or the fixed `unknown`/`none`), `result` and `outcome` closed enums.

use std::collections::HashMap;
use std::sync::Arc;

use compozy_autoload::ProjectRegistry;
use compozy_telemetry::{Counter, Family, Histogram, Registry, UpDownGauge, catalog};
use parking_lot::RwLock;

/// Why a delivery ended as it did: the `result` label of `compozy_webhook_deliveries_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryResult {
    Accepted,
    NoMatch,
    Duplicate,
    /// A duplicate of a delivery still being processed (409): the sender retries later.
    InProgress,
    VerificationFailed,
    BadRequest,
    PayloadTooLarge,
    /// The body did not arrive within `webhooks.body_timeout`.
    BodyTimeout,
    SchemaError,
    Overloaded,
    NotFound,
    Error,
}

pub const RESULTS: [DeliveryResult; 12] = [
    DeliveryResult::Accepted,
    DeliveryResult::NoMatch,
    DeliveryResult::Duplicate,
    DeliveryResult::InProgress,
    DeliveryResult::VerificationFailed,
    DeliveryResult::BadRequest,
    DeliveryResult::PayloadTooLarge,
    DeliveryResult::BodyTimeout,
    DeliveryResult::SchemaError,
    DeliveryResult::Overloaded,
    DeliveryResult::NotFound,
    DeliveryResult::Error,
];

impl DeliveryResult {
    pub fn label(self) -> &'static str {
        match self {
            DeliveryResult::Accepted => "accepted",
            DeliveryResult::NoMatch => "no_match",
            DeliveryResult::Duplicate => "duplicate",
            DeliveryResult::InProgress => "in_progress",
            DeliveryResult::VerificationFailed => "verification_failed",
            DeliveryResult::BadRequest => "bad_request",
            DeliveryResult::PayloadTooLarge => "payload_too_large",
            DeliveryResult::BodyTimeout => "body_timeout",
            DeliveryResult::SchemaError => "schema_error",
            DeliveryResult::Overloaded => "overloaded",
            DeliveryResult::NotFound => "not_found",
            DeliveryResult::Error => "error",
        }
    }

    /// The `outcome` of `events_total` and `processing_duration_seconds`: a delivery the engine
    /// did not fail is a success: 2xx answers, and `in_progress` (the first copy is being
    /// processed; the sender retries later).
    pub fn outcome(self) -> &'static str {
        match self {
            DeliveryResult::Accepted
            | DeliveryResult::NoMatch
            | DeliveryResult::Duplicate
            | DeliveryResult::InProgress => "success",
            _ => "error",
        }
    }
}

/// `event_type` when no event matched or processing stopped before matching.
pub const NO_EVENT: &str = "none";
/// The event name (and `event_type` label) of a delivery to a webhook that declares no events.
pub const DEFAULT_EVENT: &str = "default";
/// `source` and `event_type` of a delivery to an unknown slug.
pub const UNKNOWN: &str = "unknown";

/// The per-source handles, resolved once per source name.
struct SourceHandles {
    deliveries: Vec<Arc<Counter>>,
    verify: Arc<Histogram>,
}

/// How one delivery ended, as the metrics need it.
#[derive(Debug)]
pub struct Ended<'a> {
    pub source: &'a str,
    pub event_type: &'a str,
    pub result: DeliveryResult,
    /// Bytes of the body when it was read whole.
    pub payload_size: Option<usize>,
    pub seconds: f64,
}

pub struct WebhookMetrics {
    enabled: bool,
    depth: Arc<UpDownGauge>,
    payload_size: Arc<Family<Histogram>>,
    processing: Arc<Family<Histogram>>,
    events: Arc<Family<Counter>>,
    deliveries: Arc<Family<Counter>>,
    verify: Arc<Family<Histogram>>,
    sources: RwLock<HashMap<Box<str>, Arc<SourceHandles>>>,
}

impl WebhookMetrics {
    /// `enabled = false` keeps the families (so `/metrics` still lists them) but records nothing:
    /// the baseline of the overhead measurement.
    pub fn new(registry: &Registry, enabled: bool) -> Self {
        Self {
            enabled,
            depth: registry.updown(&catalog::WEBHOOK_QUEUE_DEPTH).get(&[]),
            payload_size: registry.histogram(&catalog::WEBHOOK_PAYLOAD_SIZE),
            processing: registry.histogram(&catalog::WEBHOOK_PROCESSING_DURATION),
            events: registry.counter(&catalog::WEBHOOK_EVENTS),
            deliveries: registry.counter(&catalog::WEBHOOK_DELIVERIES),
            verify: registry.histogram(&catalog::WEBHOOK_VERIFY_DURATION),
            sources: RwLock::new(HashMap::new()),
        }
    }

    fn source(&self, source: &str) -> Arc<SourceHandles> {
        if let Some(h) = self.sources.read().get(source) {
            return h.clone();
        }
        let handles = Arc::new(SourceHandles {
            deliveries: RESULTS.iter().map(|r| self.deliveries.get(&[source, r.label()])).collect(),
            verify: self.verify.get(&[source]),
        });
        self.sources.write().entry(source.into()).or_insert(handles).clone()
    }

    /// Counts a delivery as waiting or in process until the guard drops.
    pub fn enter(&self) -> DepthGuard {
        if self.enabled {
            self.depth.inc();
        }
        DepthGuard { depth: self.enabled.then(|| self.depth.clone()) }
    }

    /// Creates, at zero, every series the project's webhooks can record: a series that appears
    /// already at 1 gives `rate` and `increase` nothing to compare, so the first deliveries after
    /// a start or a reload would be invisible to the alerts.
    pub fn prime(&self, registry: &ProjectRegistry) {
        if !self.enabled {
            return;
        }
        for slug in registry.webhook_slugs() {
            let Some((_, hook)) = registry.webhook(slug) else { continue };
            let source = hook.source();
            self.source(source);
            let events = hook.events.iter().map(|e| e.name.as_str());
            for event_type in events.chain([NO_EVENT, DEFAULT_EVENT]) {
                for outcome in ["success", "error"] {
                    self.events.get(&[event_type, outcome]);
                    self.processing.get(&[event_type, outcome]);
                }
                self.payload_size.get(&[event_type, source]);
            }
        }
    }

    pub fn verified(&self, source: &str, seconds: f64) {
        if self.enabled {
            self.source(source).verify.observe(seconds);
        }
    }

    /// Records the end of one delivery: exactly one `deliveries_total` increment.
    pub fn ended(&self, e: &Ended<'_>) {
        if !self.enabled {
            return;
        }
        let index = RESULTS.iter().position(|r| *r == e.result).unwrap_or(RESULTS.len() - 1);
        if let Some(c) = self.source(e.source).deliveries.get(index) {
            c.inc();
        }
        let outcome = e.result.outcome();
        self.events.get(&[e.event_type, outcome]).inc();
        self.processing.get(&[e.event_type, outcome]).observe_traced(e.seconds);
        if let Some(size) = e.payload_size {
            self.payload_size.get(&[e.event_type, e.source]).observe(size as f64);
        }
    }
}

/// Decrements `queue_depth` when the delivery is finished (whatever way it ends, panics included).
pub struct DepthGuard {
    depth: Option<Arc<UpDownGauge>>,
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        if let Some(d) = &self.depth {
            d.dec();
        }
    }
}
