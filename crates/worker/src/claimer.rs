//! The claim loop: claims as many ready tasks as free slots allow, one batch per round trip,
//! whenever it is woken (a commit, a freed slot, a NOTIFY, a rescue) or the poll interval
//! passes, and spawns each claimed attempt ([`crate::execute`]). At shutdown it stops claiming,
//! lets running activities finish up to `shutdown_timeout`, writes the last successes and
//! releases the leases of what still runs.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{Semaphore, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;

use crate::clock::{millis, now_ms};
use crate::completer::Completer;
use crate::context::{Context, Inflight};
use crate::execute::{Slots, attempt_span, execute};

/// How long shutdown waits for the last successes to be written before releasing leases.
const FLUSH_AT_SHUTDOWN: Duration = Duration::from_secs(5);

/// The slots of this process and the attempts running in them.
struct Claimer {
    ctx: Arc<Context>,
    acts: Arc<Semaphore>,
    wfs: Arc<Semaphore>,
    completer: Completer,
    running: JoinSet<()>,
}

/// Claims until `shutdown` completes, then drains.
pub(crate) async fn run<F: Future<Output = ()>>(ctx: Arc<Context>, shutdown: F) {
    let (acts, wfs) = ctx.config.slots();
    // Without slots (`worker.enabled: false`) nothing is ever claimed.
    let (acts, wfs) = (Arc::new(Semaphore::new(acts as usize)), Arc::new(Semaphore::new(wfs as usize)));
    // One batch being written and one collecting: the backlog stays within twice the slots.
    let backlog = 2 * wfs.available_permits();
    let (completer, flusher) = Completer::spawn(ctx.queue.clone(), backlog);
    let mut claimer = Claimer { ctx, acts, wfs, completer, running: JoinSet::new() };
    tokio::pin!(shutdown);
    loop {
        // A finished task's cell stays in the set until joined; under a backlog every claim
        // is full and the loop below never reaches `join_next`, so reap them here, or the
        // set keeps every task this process ever ran (≈ 180 B each).
        while claimer.running.try_join_next().is_some() {}
        if claimer.claim_round().await {
            // A full batch: more may be ready, so claim again unless shutting down.
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = std::future::ready(()) => continue,
            }
        }
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = claimer.running.join_next(), if !claimer.running.is_empty() => {
                // Successes are recorded in batches, so their tasks end together: collect
                // them all and claim one batch for the freed slots, not one claim each.
                tokio::task::yield_now().await;
                while claimer.running.try_join_next().is_some() {}
            }
            () = claimer.ctx.wake.notified() => {
                // Successes free their slots together: claim once for all of them.
                tokio::task::yield_now().await;
            }
            () = tokio::time::sleep(claimer.ctx.config.poll_interval) => {}
        }
    }
    claimer.drain(flusher).await;
}

impl Claimer {
    /// Claims what free slots allow; `true` when the batch was full (more may be waiting).
    async fn claim_round(&mut self) -> bool {
        let ctx = &self.ctx;
        let free = self.acts.available_permits().min(self.wfs.available_permits()).min(ctx.config.claim_batch as usize);
        if free == 0 || ctx.paused.load(Ordering::SeqCst) {
            return false;
        }
        let lease_until = now_ms() + millis(ctx.config.lease);
        let claimed = match ctx.queue.claim(&ctx.config.queue, &ctx.id, free as i64, lease_until).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "claiming tasks failed");
                return false;
            }
        };
        let full = claimed.len() == free;
        let claimed_at = now_ms();
        for task in claimed {
            let (Ok(workflow), Ok(activity)) =
                (self.wfs.clone().try_acquire_owned(), self.acts.clone().try_acquire_owned())
            else {
                // Cannot happen (slots were counted above); the lease expires and is rescued.
                continue;
            };
            // Inside the attempt's span: the schedule-to-start exemplar names its trace.
            let span = attempt_span(&task);
            span.in_scope(|| ctx.metrics.schedule_to_start((claimed_at - task.available_at) as f64 / 1000.0));
            ctx.metrics.snapshot.workflows.fetch_add(1, Ordering::Relaxed);
            let (lost, on_lost) = oneshot::channel();
            ctx.inflight.lock().insert(task.token.clone(), Inflight { task_id: task.id.clone(), lost });
            let (ctx, completer) = (ctx.clone(), self.completer.clone());
            let attempt = async move { execute(ctx, task, Slots { workflow, activity }, completer, on_lost).await };
            self.running.spawn(attempt.instrument(span));
        }
        full
    }

    async fn drain(self, flusher: JoinHandle<()>) {
        let Claimer { ctx, completer, mut running, .. } = self;
        drop(completer);
        let deadline = tokio::time::sleep(ctx.config.shutdown_timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = running.join_next() => if next.is_none() { break },
                () = &mut deadline => break,
            }
        }
        running.shutdown().await;
        // Successes already handed to the flusher are written before the leases are released
        // (released first, their tasks would run again); it ends once its handles are gone.
        let _ = tokio::time::timeout(FLUSH_AT_SHUTDOWN, flusher).await;
        if let Err(e) = ctx.queue.release(&ctx.id).await {
            tracing::warn!(error = %e, "could not release leases at shutdown; they expire instead");
        }
    }
}
