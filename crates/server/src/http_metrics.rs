//! The HTTP server's instruments and the `RequestFinished` event that records them.
//!
//! Label handles are resolved once per (method, route, status) and kept in a lock-free table,
//! so recording a finished request costs a few relaxed atomic adds and no allocation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use compozy_telemetry::{Counter, Family, Histogram, Registry, UpDownGauge, catalog};
use http::{Method, StatusCode};

/// The `method` label's values: the catalog's enum, `_OTHER` last.
pub const METHODS: [&str; 8] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "_OTHER"];

/// Index of `method` in [`METHODS`].
#[inline]
pub fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::PATCH => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

/// The `path` label of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// Cached status codes: 100..=599 (hyper can send up to 999; those rare codes are looked up in
/// their families each time instead). A row is 500 pointers, 8 KB per (method, route) in use.
const STATUS_SLOTS: usize = 500;

/// The four per-request series of one (method, route, status).
struct Series {
    requests: Arc<Counter>,
    duration: Arc<Histogram>,
    request_size: Arc<Histogram>,
    response_size: Arc<Histogram>,
}

impl Series {
    #[inline]
    fn record(&self, event: &RequestFinished) {
        self.requests.inc();
        self.duration.observe_traced(event.duration.as_secs_f64());
        self.request_size.observe(event.request_bytes as f64);
        self.response_size.observe(event.response_bytes as f64);
    }
}

type StatusRow = Box<[OnceLock<Box<Series>>]>;

/// HTTP instruments for one server.
pub struct HttpMetrics {
    /// Route templates by index; index 0 is [`UNMATCHED`].
    routes: Box<[Box<str>]>,
    requests: Arc<Family<Counter>>,
    duration: Arc<Family<Histogram>>,
    request_size: Arc<Family<Histogram>>,
    response_size: Arc<Family<Histogram>>,
    in_flight: [Arc<UpDownGauge>; METHODS.len()],
    /// `[method][route]` → a row of status slots, allocated on first use of the pair.
    table: Box<[OnceLock<StatusRow>]>,
    /// Set when shutdown cuts connections at its deadline.
    aborting: AtomicBool,
}

/// What one finished request was, as the metrics layer saw it.
#[derive(Debug, Clone, Copy)]
pub struct RequestFinished {
    pub method: usize,
    pub route: usize,
    pub status: StatusCode,
    pub duration: Duration,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

impl HttpMetrics {
    /// Builds the instruments for `routes` (the server's route templates).
    pub fn new(registry: &Registry, routes: &[&str]) -> Self {
        let routes: Box<[Box<str>]> = std::iter::once(UNMATCHED).chain(routes.iter().copied()).map(Box::from).collect();
        let in_flight_family = registry.updown(&catalog::HTTP_REQUESTS_IN_FLIGHT);
        let in_flight = METHODS.map(|m| in_flight_family.get(&[m]));
        let table = (0..METHODS.len() * routes.len()).map(|_| OnceLock::new()).collect();
        Self {
            routes,
            requests: registry.counter(&catalog::HTTP_REQUESTS),
            duration: registry.histogram(&catalog::HTTP_REQUEST_DURATION),
            request_size: registry.histogram(&catalog::HTTP_REQUEST_SIZE),
            response_size: registry.histogram(&catalog::HTTP_RESPONSE_SIZE),
            in_flight,
            table,
            aborting: AtomicBool::new(false),
        }
    }

    /// From now on, requests dropped without a response were cut by the server (503), not
    /// abandoned by their client (499).
    pub fn set_aborting(&self) {
        self.aborting.store(true, Ordering::Relaxed);
    }

    pub fn is_aborting(&self) -> bool {
        self.aborting.load(Ordering::Relaxed)
    }

    /// The template of route `index` (0 is `unmatched`).
    pub fn route(&self, index: usize) -> &str {
        self.routes.get(index).map_or(UNMATCHED, |r| r)
    }

    /// Index of `template`, if it is one of this server's routes.
    pub fn route_index(&self, template: &str) -> Option<usize> {
        self.routes.iter().position(|r| &**r == template)
    }

    #[inline]
    pub fn started(&self, method: usize) {
        self.in_flight[method].inc();
    }

    /// Records a finished request: one event, all five families.
    #[inline]
    pub fn finished(&self, event: &RequestFinished) {
        self.in_flight[event.method].dec();
        let route = if event.route < self.routes.len() { event.route } else { 0 };
        let slot = usize::from(event.status.as_u16()).wrapping_sub(100);
        if slot < STATUS_SLOTS {
            let row = self.table[event.method * self.routes.len() + route]
                .get_or_init(|| (0..STATUS_SLOTS).map(|_| OnceLock::new()).collect());
            row[slot].get_or_init(|| Box::new(self.resolve(event.method, route, event.status))).record(event);
        } else {
            self.resolve(event.method, route, event.status).record(event);
        }
    }

    fn resolve(&self, method: usize, route: usize, status: StatusCode) -> Series {
        let labels = [METHODS[method], self.route(route), status.as_str()];
        Series {
            requests: self.requests.get(&labels),
            duration: self.duration.get(&labels),
            request_size: self.request_size.get(&labels),
            response_size: self.response_size.get(&labels),
        }
    }
}
