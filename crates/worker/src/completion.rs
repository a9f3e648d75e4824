//! Group commit of successes: tasks that finish while a flush is in flight are recorded together
//! by the next one, so under load a store round trip completes many tasks, and an idle worker
//! still records a lone success at once (nothing waits for a batch to fill).

use std::collections::HashSet;

use tokio::sync::{mpsc, oneshot};

use crate::queue::{Queue, Success};
use compozy_core::gather::gather;

/// Most successes in one statement: bounds its size (outputs are up to `max_output_bytes`).
const MAX_BATCH: usize = 256;

struct Pending {
    success: Success,
    /// `Some(true)` completed, `Some(false)` lease lost, `None` the store failed.
    reply: oneshot::Sender<Option<bool>>,
}

/// Handle to a worker's completion flusher; the flusher stops when every handle is dropped.
#[derive(Clone)]
pub(crate) struct Completer {
    tx: mpsc::UnboundedSender<Pending>,
}

impl Completer {
    /// Spawns the flusher for lease owner `owner`.
    pub(crate) fn spawn(queue: Queue, owner: String) -> Completer {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(flush_loop(queue, owner, rx));
        Completer { tx }
    }

    /// Queues `success` for the next flush and returns at once; the receiver answers
    /// `Some(true)` once stored, `Some(false)` when the lease had been lost (nothing written),
    /// `None` when the store failed (the lease will expire and be rescued).
    pub(crate) fn submit(&self, success: Success) -> impl std::future::Future<Output = Option<bool>> + use<> {
        let (reply, rx) = oneshot::channel();
        let sent = self.tx.send(Pending { success, reply }).is_ok();
        async move { if sent { rx.await.ok().flatten() } else { None } }
    }
}

async fn flush_loop(queue: Queue, owner: String, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while gather(&mut rx, &mut batch, MAX_BATCH).await > 0 {
        let (successes, replies): (Vec<Success>, Vec<_>) = batch.drain(..).map(|p| (p.success, p.reply)).unzip();
        let done: Option<HashSet<String>> = match queue.succeed_batch(&owner, &successes).await {
            Ok(done) => Some(done),
            Err(e) => {
                tracing::warn!(tasks = successes.len(), error = %e, "recording task successes failed; their leases will expire");
                None
            }
        };
        for (s, reply) in successes.iter().zip(replies) {
            let _ = reply.send(done.as_ref().map(|d| d.contains(&s.task_id)));
        }
    }
}
