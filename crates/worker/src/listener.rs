//! PostgreSQL: wakes the claim loop on `NOTIFY compozy_tasks` through a dedicated connection
//! (polling stays the fallback); reconnects after a failure. Nothing to do on SQLite.

use crate::context::Context;
use crate::driver::postgres::CHANNEL;

/// Never returns.
pub(crate) async fn run(ctx: &Context) {
    let Some(url) = ctx.listen_url.as_ref().filter(|_| ctx.queue.is_postgres()) else {
        return std::future::pending().await;
    };
    loop {
        match sqlx::postgres::PgListener::connect(url.expose()).await {
            Ok(mut l) => {
                if l.listen(CHANNEL).await.is_ok() {
                    // Whatever was enqueued before the LISTEN took effect is claimed now.
                    ctx.wake.notify_one();
                    while l.recv().await.is_ok() {
                        ctx.wake.notify_one();
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "LISTEN connection failed; polling meanwhile"),
        }
        tokio::time::sleep(ctx.config.poll_interval).await;
    }
}
