//! How a group-commit flusher (task successes, run starts, Redis commands) collects a batch.

use tokio::sync::mpsc::UnboundedReceiver;

/// Waits for at least one item, then also takes what arrives within the same scheduler tick, up
/// to `max` in `batch`: items produced together (a claimed batch of short activities ending,
/// concurrent deliveries, concurrent cache commands) share one flush, and a lone item still goes
/// at once (no timer). Returns 0 once every sender is gone.
pub async fn gather<T>(rx: &mut UnboundedReceiver<T>, batch: &mut Vec<T>, max: usize) -> usize {
    if rx.recv_many(batch, max).await == 0 {
        return 0;
    }
    tokio::task::yield_now().await;
    while batch.len() < max {
        match rx.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
    batch.len()
}
