//! The catalog's worker and dispatcher metrics, resolved once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use compozy_telemetry::catalog;
use compozy_telemetry::{Counter, Family, Histogram, Registry};
use parking_lot::RwLock;

use crate::model::TaskKind;

pub const OUTCOMES: [&str; 3] = ["success", "error", "timeout"];

/// Per-queue readiness as last read from the store (cluster-wide).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QueueStat {
    pub depth: u64,
    pub oldest_age_seconds: f64,
}

/// State read at collection time; written by the worker's loops.
#[derive(Default)]
pub struct Snapshot {
    pub queues: RwLock<BTreeMap<String, QueueStat>>,
    pub activities: AtomicI64,
    pub workflows: AtomicI64,
    /// Dispatcher: Unix ms of the last successful heartbeat (0 = never).
    pub last_heartbeat_ms: AtomicI64,
    /// Unix ms this process started: the heartbeat age counts from here until the first one.
    pub started_ms: AtomicI64,
    pub consecutive_failures: AtomicU64,
    pub active: AtomicU64,
    pub stale: AtomicU64,
}

pub struct WorkerMetrics {
    pub snapshot: Arc<Snapshot>,
    duration: Vec<Arc<Histogram>>,
    schedule_to_start: Arc<Histogram>,
    retries: Vec<Arc<Counter>>,
    dead: Arc<Counter>,
    rescued: Arc<Family<Counter>>,
}

fn kind_index(kind: TaskKind) -> usize {
    TaskKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

impl WorkerMetrics {
    pub fn new(registry: &Registry, queue: &str, slots: (u32, u32), stale_after_ms: i64) -> Self {
        let snapshot = Arc::new(Snapshot::default());
        snapshot.started_ms.store(crate::clock::now_ms(), Ordering::Relaxed);
        snapshot.queues.write().insert(queue.to_string(), QueueStat::default());
        register_observed(registry, &snapshot, slots, stale_after_ms);
        let hist = registry.histogram(&catalog::WORKER_ACTIVITY_DURATION);
        let hist = &hist;
        let duration =
            TaskKind::ALL.iter().flat_map(|k| OUTCOMES.iter().map(move |o| hist.get(&[k.as_str(), o]))).collect();
        let retries_family = registry.counter(&catalog::WORKER_TASK_RETRIES);
        let rescued = registry.counter(&catalog::WORKER_TASKS_RESCUED);
        // At zero for the configured queue from the start.
        rescued.get(&[queue]);
        Self {
            snapshot,
            duration,
            schedule_to_start: registry.histogram(&catalog::WORKER_SCHEDULE_TO_START).get(&[queue]),
            retries: TaskKind::ALL.iter().map(|k| retries_family.get(&[k.as_str()])).collect(),
            dead: registry.counter(&catalog::WORKER_TASKS_DEAD).get(&[queue]),
            rescued,
        }
    }

    pub fn activity(&self, kind: TaskKind, outcome: &str, seconds: f64) {
        let o = OUTCOMES.iter().position(|x| *x == outcome).unwrap_or(1);
        if let Some(h) = self.duration.get(kind_index(kind) * OUTCOMES.len() + o) {
            h.observe_traced(seconds);
        }
    }

    pub fn schedule_to_start(&self, seconds: f64) {
        self.schedule_to_start.observe_traced(seconds.max(0.0));
    }

    pub fn retry(&self, kind: TaskKind) {
        if let Some(c) = self.retries.get(kind_index(kind)) {
            c.inc();
        }
    }

    pub fn dead(&self) {
        self.dead.inc();
    }

    /// A task of `queue` re-queued after its lease expired (queue names come from configuration).
    pub fn rescued(&self, queue: &str) {
        self.rescued.get(&[queue]).inc();
    }
}

fn register_observed(registry: &Registry, snap: &Arc<Snapshot>, (acts, wfs): (u32, u32), stale_after_ms: i64) {
    let s = snap.clone();
    registry.observe(&catalog::WORKER_ACTIVITIES_EXECUTING, move |emit| {
        emit(&[], s.activities.load(Ordering::Relaxed) as f64)
    });
    let s = snap.clone();
    registry.observe(&catalog::WORKER_WORKFLOWS_EXECUTING, move |emit| {
        emit(&[], s.workflows.load(Ordering::Relaxed) as f64)
    });
    registry.observe(&catalog::WORKER_MAX_CONCURRENT_ACTIVITIES, move |emit| emit(&[], f64::from(acts)));
    registry.observe(&catalog::WORKER_MAX_CONCURRENT_WORKFLOWS, move |emit| emit(&[], f64::from(wfs)));
    let s = snap.clone();
    // A process without slots has no utilization (not 0: it would dilute a fleet's average).
    registry.observe(&catalog::WORKER_UTILIZATION, move |emit| {
        if acts > 0 {
            emit(&["activity"], s.activities.load(Ordering::Relaxed) as f64 / f64::from(acts));
        }
        if wfs > 0 {
            emit(&["workflow"], s.workflows.load(Ordering::Relaxed) as f64 / f64::from(wfs));
        }
    });
    let s = snap.clone();
    registry.observe(&catalog::WORKER_TASK_QUEUE_DEPTH, move |emit| {
        for (q, st) in s.queues.read().iter() {
            emit(&[q], st.depth as f64);
        }
    });
    let s = snap.clone();
    registry.observe(&catalog::WORKER_TASK_QUEUE_OLDEST_AGE, move |emit| {
        for (q, st) in s.queues.read().iter() {
            emit(&[q], st.oldest_age_seconds);
        }
    });
    register_dispatcher(registry, snap, stale_after_ms);
}

fn register_dispatcher(registry: &Registry, snap: &Arc<Snapshot>, stale_after_ms: i64) {
    let s = snap.clone();
    registry.observe(&catalog::DISPATCHER_HEALTH_STATUS, move |emit| {
        let last = s.last_heartbeat_ms.load(Ordering::Relaxed);
        let fresh = last > 0 && crate::clock::now_ms() - last <= stale_after_ms;
        emit(&[], if fresh { 1.0 } else { 0.0 })
    });
    let s = snap.clone();
    registry.observe(&catalog::DISPATCHER_HEARTBEAT_AGE, move |emit| {
        // Before the first heartbeat the dispatcher has been silent since it started.
        let last = match s.last_heartbeat_ms.load(Ordering::Relaxed) {
            0 => s.started_ms.load(Ordering::Relaxed),
            last => last,
        };
        let age = (crate::clock::now_ms() - last).max(0) as f64 / 1000.0;
        emit(&[], age)
    });
    let s = snap.clone();
    registry.observe(&catalog::DISPATCHER_CONSECUTIVE_FAILURES, move |emit| {
        emit(&[], s.consecutive_failures.load(Ordering::Relaxed) as f64)
    });
    let s = snap.clone();
    registry.observe(&catalog::DISPATCHERS_ACTIVE, move |emit| emit(&[], s.active.load(Ordering::Relaxed) as f64));
    let s = snap.clone();
    registry.observe(&catalog::DISPATCHERS_STALE, move |emit| emit(&[], s.stale.load(Ordering::Relaxed) as f64));
}
