//! What the webhook metrics add to one delivery: the queue-depth guard, the verification timing
//! and the end-of-delivery record (a counter per source and result, an event counter, the
//! processing and payload-size histograms), with recording on and off. Set against the engine's
//! CPU time per delivery (docs/performance.md), this is the metrics' share of the cost.
//!
//! `cargo bench -p compozy-webhooks --bench metrics`

use std::hint::black_box;

use compozy_telemetry::{Registry, RegistryOptions};
use compozy_webhooks::metrics::{DeliveryResult, Ended, WebhookMetrics};
use criterion::{Criterion, criterion_group, criterion_main};

fn one_delivery(c: &mut Criterion) {
    for enabled in [true, false] {
        let registry = Registry::new(RegistryOptions::default());
        let metrics = WebhookMetrics::new(&registry, enabled);
        let name = if enabled { "webhook_metrics_per_delivery_on" } else { "webhook_metrics_per_delivery_off" };
        c.bench_function(name, |b| {
            b.iter(|| {
                let depth = metrics.enter();
                metrics.verified(black_box("github"), 0.000_02);
                metrics.ended(&Ended {
                    source: black_box("github"),
                    event_type: black_box("push"),
                    result: DeliveryResult::Accepted,
                    payload_size: Some(122),
                    seconds: 0.004,
                });
                drop(depth);
            })
        });
    }
}

criterion_group!(benches, one_delivery);
criterion_main!(benches);
