//! The metric catalog: every metric the engine exports, in one table.
//!
//! This table is the single source of truth. Components build their instruments from these
//! entries, `/metrics` takes names, help, units and buckets from them, and `docs/metrics.md`
//! is generated from them (a test fails when the file and the table differ).
//!
//! Names are stored without the namespace (`compozy` by default, `monitoring.namespace`) and
//! without the unit and `_total` suffixes, which the exposition appends.

/// The kind of instrument a catalog entry describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// The unit suffix of a metric name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    None,
    Seconds,
    Bytes,
    Ratio,
}

impl Unit {
    pub fn suffix(self) -> Option<&'static str> {
        match self {
            Unit::None => None,
            Unit::Seconds => Some("seconds"),
            Unit::Bytes => Some("bytes"),
            Unit::Ratio => Some("ratio"),
        }
    }
}

/// One row of the catalog.
#[derive(Debug, PartialEq)]
pub struct MetricDef {
    /// Name without namespace, unit suffix or `_total`.
    pub name: &'static str,
    /// `true` for `compozy_` metrics; `false` for the conventional `process_*` ones.
    pub namespaced: bool,
    pub kind: Kind,
    pub unit: Unit,
    pub help: &'static str,
    pub labels: &'static [&'static str],
    /// Upper bounds of histogram buckets (without +Inf); empty for other kinds.
    pub buckets: &'static [f64],
    /// The catalog section the metric belongs to (used for the generated docs).
    pub section: &'static str,
}

impl MetricDef {
    /// The exposed family name under `namespace`, with its unit suffix (counters get `_total`
    /// on the sample line, not here).
    pub fn family_name(&self, namespace: &str) -> String {
        let mut s = String::new();
        if self.namespaced {
            s.push_str(namespace);
            s.push('_');
        }
        s.push_str(self.name);
        if let Some(unit) = self.unit.suffix() {
            s.push('_');
            s.push_str(unit);
        }
        s
    }

    /// The name a query uses: the family name, plus `_total` for counters.
    pub fn sample_name(&self, namespace: &str) -> String {
        let mut s = self.family_name(namespace);
        if self.kind == Kind::Counter {
            s.push_str("_total");
        }
        s
    }
}

macro_rules! metric {
    ($id:ident, $section:literal, $kind:ident, $name:literal, $unit:ident, [$($label:literal),*], [$($b:expr),*], $help:literal) => {
        pub static $id: MetricDef = MetricDef {
            name: $name,
            namespaced: true,
            kind: Kind::$kind,
            unit: Unit::$unit,
            help: $help,
            labels: &[$($label),*],
            buckets: &[$($b as f64),*],
            section: $section,
        };
    };
}

const HTTP_DURATION_BUCKETS: [f64; 12] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

// --- HTTP server -------------------------------------------------------------------------------
metric!(
    HTTP_REQUESTS,
    "HTTP server",
    Counter,
    "http_requests",
    None,
    ["method", "path", "status_code"],
    [],
    "HTTP requests finished, by method, route template and status sent."
);
pub static HTTP_REQUEST_DURATION: MetricDef = MetricDef {
    name: "http_request_duration",
    namespaced: true,
    kind: Kind::Histogram,
    unit: Unit::Seconds,
    help: "Time from a request's arrival until its response body was fully sent or dropped.",
    labels: &["method", "path", "status_code"],
    buckets: &HTTP_DURATION_BUCKETS,
    section: "HTTP server",
};
metric!(
    HTTP_REQUEST_SIZE,
    "HTTP server",
    Histogram,
    "http_request_size",
    Bytes,
    ["method", "path", "status_code"],
    [100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8],
    "Request body bytes actually received (0 for none; chunked bodies counted as they stream)."
);
metric!(
    HTTP_RESPONSE_SIZE,
    "HTTP server",
    Histogram,
    "http_response_size",
    Bytes,
    ["method", "path", "status_code"],
    [100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8],
    "Response body bytes actually sent, streamed bodies included."
);
metric!(
    HTTP_REQUESTS_IN_FLIGHT,
    "HTTP server",
    Gauge,
    "http_requests_in_flight",
    None,
    ["method"],
    [],
    "Requests accepted and not yet finished."
);
metric!(
    HTTP_CONNECTIONS_OPEN,
    "HTTP server",
    Gauge,
    "http_connections_open",
    None,
    [],
    [],
    "TCP connections open on the API listener."
);
metric!(
    HTTP_CONNECTIONS_LIMIT,
    "HTTP server",
    Gauge,
    "http_connections_limit",
    None,
    [],
    [],
    "The connection cap in force (server.max_connections, or the one derived from the file limit)."
);
metric!(
    HTTP_CONNECTIONS_REFUSED,
    "HTTP server",
    Counter,
    "http_connections_refused",
    None,
    ["reason"],
    [],
    "Connections closed at accept without being served: over_capacity, or accept_error (the accept itself failed, e.g. out of file descriptors)."
);
metric!(
    HTTP_CONNECTIONS_TIMED_OUT,
    "HTTP server",
    Counter,
    "http_connections_timed_out",
    None,
    ["phase"],
    [],
    "Connections the server closed by its deadlines: no complete request head in time (header), or idle too long between requests (idle)."
);

