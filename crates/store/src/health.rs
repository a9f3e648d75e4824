//! Health probes: a background task pings the dependency and keeps a state that readiness checks
//! read without I/O.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use compozy_core::{ComponentState, Readiness};
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::error::Unavailable;

/// The last probe's verdict.
pub(crate) struct HealthState {
    backend: &'static str,
    up: AtomicBool,
    reason: Mutex<Option<Unavailable>>,
}

impl HealthState {
    /// A state that starts ready: callers create it right after a successful start-up ping.
    pub(crate) fn new(backend: &'static str) -> Arc<Self> {
        Arc::new(Self { backend, up: AtomicBool::new(true), reason: Mutex::new(None) })
    }

    pub(crate) fn set(&self, result: Result<(), Unavailable>) {
        let was_up = self.up.swap(result.is_ok(), Ordering::Relaxed);
        *self.reason.lock() = result.err();
        match (was_up, result) {
            (true, Err(reason)) => tracing::warn!(backend = self.backend, %reason, "dependency became unavailable"),
            (false, Ok(())) => tracing::info!(backend = self.backend, "dependency available again"),
            _ => {}
        }
    }

    pub(crate) fn component_state(&self) -> ComponentState {
        if self.up.load(Ordering::Relaxed) {
            return ComponentState::ready(self.backend);
        }
        let reason = self.reason.lock().map_or_else(|| "unavailable".to_string(), |r| r.to_string());
        ComponentState::not_ready(self.backend, reason)
    }

    pub(crate) fn register(self: &Arc<Self>, readiness: &Readiness, name: &str) {
        let state = self.clone();
        readiness.register(name, move || state.component_state());
    }
}

/// The running probe; dropping it stops the probe.
#[derive(Debug)]
pub struct HealthProbe {
    task: JoinHandle<()>,
}

impl Drop for HealthProbe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs `ping` every `interval` (the first one at once), bounding each by `timeout`.
pub(crate) fn spawn_probe<P, F>(state: Arc<HealthState>, interval: Duration, timeout: Duration, ping: P) -> HealthProbe
where
    P: Fn() -> F + Send + 'static,
    F: Future<Output = Result<(), Unavailable>> + Send,
{
    let task = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let result = tokio::time::timeout(timeout, ping()).await.unwrap_or(Err(Unavailable::Timeout));
            state.set(result);
        }
    });
    HealthProbe { task }
}
