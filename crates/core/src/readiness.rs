//! Component readiness: what `/readyz` and `compozy_server_ready` report.

use std::sync::Arc;

use parking_lot::RwLock;
use serde::Serialize;

/// The state of one component as `/readyz` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ComponentState {
    pub ready: bool,
    /// Which backend serves the component (`postgres`, `sqlite`, `redis`, `memory`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// A short, operator-facing reason when not ready; never internal error text with secrets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ComponentState {
    pub fn ready(backend: impl Into<String>) -> Self {
        Self { ready: true, backend: Some(backend.into()), reason: None }
    }

    pub fn not_ready(backend: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { ready: false, backend: Some(backend.into()), reason: Some(reason.into()) }
    }
}

type Check = Arc<dyn Fn() -> ComponentState + Send + Sync>;

/// Named readiness checks. Checks must be cheap and non-blocking: they read state that the
/// component keeps current (for example from its own health probe), never do I/O.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<RwLock<Vec<(String, Check)>>>,
}

impl Readiness {
    /// Adds or replaces the check named `name`.
    pub fn register(&self, name: &str, check: impl Fn() -> ComponentState + Send + Sync + 'static) {
        let mut checks = self.checks.write();
        checks.retain(|(n, _)| n != name);
        checks.push((name.to_string(), Arc::new(check)));
    }

    /// Every component's state, in registration order.
    pub fn states(&self) -> Vec<(String, ComponentState)> {
        self.checks.read().iter().map(|(n, c)| (n.clone(), c())).collect()
    }

    pub fn is_ready(&self) -> bool {
        self.checks.read().iter().all(|(_, c)| c().ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn ready_only_when_every_component_is() {
        let r = Readiness::default();
        assert!(r.is_ready(), "no components: ready");
        let up = Arc::new(AtomicBool::new(false));
        let flag = up.clone();
        r.register("store", move || {
            if flag.load(Ordering::Relaxed) {
                ComponentState::ready("sqlite")
            } else {
                ComponentState::not_ready("sqlite", "unreachable")
            }
        });
        assert!(!r.is_ready());
        up.store(true, Ordering::Relaxed);
        assert!(r.is_ready());
        assert_eq!(r.states()[0].0, "store");
    }
}