// --- Database pools ------------------------------------------------------------------------------
metric!(
    POSTGRES_CONNECTIONS_OPEN,
    "Database pools",
    Gauge,
    "postgres_connections_open",
    None,
    [],
    [],
    "Postgres connections open (in use + idle)."
);
metric!(
    POSTGRES_CONNECTIONS_IN_USE,
    "Database pools",
    Gauge,
    "postgres_connections_in_use",
    None,
    [],
    [],
    "Postgres connections checked out of the pool."
);
metric!(
    POSTGRES_CONNECTIONS_IDLE,
    "Database pools",
    Gauge,
    "postgres_connections_idle",
    None,
    [],
    [],
    "Idle Postgres connections in the pool."
);
metric!(
    POSTGRES_MAX_OPEN_CONNECTIONS,
    "Database pools",
    Gauge,
    "postgres_max_open_connections",
    None,
    [],
    [],
    "Configured maximum size of the Postgres pool."
);
metric!(
    POSTGRES_CONNECTION_WAIT_DURATION,
    "Database pools",
    Histogram,
    "postgres_connection_wait_duration",
    Seconds,
    [],
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2],
    "Time to acquire a Postgres connection, recorded on every acquire, successful or not."
);
metric!(
    POSTGRES_CONNECTION_TIMEOUTS,
    "Database pools",
    Counter,
    "postgres_connection_timeouts",
    None,
    [],
    [],
    "Postgres connection acquires that timed out."
);
metric!(
    POSTGRES_CONNECTION_ERRORS,
    "Database pools",
    Counter,
    "postgres_connection_errors",
    None,
    [],
    [],
    "Postgres connection acquires that failed at once, without waiting out the timeout: the session was refused (authentication, unknown database, TLS failure, connection reset). A refused TCP connect is retried until the timeout and counts as a timeout."
);
metric!(
    SQLITE_CONNECTIONS_OPEN,
    "Database pools",
    Gauge,
    "sqlite_connections_open",
    None,
    [],
    [],
    "Embedded SQLite connections open (in use + idle)."
);
metric!(
    SQLITE_CONNECTIONS_IN_USE,
    "Database pools",
    Gauge,
    "sqlite_connections_in_use",
    None,
    [],
    [],
    "Embedded SQLite connections checked out of the pool."
);
metric!(
    SQLITE_CONNECTIONS_IDLE,
    "Database pools",
    Gauge,
    "sqlite_connections_idle",
    None,
    [],
    [],
    "Idle embedded SQLite connections in the pool."
);
metric!(
    SQLITE_MAX_OPEN_CONNECTIONS,
    "Database pools",
    Gauge,
    "sqlite_max_open_connections",
    None,
    [],
    [],
    "Configured maximum size of the embedded SQLite pool."
);
metric!(
    SQLITE_CONNECTION_WAIT_DURATION,
    "Database pools",
    Histogram,
    "sqlite_connection_wait_duration",
    Seconds,
    [],
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2],
    "Time to acquire an embedded SQLite connection, recorded on every acquire, successful or not."
);
metric!(
    SQLITE_CONNECTION_TIMEOUTS,
    "Database pools",
    Counter,
    "sqlite_connection_timeouts",
    None,
    [],
    [],
    "Embedded SQLite connection acquires that timed out."
);
metric!(
    SQLITE_CONNECTION_ERRORS,
    "Database pools",
    Counter,
    "sqlite_connection_errors",
    None,
    [],
    [],
    "Embedded SQLite connection acquires that failed at once, without waiting out the timeout (the database file cannot be opened)."
);
metric!(
    REDIS_POOL_SIZE,
    "Database pools",
    Gauge,
    "redis_pool_size",
    None,
    [],
    [],
    "Configured maximum size of the Redis pool."
);
metric!(
    REDIS_POOL_TOTAL_CONNS,
    "Database pools",
    Gauge,
    "redis_pool_total_conns",
    None,
    [],
    [],
    "Redis connections open now."
);
metric!(
    REDIS_POOL_IDLE_CONNS,
    "Database pools",
    Gauge,
    "redis_pool_idle_conns",
    None,
    [],
    [],
    "Idle Redis connections now."
);
metric!(
    REDIS_POOL_HITS,
    "Database pools",
    Counter,
    "redis_pool_hits",
    None,
    [],
    [],
    "Redis pool gets served by an existing idle connection."
);
metric!(
    REDIS_POOL_MISSES,
    "Database pools",
    Counter,
    "redis_pool_misses",
    None,
    [],
    [],
    "Redis pool gets that found no idle connection (they opened one or waited for one to be returned); gets that then timed out count in redis_pool_timeouts instead."
);
metric!(
    REDIS_POOL_TIMEOUTS,
    "Database pools",
    Counter,
    "redis_pool_timeouts",
    None,
    [],
    [],
    "Redis pool gets that timed out waiting for a connection."
);
metric!(
    REDIS_POOL_STALE_CONNS,
    "Database pools",
    Counter,
    "redis_pool_stale_conns",
    None,
    [],
    [],
    "Redis connections closed as broken, expired or idle-timed-out."
);

