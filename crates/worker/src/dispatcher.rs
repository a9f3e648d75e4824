//! Background duties of a running worker: the dispatcher heartbeat (which also extends the
//! leases this process holds, and stops the attempts whose lease was lost), the cached queue
//! and cluster snapshot, the rescue of expired leases, the pruning of dead processes' registry
//! rows, and the optional LISTEN wake-up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::clock::now_ms;
use crate::metrics::QueueStat;
use crate::queue::sql;
use crate::worker::{Inner, millis};

/// The role whose fresh rows count as active dispatchers (API-only nodes register as `api`).
const DISPATCHER: &str = "worker";

pub(crate) async fn register(inner: &Inner) {
    match inner.queue.store().register_instance(&inner.id, inner.config.role()).await {
        Ok(_) => heartbeat_ok(inner),
        Err(e) => heartbeat_failed(inner, &e),
    }
}

pub(crate) async fn deregister(inner: &Inner) {
    if let Err(e) = inner.queue.store().remove_instance(&inner.id).await {
        tracing::debug!(error = %e, "could not remove the dispatcher instance; it goes stale instead");
    }
}

fn heartbeat_ok(inner: &Inner) {
    let s = &inner.metrics.snapshot;
    s.last_heartbeat_ms.store(now_ms(), Ordering::Relaxed);
    s.consecutive_failures.store(0, Ordering::Relaxed);
}

fn heartbeat_failed(inner: &Inner, e: &dyn std::fmt::Display) {
    inner.metrics.snapshot.consecutive_failures.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(error = %e, "dispatcher heartbeat failed");
}

/// Never returns; dropped when the worker stops.
pub(crate) async fn background(inner: Arc<Inner>) {
    tokio::join!(heartbeats(&inner), refreshes(&inner), listen(&inner));
}

async fn heartbeats(inner: &Inner) {
    let mut tick = tokio::time::interval(inner.config.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        heartbeat(inner).await;
    }
}

/// One attempt: the instance row and every lease held; either failing counts one failure.
async fn heartbeat(inner: &Inner) {
    let store = inner.queue.store();
    let alive = match store.heartbeat(&inner.id).await {
        Ok(true) => Ok(()),
        // Removed by someone (or never registered): register again.
        Ok(false) => store.register_instance(&inner.id, inner.config.role()).await.map(|_| ()),
        Err(e) => Err(e),
    };
    let held: Vec<(String, String)> =
        inner.inflight.lock().iter().map(|(token, a)| (a.task_id.clone(), token.clone())).collect();
    let leases = inner.queue.extend_leases(&held, now_ms() + millis(inner.config.lease)).await;
    if let Ok(extended) = &leases {
        stop_lost(inner, held.iter().map(|(_, token)| token).filter(|t| !extended.contains(*t)));
    }
    match (alive, leases) {
        (Ok(()), Ok(_)) => heartbeat_ok(inner),
        (Err(e), _) => heartbeat_failed(inner, &e),
        (_, Err(e)) => heartbeat_failed(inner, &e),
    }
}

/// Attempts whose lease could not be extended lost it (rescued after a stall, or their run was
/// cancelled): their activity is stopped (a tool's process group is killed). One that has just
/// ended is past its activity and ignores the signal.
fn stop_lost<'a>(inner: &Inner, tokens: impl Iterator<Item = &'a String>) {
    let mut inflight = inner.inflight.lock();
    for token in tokens {
        if let Some(attempt) = inflight.remove(token) {
            tracing::info!(task = %attempt.task_id, "the attempt lost its lease; stopping its activity");
            let _ = attempt.lost.send(());
        }
    }
}

async fn refreshes(inner: &Inner) {
    let mut tick = tokio::time::interval(inner.config.refresh_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        refresh(inner).await;
    }
}

/// Reads what the gauges show at scrape time, and rescues expired leases.
pub(crate) async fn refresh(inner: &Inner) {
    match inner.queue.rescue(inner.config.max_rescues).await {
        Ok(rescued) => {
            for queue in &rescued.requeued {
                inner.metrics.rescued(queue);
            }
            for _ in &rescued.dead {
                inner.metrics.dead();
            }
            if !rescued.requeued.is_empty() {
                inner.wake.notify_one();
            }
        }
        Err(e) => tracing::warn!(error = %e, "rescuing expired leases failed"),
    }
    match inner.queue.depth().await {
        Ok(depths) => store_depths(inner, depths),
        Err(e) => tracing::warn!(error = %e, "reading queue depth failed; the gauges keep their last value"),
    }
    count_dispatchers(inner).await;
}

/// Prunes the rows of dead processes, then counts the dispatchers (`worker` rows) by freshness.
async fn count_dispatchers(inner: &Inner) {
    let store = inner.queue.store();
    if let Err(e) = store.prune_instances(inner.config.prune_after()).await {
        tracing::warn!(error = %e, "pruning dead dispatchers failed");
    }
    let Ok(all) = store.list_instances(Duration::from_secs(100 * 365 * 24 * 3600)).await else { return };
    let fresh_since = std::time::SystemTime::now().checked_sub(inner.config.stale_after);
    let (mut active, mut stale) = (0, 0);
    for i in all.iter().filter(|i| i.role == DISPATCHER) {
        if fresh_since.is_none_or(|since| i.heartbeat_at >= since) { active += 1 } else { stale += 1 }
    }
    let s = &inner.metrics.snapshot;
    s.active.store(active, Ordering::Relaxed);
    s.stale.store(stale, Ordering::Relaxed);
}

fn store_depths(inner: &Inner, depths: BTreeMap<String, crate::queue::Depth>) {
    let now = now_ms();
    let mut queues = inner.metrics.snapshot.queues.write();
    // Queues seen before and now empty read 0 rather than vanishing.
    for stat in queues.values_mut() {
        *stat = QueueStat::default();
    }
    for (queue, d) in depths {
        let oldest = d.oldest_available_at.map_or(0.0, |at| (now - at).max(0) as f64 / 1000.0);
        queues.insert(queue, QueueStat { depth: u64::try_from(d.depth).unwrap_or(0), oldest_age_seconds: oldest });
    }
}

/// Wakes the claim loop on `NOTIFY compozy_tasks`; reconnects after a failure.
async fn listen(inner: &Inner) {
    let Some(url) = inner.listen_url.as_ref().filter(|_| inner.queue.is_postgres()) else {
        return std::future::pending().await;
    };
    loop {
        match sqlx::postgres::PgListener::connect(url.expose()).await {
            Ok(mut l) => {
                if l.listen(sql::CHANNEL).await.is_ok() {
                    // Whatever was enqueued before the LISTEN took effect is claimed now.
                    inner.wake.notify_one();
                    while l.recv().await.is_ok() {
                        inner.wake.notify_one();
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "LISTEN connection failed; polling meanwhile"),
        }
        tokio::time::sleep(inner.config.poll_interval).await;
    }
}
