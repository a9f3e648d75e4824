//! The autoload series of the metric catalog, resolved once per project so every series
//! exists (at zero) from start-up.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use compozy_telemetry::catalog;
use compozy_telemetry::{Counter, Gauge, Histogram, Registry};

use crate::error::ErrorCategory;
use crate::load::LoadReport;
use crate::resources::ResourceKind;

pub struct AutoloadMetrics {
    duration: Arc<Histogram>,
    files_success: Arc<Counter>,
    files_error: Arc<Counter>,
    /// Indexed by `ResourceKind::index`.
    configs_loaded: [Arc<Counter>; 4],
    /// Indexed like `ErrorCategory::ALL`.
    errors: [Arc<Counter>; 4],
    last_successful: Arc<Gauge>,
    last_success_timestamp: Arc<Gauge>,
}

impl AutoloadMetrics {
    pub fn new(registry: &Registry, project: &str) -> Self {
        let files = registry.counter(&catalog::AUTOLOAD_FILES_PROCESSED);
        let loaded = registry.counter(&catalog::AUTOLOAD_CONFIGS_LOADED);
        let errors = registry.counter(&catalog::AUTOLOAD_ERRORS);
        Self {
            duration: registry.histogram(&catalog::AUTOLOAD_DURATION).get(&[project]),
            files_success: files.get(&[project, "success"]),
            files_error: files.get(&[project, "error"]),
            configs_loaded: ResourceKind::ALL.map(|k| loaded.get(&[project, k.as_str()])),
            errors: ErrorCategory::ALL.map(|c| errors.get(&[project, c.metric_label()])),
            last_successful: registry.gauge(&catalog::AUTOLOAD_LAST_RELOAD_SUCCESSFUL).get(&[project]),
            last_success_timestamp: registry.gauge(&catalog::AUTOLOAD_LAST_RELOAD_SUCCESS_TIMESTAMP).get(&[project]),
        }
    }

    /// Records one load or reload. `applied` is whether its registry went into service.
    pub(crate) fn record(&self, report: &LoadReport) {
        self.duration.observe(report.duration.as_secs_f64());
        let failed = report.files_failed as u64;
        self.files_error.add(failed);
        self.files_success.add((report.files_processed as u64).saturating_sub(failed));
        for e in &report.errors {
            if let Some(i) = ErrorCategory::ALL.iter().position(|c| *c == e.category) {
                self.errors[i].inc();
            }
        }
        if report.applied {
            for (kind, n) in &report.loaded {
                self.configs_loaded[kind.index()].add(*n as u64);
            }
            self.last_successful.set(1.0);
            self.last_success_timestamp.set(unix_now());
        } else {
            self.last_successful.set(0.0);
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}