// --- Authentication ---------------------------------------------------------------------------------
metric!(
    AUTH_ATTEMPTS,
    "Authentication",
    Counter,
    "auth_attempts",
    None,
    ["outcome", "reason", "method"],
    [],
    "Authentication decisions on routes that require auth, by outcome, failure reason and method."
);
metric!(
    AUTH_TOKEN_AGE,
    "Authentication",
    Histogram,
    "auth_token_age",
    Seconds,
    ["method"],
    [60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400],
    "Age of the credential at use: JWT now - iat; API key now - creation."
);
metric!(
    AUTH_RATE_LIMIT_HITS,
    "Authentication",
    Counter,
    "auth_rate_limit_hits",
    None,
    ["ip_address", "user_id"],
    [],
    "Requests refused by rate limiting, by masked client address and user (cardinality-guarded)."
);
metric!(
    RATE_LIMIT_BLOCKS,
    "Authentication",
    Counter,
    "rate_limit_blocks",
    None,
    ["path", "key_type"],
    [],
    "Requests refused by rate limiting, by route template and the kind of key limited."
);
metric!(
    RATE_LIMIT_UNAVAILABLE,
    "Authentication",
    Counter,
    "rate_limit_unavailable",
    None,
    ["decision"],
    [],
    "Limit decisions that could not consult the limiter's store (Redis), by what was done (auth.rate_limit.fail_open)."
);
metric!(
    AUTH_DURATION,
    "Authentication",
    Histogram,
    "auth_duration",
    Seconds,
    ["method", "outcome"],
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    "Time spent authenticating a request."
);

