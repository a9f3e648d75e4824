//! Inbound webhooks: `POST /api/v0/hooks/{slug}` verifies, deduplicates, filters, renders and
//! durably enqueues a workflow run, answering 202 only once the delivery record and the run are
//! committed together. See `docs/webhooks.md`.
//!
//! ```no_run
//! # fn demo(worker: compozy_worker::Worker, cache: compozy_store::Cache,
//! #         metrics: &compozy_telemetry::Registry, builder: compozy_server::AppBuilder) {
//! let webhooks = compozy_webhooks::Webhooks::new(Default::default(), worker, cache, metrics).expect("valid config");
//! let builder = builder.routes(compozy_webhooks::routes(&webhooks));
//! // Admin only: the delivery log and replay.
//! let builder = builder.routes(compozy_webhooks::admin_routes(&webhooks));
//! # let _ = builder; }
//! ```

mod admission;
pub mod config;
pub mod dedupe;
pub mod deliveries;
mod http;
pub mod input;
pub mod metrics;
pub mod pipeline;
pub mod verify;

use std::sync::Arc;

use compozy_store::Cache;
use compozy_telemetry::Registry;
use compozy_worker::{Starter, Worker};

pub use config::WebhooksConfig;
pub use http::{admin_routes, routes};
pub use metrics::WebhookMetrics;

/// The webhook receiver; cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks").field("config", &self.inner.config).finish()
    }
}

pub(crate) struct Inner {
    pub(crate) config: WebhooksConfig,
    /// Runs are enqueued through it; webhooks are looked up in its project's current registry
    /// per delivery, so a reload applies to the next delivery.
    pub(crate) worker: Worker,
    /// Stores each accepted delivery with its run, many per transaction under load.
    pub(crate) starter: Starter<deliveries::NewDelivery>,
    pub(crate) cache: Cache,
    pub(crate) metrics: WebhookMetrics,
    pub(crate) slots: admission::Slots,
    pub(crate) cel: Arc<cel::Env>,
}

impl Webhooks {
    /// Must be called on a Tokio runtime (the run starter's flushers are spawned on it).
    pub fn new(config: WebhooksConfig, worker: Worker, cache: Cache, registry: &Registry) -> Result<Self, String> {
        config.validate()?;
        let inner = Inner {
            metrics: WebhookMetrics::new(registry, config.metrics),
            slots: admission::Slots::new(config.max_in_flight as usize, config.per_webhook_slots()),
            cel: Arc::new(cel::Env::stdlib()),
            starter: worker.starter(),
            config,
            worker,
            cache,
        };
        inner.metrics.prime(&inner.worker.project().registry());
        Ok(Webhooks { inner: Arc::new(inner) })
    }

    /// Creates the metric series of `registry`'s webhooks at zero; call it with every reloaded
    /// registry (`Autoloader::on_reload`), so a new webhook's first deliveries count as an
    /// increase.
    pub fn prime_metrics(&self, registry: &compozy_autoload::ProjectRegistry) {
        self.inner.metrics.prime(registry);
    }

    pub fn config(&self) -> &WebhooksConfig {
        &self.inner.config
    }

    /// What the engine's retention pruner deletes for webhooks (see [`deliveries::sweeps`]).
    pub fn sweeps(&self) -> Vec<compozy_worker::retention::Sweep> {
        deliveries::sweeps(&self.inner.config)
    }
}
