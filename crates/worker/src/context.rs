//! What the services of one worker process share: its configuration, queue, project, metrics,
//! identity, wake-up, and the attempts running here. The [`crate::Worker`] handle owns it; each
//! service (claim loop, heartbeat, rescuer, gauges, listener) borrows it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use compozy_core::Secret;
use tokio::sync::{Notify, oneshot};

use crate::config::WorkerConfig;
use crate::metrics::WorkerMetrics;
use crate::project::Project;
use crate::queue::Queue;

pub(crate) struct Context {
    pub(crate) config: WorkerConfig,
    pub(crate) queue: Queue,
    pub(crate) project: Arc<dyn Project>,
    pub(crate) metrics: WorkerMetrics,
    /// Lease owner and dispatcher instance id: unique per process start.
    pub(crate) id: String,
    /// Wakes the claim loop (a commit of new tasks, a freed slot, a NOTIFY, a rescue).
    pub(crate) wake: Notify,
    /// Attempts running here, by fencing token: the heartbeat extends exactly these leases and
    /// stops those whose lease it finds lost. Keyed by attempt, not task: a task re-claimed by
    /// this process after a lost lease is a different attempt.
    pub(crate) inflight: parking_lot::Mutex<HashMap<String, Inflight>>,
    /// Set: the claim loop claims nothing (running activities continue).
    pub(crate) paused: AtomicBool,
    pub(crate) http: Option<reqwest::Client>,
    /// PostgreSQL: where the listener connects for `LISTEN`.
    pub(crate) listen_url: Option<Secret>,
}

/// An attempt running in this process.
pub(crate) struct Inflight {
    pub(crate) task_id: String,
    /// Fired when the lease is found lost: the activity is stopped.
    pub(crate) lost: oneshot::Sender<()>,
}
