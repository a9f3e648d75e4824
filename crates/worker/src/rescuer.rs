//! The rescuer: every `refresh_interval`, tasks whose lease expired (their worker died or
//! stalled) are re-queued without consuming their attempts, or dead-lettered past
//! `max_rescues` (see [`crate::driver`]). Any live process rescues for the whole cluster.

use crate::clock::every;
use crate::context::Context;

/// Never returns.
pub(crate) async fn run(ctx: &Context) {
    every(ctx.config.refresh_interval, || rescue(ctx)).await;
}

async fn rescue(ctx: &Context) {
    match ctx.queue.rescue(ctx.config.max_rescues).await {
        Ok(rescued) => {
            for queue in &rescued.requeued {
                ctx.metrics.rescued(queue);
            }
            for _ in &rescued.dead {
                ctx.metrics.dead();
            }
            if !rescued.requeued.is_empty() {
                ctx.wake.notify_one();
            }
        }
        Err(e) => tracing::warn!(error = %e, "rescuing expired leases failed"),
    }
}
