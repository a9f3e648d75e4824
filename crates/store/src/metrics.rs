//! Pool metrics. Gauges are read from the pool at collection time; the wait histogram and the
//! timeout counter are recorded on every acquire through handles resolved once.

use std::sync::Arc;
use std::time::Duration;

use compozy_telemetry::catalog::{self, MetricDef};
use compozy_telemetry::{Counter, Histogram, Registry};

/// The six catalog families of one SQL backend.
pub(crate) struct PoolDefs {
    open: &'static MetricDef,
    in_use: &'static MetricDef,
    idle: &'static MetricDef,
    max: &'static MetricDef,
    wait: &'static MetricDef,
    timeouts: &'static MetricDef,
}

pub(crate) const POSTGRES: PoolDefs = PoolDefs {
    open: &catalog::POSTGRES_CONNECTIONS_OPEN,
    in_use: &catalog::POSTGRES_CONNECTIONS_IN_USE,
    idle: &catalog::POSTGRES_CONNECTIONS_IDLE,
    max: &catalog::POSTGRES_MAX_OPEN_CONNECTIONS,
    wait: &catalog::POSTGRES_CONNECTION_WAIT_DURATION,
    timeouts: &catalog::POSTGRES_CONNECTION_TIMEOUTS,
};

pub(crate) const SQLITE: PoolDefs = PoolDefs {
    open: &catalog::SQLITE_CONNECTIONS_OPEN,
    in_use: &catalog::SQLITE_CONNECTIONS_IN_USE,
    idle: &catalog::SQLITE_CONNECTIONS_IDLE,
    max: &catalog::SQLITE_MAX_OPEN_CONNECTIONS,
    wait: &catalog::SQLITE_CONNECTION_WAIT_DURATION,
    timeouts: &catalog::SQLITE_CONNECTION_TIMEOUTS,
};

/// What the gauges read: open and idle connections now (`sqlx::Pool::size`, `num_idle`).
pub(crate) trait PoolGauges: Send + Sync + 'static {
    fn open(&self) -> u32;
    fn idle(&self) -> u32;
}

impl<DB: sqlx::Database> PoolGauges for sqlx::Pool<DB> {
    fn open(&self) -> u32 {
        self.size()
    }
    fn idle(&self) -> u32 {
        u32::try_from(self.num_idle()).unwrap_or(u32::MAX)
    }
}

/// Per-acquire instruments of one SQL pool.
#[derive(Clone)]
pub(crate) struct AcquireMetrics {
    wait: Arc<Histogram>,
    timeouts: Arc<Counter>,
}

impl AcquireMetrics {
    #[inline]
    pub(crate) fn record(&self, waited: Duration, timed_out: bool) {
        self.wait.observe(waited.as_secs_f64());
        if timed_out {
            self.timeouts.inc();
        }
    }
}

/// Registers the pool's families on `registry` and returns the per-acquire handles.
pub(crate) fn register_pool(
    registry: &Registry,
    defs: &PoolDefs,
    pool: Arc<dyn PoolGauges>,
    max: u32,
) -> AcquireMetrics {
    let p = pool.clone();
    registry.observe(defs.open, move |emit| emit(&[], f64::from(p.open())));
    let p = pool.clone();
    registry.observe(defs.idle, move |emit| emit(&[], f64::from(p.idle())));
    // Read both once so that in_use never goes negative between two reads.
    registry.observe(defs.in_use, move |emit| {
        let (open, idle) = (pool.open(), pool.idle());
        emit(&[], f64::from(open.saturating_sub(idle)))
    });
    registry.observe(defs.max, move |emit| emit(&[], f64::from(max)));
    AcquireMetrics { wait: registry.histogram(defs.wait).get(&[]), timeouts: registry.counter(defs.timeouts).get(&[]) }
}