// --- Webhooks ---------------------------------------------------------------------------------------
metric!(
    WEBHOOK_PAYLOAD_SIZE,
    "Webhooks",
    Histogram,
    "webhook_payload_size",
    Bytes,
    ["event_type", "source"],
    [100, 1e3, 1e4, 1e5, 1e6],
    "Size of webhook payloads received."
);
metric!(
    WEBHOOK_PROCESSING_DURATION,
    "Webhooks",
    Histogram,
    "webhook_processing_duration",
    Seconds,
    ["event_type", "outcome"],
    [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
    "Whole webhook delivery, from receipt to response."
);
metric!(
    WEBHOOK_EVENTS,
    "Webhooks",
    Counter,
    "webhook_events",
    None,
    ["event_type", "outcome"],
    [],
    "Webhook deliveries by matched event and outcome."
);
metric!(
    WEBHOOK_QUEUE_DEPTH,
    "Webhooks",
    Gauge,
    "webhook_queue_depth",
    None,
    [],
    [],
    "Webhook deliveries received and not yet finished in this process."
);
metric!(
    WEBHOOK_DELIVERIES,
    "Webhooks",
    Counter,
    "webhook_deliveries",
    None,
    ["source", "result"],
    [],
    "Webhook deliveries by why they ended as they did."
);
metric!(
    WEBHOOK_VERIFY_DURATION,
    "Webhooks",
    Histogram,
    "webhook_verify_duration",
    Seconds,
    ["source"],
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
    "Webhook signature verification time."
);

// --- Autoload ---------------------------------------------------------------------------------------
metric!(
    AUTOLOAD_DURATION,
    "Autoload",
    Histogram,
    "autoload_duration",
    Seconds,
    ["project"],
    [0.1, 0.5, 1, 2, 5, 10, 30],
    "Time to load or reload the project's resources."
);
metric!(
    AUTOLOAD_FILES_PROCESSED,
    "Autoload",
    Counter,
    "autoload_files_processed",
    None,
    ["project", "outcome"],
    [],
    "Resource files processed by autoload."
);
metric!(
    AUTOLOAD_CONFIGS_LOADED,
    "Autoload",
    Counter,
    "autoload_configs_loaded",
    None,
    ["project", "type"],
    [],
    "Resources loaded, by resource type."
);
metric!(
    AUTOLOAD_ERRORS,
    "Autoload",
    Counter,
    "autoload_errors",
    None,
    ["project", "error_type"],
    [],
    "Autoload errors by category."
);
metric!(
    AUTOLOAD_LAST_RELOAD_SUCCESSFUL,
    "Autoload",
    Gauge,
    "autoload_last_reload_successful",
    None,
    ["project"],
    [],
    "1 when the last load or reload succeeded, else 0."
);
metric!(
    AUTOLOAD_LAST_RELOAD_SUCCESS_TIMESTAMP,
    "Autoload",
    Gauge,
    "autoload_last_reload_success_timestamp",
    Seconds,
    ["project"],
    [],
    "Unix time of the last successful load or reload."
);

// --- Workers ----------------------------------------------------------------------------------------
metric!(
    WORKER_ACTIVITIES_EXECUTING,
    "Workers",
    Gauge,
    "worker_activities_executing",
    None,
    [],
    [],
    "Activities running in this process."
);
metric!(
    WORKER_WORKFLOWS_EXECUTING,
    "Workers",
    Gauge,
    "worker_workflows_executing",
    None,
    [],
    [],
    "Workflow runs being advanced in this process."
);
metric!(
    WORKER_MAX_CONCURRENT_ACTIVITIES,
    "Workers",
    Gauge,
    "worker_max_concurrent_activities",
    None,
    [],
    [],
    "Configured activity slots of this process (0 on an API node, worker.enabled false)."
);
metric!(
    WORKER_MAX_CONCURRENT_WORKFLOWS,
    "Workers",
    Gauge,
    "worker_max_concurrent_workflows",
    None,
    [],
    [],
    "Configured workflow slots of this process (0 on an API node, worker.enabled false)."
);
metric!(
    WORKER_UTILIZATION,
    "Workers",
    Gauge,
    "worker_utilization",
    Ratio,
    ["worker_type"],
    [],
    "Executing divided by slots, 0 to 1; absent on a process without slots (an API node)."
);
metric!(
    WORKER_TASK_QUEUE_DEPTH,
    "Workers",
    Gauge,
    "worker_task_queue_depth",
    None,
    ["queue_name"],
    [],
    "Tasks ready to run and not yet claimed, cluster-wide."
);
metric!(
    WORKER_TASK_QUEUE_OLDEST_AGE,
    "Workers",
    Gauge,
    "worker_task_queue_oldest_age",
    Seconds,
    ["queue_name"],
    [],
    "Age of the oldest ready task, 0 if none."
);
metric!(
    WORKER_ACTIVITY_DURATION,
    "Workers",
    Histogram,
    "worker_activity_duration",
    Seconds,
    ["activity_type", "outcome"],
    [0.1, 0.5, 1, 5, 10, 30, 60, 300],
    "Activity attempt duration by task kind and outcome."
);
metric!(
    WORKER_SCHEDULE_TO_START,
    "Workers",
    Histogram,
    "worker_schedule_to_start",
    Seconds,
    ["queue_name"],
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    "Time from a task becoming ready until a worker claimed it."
);
metric!(
    WORKER_TASK_RETRIES,
    "Workers",
    Counter,
    "worker_task_retries",
    None,
    ["activity_type"],
    [],
    "Attempts scheduled again after a failure."
);
metric!(
    WORKER_TASKS_DEAD,
    "Workers",
    Counter,
    "worker_tasks_dead",
    None,
    ["queue_name"],
    [],
    "Tasks that exhausted their attempts (or their rescues)."
);
metric!(
    WORKER_TASKS_RESCUED,
    "Workers",
    Counter,
    "worker_tasks_rescued",
    None,
    ["queue_name"],
    [],
    "Tasks re-queued because their lease expired (their worker died or stalled); not an attempt of the task's own retry policy."
);

// --- Dispatcher health --------------------------------------------------------------------------------
metric!(
    DISPATCHER_HEALTH_STATUS,
    "Dispatcher health",
    Gauge,
    "dispatcher_health_status",
    None,
    [],
    [],
    "1 when this process's dispatcher heartbeat is fresh, else 0."
);
metric!(
    DISPATCHER_HEARTBEAT_AGE,
    "Dispatcher health",
    Gauge,
    "dispatcher_heartbeat_age",
    Seconds,
    [],
    [],
    "Seconds since this process's last successful dispatcher heartbeat."
);
metric!(
    DISPATCHER_CONSECUTIVE_FAILURES,
    "Dispatcher health",
    Gauge,
    "dispatcher_consecutive_failures",
    None,
    [],
    [],
    "Failed dispatcher heartbeat attempts in a row."
);
metric!(
    DISPATCHERS_ACTIVE,
    "Dispatcher health",
    Gauge,
    "dispatchers_active",
    None,
    [],
    [],
    "Dispatchers with a fresh heartbeat, cluster-wide."
);
metric!(
    DISPATCHERS_STALE,
    "Dispatcher health",
    Gauge,
    "dispatchers_stale",
    None,
    [],
    [],
    "Dispatchers whose heartbeat is older than the stale threshold, cluster-wide."
);

// --- Process and meta ---------------------------------------------------------------------------------
metric!(
    BUILD_INFO,
    "Process and meta",
    Gauge,
    "build_info",
    None,
    ["version", "commit", "rustc"],
    [],
    "Build information; the value is always 1."
);
metric!(
    SERVER_READY,
    "Process and meta",
    Gauge,
    "server_ready",
    None,
    [],
    [],
    "1 when /readyz would answer 200, else 0."
);
metric!(
    SYSTEM_UPTIME,
    "Process and meta",
    Gauge,
    "system_uptime",
    Seconds,
    [],
    [],
    "Seconds since the process started."
);
metric!(
    METRICS_OVERFLOW,
    "Process and meta",
    Counter,
    "metrics_overflow",
    None,
    ["metric"],
    [],
    "Lookups of a new label set refused by the cardinality guard and folded into the family's __overflow__ series."
);
metric!(
    RETENTION_DELETED,
    "Process and meta",
    Counter,
    "retention_deleted",
    None,
    ["kind"],
    [],
    "Rows deleted by retention (payload: kept webhook bodies cleared)."
);

macro_rules! process_metric {
    ($id:ident, $kind:ident, $name:literal, $unit:ident, $help:literal) => {
        pub static $id: MetricDef = MetricDef {
            name: $name,
            namespaced: false,
            kind: Kind::$kind,
            unit: Unit::$unit,
            help: $help,
            labels: &[],
            buckets: &[],
            section: "Process and meta",
        };
    };
}
process_metric!(PROCESS_CPU, Counter, "process_cpu", Seconds, "Total user and system CPU time spent.");
process_metric!(PROCESS_RESIDENT_MEMORY, Gauge, "process_resident_memory", Bytes, "Resident memory size.");
process_metric!(PROCESS_OPEN_FDS, Gauge, "process_open_fds", None, "Number of open file descriptors.");
process_metric!(
    PROCESS_START_TIME,
    Gauge,
    "process_start_time",
    Seconds,
    "Start time of the process since the Unix epoch."
);

/// The latency histograms that carry `trace_id` exemplars (OpenMetrics exposition only): their
/// record sites use `Histogram::observe_traced`. Dashboards turn exemplars on for their panels.
pub static WITH_EXEMPLARS: &[&MetricDef] =
    &[&HTTP_REQUEST_DURATION, &WEBHOOK_PROCESSING_DURATION, &WORKER_ACTIVITY_DURATION, &WORKER_SCHEDULE_TO_START];

/// Every catalog entry, in documentation order.
pub static CATALOG: &[&MetricDef] = &[
    &HTTP_REQUESTS,
    &HTTP_REQUEST_DURATION,
    &HTTP_REQUEST_SIZE,
    &HTTP_RESPONSE_SIZE,
    &HTTP_REQUESTS_IN_FLIGHT,
    &HTTP_CONNECTIONS_OPEN,
    &HTTP_CONNECTIONS_LIMIT,
    &HTTP_CONNECTIONS_REFUSED,
    &HTTP_CONNECTIONS_TIMED_OUT,
    &POSTGRES_CONNECTIONS_OPEN,
    &POSTGRES_CONNECTIONS_IN_USE,
    &POSTGRES_CONNECTIONS_IDLE,
    &POSTGRES_MAX_OPEN_CONNECTIONS,
    &POSTGRES_CONNECTION_WAIT_DURATION,
    &POSTGRES_CONNECTION_TIMEOUTS,
    &POSTGRES_CONNECTION_ERRORS,
    &SQLITE_CONNECTIONS_OPEN,
    &SQLITE_CONNECTIONS_IN_USE,
    &SQLITE_CONNECTIONS_IDLE,
    &SQLITE_MAX_OPEN_CONNECTIONS,
    &SQLITE_CONNECTION_WAIT_DURATION,
    &SQLITE_CONNECTION_TIMEOUTS,
    &SQLITE_CONNECTION_ERRORS,
    &REDIS_POOL_SIZE,
    &REDIS_POOL_TOTAL_CONNS,
    &REDIS_POOL_IDLE_CONNS,
    &REDIS_POOL_HITS,
    &REDIS_POOL_MISSES,
    &REDIS_POOL_TIMEOUTS,
    &REDIS_POOL_STALE_CONNS,
    &AUTH_ATTEMPTS,
    &AUTH_TOKEN_AGE,
    &AUTH_RATE_LIMIT_HITS,
    &RATE_LIMIT_BLOCKS,
    &RATE_LIMIT_UNAVAILABLE,
    &AUTH_DURATION,
    &WEBHOOK_PAYLOAD_SIZE,
    &WEBHOOK_PROCESSING_DURATION,
    &WEBHOOK_EVENTS,
    &WEBHOOK_QUEUE_DEPTH,
    &WEBHOOK_DELIVERIES,
    &WEBHOOK_VERIFY_DURATION,
    &AUTOLOAD_DURATION,
    &AUTOLOAD_FILES_PROCESSED,
    &AUTOLOAD_CONFIGS_LOADED,
    &AUTOLOAD_ERRORS,
    &AUTOLOAD_LAST_RELOAD_SUCCESSFUL,
    &AUTOLOAD_LAST_RELOAD_SUCCESS_TIMESTAMP,
    &WORKER_ACTIVITIES_EXECUTING,
    &WORKER_WORKFLOWS_EXECUTING,
    &WORKER_MAX_CONCURRENT_ACTIVITIES,
    &WORKER_MAX_CONCURRENT_WORKFLOWS,
    &WORKER_UTILIZATION,
    &WORKER_TASK_QUEUE_DEPTH,
    &WORKER_TASK_QUEUE_OLDEST_AGE,
    &WORKER_ACTIVITY_DURATION,
    &WORKER_SCHEDULE_TO_START,
    &WORKER_TASK_RETRIES,
    &WORKER_TASKS_DEAD,
    &WORKER_TASKS_RESCUED,
    &DISPATCHER_HEALTH_STATUS,
    &DISPATCHER_HEARTBEAT_AGE,
    &DISPATCHER_CONSECUTIVE_FAILURES,
    &DISPATCHERS_ACTIVE,
    &DISPATCHERS_STALE,
    &BUILD_INFO,
    &SERVER_READY,
    &SYSTEM_UPTIME,
    &METRICS_OVERFLOW,
    &RETENTION_DELETED,
    &PROCESS_CPU,
    &PROCESS_RESIDENT_MEMORY,
    &PROCESS_OPEN_FDS,
    &PROCESS_START_TIME,
];
