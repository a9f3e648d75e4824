//! The dispatcher registry and heartbeat: this process's row in the registry (registered at
//! start, removed at a clean stop), a heartbeat that also extends the leases of the attempts
//! running here and stops those whose lease was lost, and the pruning of dead processes' rows
//! with the count of live dispatchers for the gauges.

use std::sync::atomic::Ordering;

use crate::clock::{every, millis, now_ms};
use crate::context::Context;
use crate::driver::{
    DeregisterDispatcherParams, HeartbeatDispatcherParams, ListDispatchersParams, PruneDispatchersParams,
    RegisterDispatcherParams,
};

/// The role whose fresh rows count as active dispatchers (API-only nodes register as `api`).
const DISPATCHER: &str = "worker";

pub(crate) async fn register(ctx: &Context) {
    let p = RegisterDispatcherParams { id: &ctx.id, role: ctx.config.role() };
    match ctx.queue.driver().register_dispatcher(p).await {
        Ok(()) => heartbeat_ok(ctx),
        Err(e) => heartbeat_failed(ctx, &e),
    }
}

pub(crate) async fn deregister(ctx: &Context) {
    if let Err(e) = ctx.queue.driver().deregister_dispatcher(DeregisterDispatcherParams { id: &ctx.id }).await {
        tracing::debug!(error = %e, "could not remove the dispatcher instance; it goes stale instead");
    }
}

/// Heartbeats every `heartbeat_interval` and prunes and counts the registry every
/// `refresh_interval`; never returns.
pub(crate) async fn run(ctx: &Context) {
    tokio::join!(
        every(ctx.config.heartbeat_interval, || heartbeat(ctx)),
        every(ctx.config.refresh_interval, || { count_dispatchers(ctx) })
    );
}

fn heartbeat_ok(ctx: &Context) {
    let s = &ctx.metrics.snapshot;
    s.last_heartbeat_ms.store(now_ms(), Ordering::Relaxed);
    s.consecutive_failures.store(0, Ordering::Relaxed);
}

fn heartbeat_failed(ctx: &Context, e: &dyn std::fmt::Display) {
    ctx.metrics.snapshot.consecutive_failures.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(error = %e, "dispatcher heartbeat failed");
}

/// One attempt: the instance row and every lease held; either failing counts one failure.
async fn heartbeat(ctx: &Context) {
    let driver = ctx.queue.driver();
    let alive = match driver.heartbeat_dispatcher(HeartbeatDispatcherParams { id: &ctx.id }).await {
        Ok(true) => Ok(()),
        // Removed by someone (or never registered): register again.
        Ok(false) => {
            driver.register_dispatcher(RegisterDispatcherParams { id: &ctx.id, role: ctx.config.role() }).await
        }
        Err(e) => Err(e),
    };
    let held: Vec<(String, String)> =
        ctx.inflight.lock().iter().map(|(token, a)| (a.task_id.clone(), token.clone())).collect();
    let leases = ctx.queue.extend_leases(&held, now_ms() + millis(ctx.config.lease)).await;
    if let Ok(extended) = &leases {
        stop_lost(ctx, held.iter().map(|(_, token)| token).filter(|t| !extended.contains(*t)));
    }
    match (alive, leases) {
        (Ok(()), Ok(_)) => heartbeat_ok(ctx),
        (Err(e), _) | (_, Err(e)) => heartbeat_failed(ctx, &e),
    }
}

/// Attempts whose lease could not be extended lost it (rescued after a stall, or their run was
/// cancelled): their activity is stopped (a tool's process group is killed). One that has just
/// ended is past its activity and ignores the signal.
fn stop_lost<'a>(ctx: &Context, tokens: impl Iterator<Item = &'a String>) {
    let mut inflight = ctx.inflight.lock();
    for token in tokens {
        if let Some(attempt) = inflight.remove(token) {
            tracing::info!(task = %attempt.task_id, "the attempt lost its lease; stopping its activity");
            let _ = attempt.lost.send(());
        }
    }
}

/// Prunes the rows of dead processes, then counts the dispatchers (`worker` rows) by freshness.
async fn count_dispatchers(ctx: &Context) {
    let driver = ctx.queue.driver();
    if let Err(e) = driver.prune_dispatchers(PruneDispatchersParams { older_than: ctx.config.prune_after() }).await {
        tracing::warn!(error = %e, "pruning dead dispatchers failed");
    }
    let Ok(all) = driver.list_dispatchers(ListDispatchersParams).await else { return };
    let fresh_since = std::time::SystemTime::now().checked_sub(ctx.config.stale_after);
    let (mut active, mut stale) = (0, 0);
    for i in all.iter().filter(|i| i.role == DISPATCHER) {
        if fresh_since.is_none_or(|since| i.heartbeat_at >= since) { active += 1 } else { stale += 1 }
    }
    let s = &ctx.metrics.snapshot;
    s.active.store(active, Ordering::Relaxed);
    s.stale.store(stale, Ordering::Relaxed);
}
