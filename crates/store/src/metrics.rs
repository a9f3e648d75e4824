//! Pool metrics. Gauges are read from the pool at collection time; the wait histogram and the
//! timeout and error counters are recorded on every acquire through handles resolved once.

use std::sync::Arc;
use std::time::Duration;

use compozy_telemetry::catalog::{self, MetricDef};
use compozy_telemetry::{Counter, Histogram, Registry};

/// The seven catalog families of one SQL backend.
pub(crate) struct PoolDefs {
    open: &'static MetricDef,
    in_use: &'static MetricDef,
    idle: &'static MetricDef,
    max: &'static MetricDef,
    wait: &'static MetricDef,
    timeouts: &'static MetricDef,
    errors: &'static MetricDef,
}

pub(crate) const POSTGRES: PoolDefs = PoolDefs {
    open: &catalog::POSTGRES_CONNECTIONS_OPEN,
    in_use: &catalog::POSTGRES_CONNECTIONS_IN_USE,
    idle: &catalog::POSTGRES_CONNECTIONS_IDLE,
    max: &catalog::POSTGRES_MAX_OPEN_CONNECTIONS,
    wait: &catalog::POSTGRES_CONNECTION_WAIT_DURATION,
    timeouts: &catalog::POSTGRES_CONNECTION_TIMEOUTS,
    errors: &catalog::POSTGRES_CONNECTION_ERRORS,
};

pub(crate) const SQLITE: PoolDefs = PoolDefs {
    open: &catalog::SQLITE_CONNECTIONS_OPEN,
    in_use: &catalog::SQLITE_CONNECTIONS_IN_USE,
    idle: &catalog::SQLITE_CONNECTIONS_IDLE,
    max: &catalog::SQLITE_MAX_OPEN_CONNECTIONS,
    wait: &catalog::SQLITE_CONNECTION_WAIT_DURATION,
    timeouts: &catalog::SQLITE_CONNECTION_TIMEOUTS,
    errors: &catalog::SQLITE_CONNECTION_ERRORS,
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

/// How one acquire ended, as the counters see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AcquireEnd {
    /// A connection, or no answer at all (cancelled, or the pool closed at shutdown).
    Done,
    /// No connection within `acquire_timeout`. sqlx retries a refused TCP connect until then,
    /// so a database that is down but whose host answers ends here.
    TimedOut,
    /// Failed at once: connect errors sqlx does not retry (authentication, TLS, reset, unknown
    /// database, unreachable host, unopenable file).
    Failed,
}

impl AcquireEnd {
    pub(crate) fn of<T>(result: &Result<T, sqlx::Error>) -> AcquireEnd {
        match result {
            Ok(_) | Err(sqlx::Error::PoolClosed) => AcquireEnd::Done,
            Err(sqlx::Error::PoolTimedOut) => AcquireEnd::TimedOut,
            Err(_) => AcquireEnd::Failed,
        }
    }
}

/// Per-acquire instruments of one SQL pool.
#[derive(Clone)]
pub(crate) struct AcquireMetrics {
    wait: Arc<Histogram>,
    timeouts: Arc<Counter>,
    errors: Arc<Counter>,
}

impl AcquireMetrics {
    #[inline]
    pub(crate) fn record(&self, waited: Duration, end: AcquireEnd) {
        self.wait.observe(waited.as_secs_f64());
        match end {
            AcquireEnd::Done => {}
            AcquireEnd::TimedOut => self.timeouts.inc(),
            AcquireEnd::Failed => self.errors.inc(),
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
    // Resolving the counters here exposes them at zero from the start.
    AcquireMetrics {
        wait: registry.histogram(defs.wait).get(&[]),
        timeouts: registry.counter(defs.timeouts).get(&[]),
        errors: registry.counter(defs.errors).get(&[]),
    }
}
