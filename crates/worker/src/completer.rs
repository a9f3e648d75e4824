//! Group commit of successes: tasks that finish while a flush is in flight are recorded together
//! by the next one, so under load a store round trip completes many tasks, and an idle worker
//! still records a lone success at once (nothing waits for a batch to fill).

use std::collections::HashSet;
use std::sync::Arc;

use compozy_core::gather::gather;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::queue::{Queue, Success};

/// Most successes in one statement: bounds its size (outputs are up to `max_output_bytes`).
const MAX_BATCH: usize = 256;

struct Pending {
    success: Success,
    /// Its place in the backlog, given back once the flush has answered.
    _queued: OwnedSemaphorePermit,
    /// `Some(true)` completed, `Some(false)` lease lost, `None` the store failed.
    reply: oneshot::Sender<Option<bool>>,
}

/// Handle to a worker's completion flusher; the flusher stops when every handle is dropped.
#[derive(Clone)]
pub(crate) struct Completer {
    tx: mpsc::UnboundedSender<Pending>,
    /// Successes handed over and not yet answered: a task frees its slot when its success is
    /// queued, so without this bound a slow store would let the backlog (outputs included)
    /// grow without limit while the worker keeps claiming.
    backlog: Arc<Semaphore>,
}

impl Completer {
    /// Spawns the flusher, accepting up to `backlog` unanswered
    /// successes; the handle of the flusher's task ends once every `Completer` is dropped.
    pub(crate) fn spawn(queue: Queue, backlog: usize) -> (Completer, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let flusher = tokio::spawn(flush_loop(queue, rx));
        (Completer { tx, backlog: Arc::new(Semaphore::new(backlog.max(1))) }, flusher)
    }

    /// Queues `success` for the next flush, once the backlog has room; the returned future
    /// answers `Some(true)` once stored, `Some(false)` when the lease had been lost (nothing
    /// written), `None` when the store failed (the lease will expire and be rescued).
    pub(crate) async fn submit(&self, success: Success) -> impl std::future::Future<Output = Option<bool>> + use<> {
        let (reply, rx) = oneshot::channel();
        let sent = match self.backlog.clone().acquire_owned().await {
            Ok(_queued) => self.tx.send(Pending { success, _queued, reply }).is_ok(),
            Err(_) => false,
        };
        async move { if sent { rx.await.ok().flatten() } else { None } }
    }
}

async fn flush_loop(queue: Queue, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while gather(&mut rx, &mut batch, MAX_BATCH).await > 0 {
        let (successes, replies): (Vec<Success>, Vec<_>) = batch.drain(..).map(|p| (p.success, p.reply)).unzip();
        let done: Option<HashSet<String>> = match queue.succeed_batch(&successes).await {
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
