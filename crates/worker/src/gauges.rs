//! Keeps the queue gauges (depth, oldest ready task's age) read from the store every
//! `refresh_interval`, so a scrape reads memory, never the database.

use std::collections::BTreeMap;

use crate::clock::every;
use crate::clock::now_ms;
use crate::context::Context;
use crate::metrics::QueueStat;
use crate::queue::Depth;

/// Never returns.
pub(crate) async fn run(ctx: &Context) {
    every(ctx.config.refresh_interval, || refresh(ctx)).await;
}

async fn refresh(ctx: &Context) {
    match ctx.queue.depth().await {
        Ok(depths) => store_depths(ctx, depths),
        Err(e) => tracing::warn!(error = %e, "reading queue depth failed; the gauges keep their last value"),
    }
}

fn store_depths(ctx: &Context, depths: BTreeMap<String, Depth>) {
    let now = now_ms();
    let mut queues = ctx.metrics.snapshot.queues.write();
    // Queues seen before and now empty read 0 rather than vanishing.
    for stat in queues.values_mut() {
        *stat = QueueStat::default();
    }
    for (queue, d) in depths {
        let oldest = d.oldest_available_at.map_or(0.0, |at| (now - at).max(0) as f64 / 1000.0);
        queues.insert(queue, QueueStat { depth: u64::try_from(d.depth).unwrap_or(0), oldest_age_seconds: oldest });
    }
}
