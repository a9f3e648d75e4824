//! Background duties of a running worker: the dispatcher heartbeat (which also extends the
//! leases this process holds), the cached queue and cluster snapshot, the rescue of expired
//! leases, and the optional LISTEN wake-up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::clock::now_ms;
use crate::metrics::QueueStat;
use crate::queue::sql;
use crate::worker::{Inner, millis};

const ROLE: &str = "worker";

pub(crate) async fn register(inner: &Inner) {
    match inner.queue.store().register_instance(&inner.id, ROLE).await {
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
        Ok(false) => store.register_instance(&inner.id, ROLE).await.map(|_| ()),
        Err(e) => Err(e),
    };
    let held: Vec<String> = inner.inflight.lock().iter().cloned().collect();
    let leases = inner.queue.extend_leases(&inner.id, &held, now_ms() + millis(inner.config.lease)).await;
    match (alive, leases) {
        (Ok(()), Ok(_)) => heartbeat_ok(inner),
        (Err(e), _) => heartbeat_failed(inner, &e),
        (_, Err(e)) => heartbeat_failed(inner, &e),
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
    match inner.queue.rescue().await {
        Ok(rescued) => {
            for kind in &rescued.requeued {
                inner.metrics.retry(kind);
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
    let store = inner.queue.store();
    let fresh = store.list_instances(inner.config.stale_after).await;
    let all = store.list_instances(Duration::from_secs(100 * 365 * 24 * 3600)).await;
    if let (Ok(fresh), Ok(all)) = (fresh, all) {
        let s = &inner.metrics.snapshot;
        s.active.store(fresh.len() as u64, Ordering::Relaxed);
        s.stale.store(all.len().saturating_sub(fresh.len()) as u64, Ordering::Relaxed);
    }
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
