//! Group commit of run starts: runs started while a commit is in flight are stored together by
//! the next one, so under load one transaction (and one WAL flush) starts many runs, and a lone
//! start is stored at once (nothing waits for a batch to fill). Each caller still gets its own
//! answer only after its run is committed.
//!
//! A caller's own rows ride along in the same transaction ([`Companion`]): a webhook delivery
//! record exists if and only if its run does.

use std::sync::Arc;

use compozy_store::{StoreError, Unavailable};
use tokio::sync::{Mutex, mpsc, oneshot};
use tracing::Instrument;

use compozy_core::gather::gather;

use crate::driver::Companion;

use crate::error::WorkerError;
use crate::queue::{NewRun, Queue};

/// Most runs in one transaction: bounds the statements' array sizes.
const MAX_BATCH: usize = 256;

/// Transactions in flight at once: one is collecting while the other commits.
const FLUSHERS: usize = 2;

struct Pending<C> {
    run: NewRun,
    row: C,
    reply: oneshot::Sender<Result<(), WorkerError>>,
}

/// Handle to the flushers; they stop when every handle is dropped.
pub struct Starter<C> {
    tx: mpsc::UnboundedSender<Pending<C>>,
}

impl<C> Clone for Starter<C> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone() }
    }
}

impl<C: Companion> Starter<C> {
    /// Spawns the flushers on the current runtime; `committed` runs after each commit (the
    /// in-process worker's wake-up).
    pub(crate) fn spawn(queue: Queue, committed: Arc<dyn Fn() + Send + Sync>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..FLUSHERS {
            tokio::spawn(flush_loop(queue.clone(), rx.clone(), committed.clone()));
        }
        Starter { tx }
    }

    /// Stores `run` and `row` together; `Ok` once committed. With tracing on this is the run's
    /// start span, and its first task is enqueued as a child of it.
    pub async fn start(&self, mut run: NewRun, row: C) -> Result<String, WorkerError> {
        let span = compozy_telemetry::child_span!("run.start", run.id = %run.id, workflow.id = %run.workflow_id);
        let start = async {
            if let Some(traceparent) = compozy_telemetry::traces::traceparent() {
                run.first.traceparent = Some(traceparent);
            }
            let (reply, answer) = oneshot::channel();
            let id = run.id.clone();
            self.tx.send(Pending { run, row, reply }).map_err(|_| WorkerError::Stopped)?;
            answer.await.map_err(|_| WorkerError::Stopped)??;
            Ok(id)
        };
        start.instrument(span).await
    }
}

async fn flush_loop<C: Companion>(
    queue: Queue,
    rx: Arc<Mutex<mpsc::UnboundedReceiver<Pending<C>>>>,
    committed: Arc<dyn Fn() + Send + Sync>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        // The lock is held while waiting, so the other flusher collects while this one commits.
        if gather(&mut *rx.lock().await, &mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let Some((runs, rows, replies)) = without_duplicates(&queue, split(batch.drain(..))).await else {
            continue;
        };
        match queue.insert_runs_with(&runs, &rows).await {
            Ok(()) => {
                committed();
                replies.into_iter().for_each(|r| drop(r.send(Ok(()))));
            }
            Err(e) if runs.len() > 1 && e.retry_after().is_none() => {
                // Perhaps one row's fault: store each alone so the others are not refused for it.
                tracing::warn!(runs = runs.len(), error = %e, "a batch of run starts failed; storing them one by one");
                for ((run, row), reply) in runs.into_iter().zip(rows).zip(replies) {
                    let alone = queue.insert_runs_with(std::slice::from_ref(&run), std::slice::from_ref(&row)).await;
                    if alone.is_ok() {
                        committed();
                    }
                    let _ = reply.send(alone);
                }
            }
            Err(e) if replies.len() == 1 => {
                let _ = replies.into_iter().next().map(|r| r.send(Err(e)));
            }
            Err(e) => {
                let backend = queue.store().backend();
                for reply in replies {
                    let _ = reply.send(Err(outage(&e, backend)));
                }
            }
        }
    }
}

/// The batch without the rows stored before (their callers are answered
/// [`WorkerError::Duplicate`]); `None` when nothing is left to insert.
async fn without_duplicates<C: Companion>(queue: &Queue, batch: Split<C>) -> Option<Split<C>> {
    let (runs, rows, replies) = batch;
    let stored = match C::stored_before(&rows, queue.store()).await {
        Ok(stored) if stored.iter().all(Option::is_none) => return Some((runs, rows, replies)),
        Ok(stored) => stored,
        Err(e) => {
            let backend = queue.store().backend();
            replies.into_iter().for_each(|r| drop(r.send(Err(outage(&e, backend)))));
            return None;
        }
    };
    let (mut left_runs, mut left_rows, mut left_replies) = (Vec::new(), Vec::new(), Vec::new());
    // A short answer leaves the rest to be stored: never drop a start.
    let stored = stored.into_iter().chain(std::iter::repeat(None));
    for (((run, row), reply), stored_at) in runs.into_iter().zip(rows).zip(replies).zip(stored) {
        match stored_at {
            Some(stored_at) => drop(reply.send(Err(WorkerError::Duplicate { stored_at }))),
            None => {
                left_runs.push(run);
                left_rows.push(row);
                left_replies.push(reply);
            }
        }
    }
    (!left_runs.is_empty()).then_some((left_runs, left_rows, left_replies))
}

type Split<C> = (Vec<NewRun>, Vec<C>, Vec<oneshot::Sender<Result<(), WorkerError>>>);

fn split<C>(pending: impl Iterator<Item = Pending<C>>) -> Split<C> {
    let (mut runs, mut rows, mut replies) = (Vec::new(), Vec::new(), Vec::new());
    for p in pending {
        runs.push(p.run);
        rows.push(p.row);
        replies.push(p.reply);
    }
    (runs, rows, replies)
}

/// What each caller of a batch that met an outage gets: the outage (503 with `Retry-After`).
fn outage(e: &WorkerError, backend: &'static str) -> WorkerError {
    let reason = match e {
        WorkerError::Store(StoreError::Unavailable { reason, .. }) => *reason,
        WorkerError::Database(sqlx::Error::PoolTimedOut) => Unavailable::Timeout,
        _ => Unavailable::Unreachable,
    };
    WorkerError::Store(StoreError::Unavailable { backend, reason })
}
