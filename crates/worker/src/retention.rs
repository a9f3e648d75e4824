//! Retention: finished runs (with their tasks, attempts and the rows other crates keep per run)
//! and other crates' rows that only grow are deleted by age, in bounded batches, by one
//! background task per process; on SQLite the freed pages are then given back to the file
//! system (`auto_vacuum = INCREMENTAL`). See docs/storage.md, "Retention".
//!
//! Every batch is its own short transaction; on SQLite each one queues for the process's
//! writer lock like any other write, so a large backlog is deleted between deliveries, never
//! in one long lock. On PostgreSQL the runs of a batch are locked `SKIP LOCKED`, so processes
//! pruning at the same time share the work instead of waiting for each other.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use compozy_telemetry::{Counter, Registry, catalog};
use serde::{Deserialize, Serialize};

pub use crate::driver::Dependent;

use crate::clock::{millis, now_ms};
use crate::driver::{PruneRunsParams, ReclaimPagesParams, RunDelete, SweepParams};
use crate::error::WorkerError;
use crate::queue::Queue;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// `retention:` configuration. A zero age keeps those rows forever.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Succeeded runs (tasks and attempts included) are deleted this long after they finished.
    #[serde(with = "humantime_serde")]
    pub succeeded: Duration,
    /// Failed runs (dead-lettered tasks included) are deleted this long after they finished.
    #[serde(with = "humantime_serde")]
    pub failed: Duration,
    /// Cancelled runs are deleted this long after they were cancelled.
    #[serde(with = "humantime_serde")]
    pub cancelled: Duration,
    /// How often the pruner runs.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Runs (or other rows) deleted per transaction at most.
    pub batch_size: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            succeeded: 7 * DAY,
            failed: 30 * DAY,
            cancelled: 30 * DAY,
            interval: Duration::from_secs(60),
            batch_size: 500,
        }
    }
}

impl RetentionConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.interval.is_zero() || self.batch_size == 0 {
            return Err("retention.interval and retention.batch_size must be greater than 0".into());
        }
        Ok(())
    }

    /// `(final status, age)` of the runs that are pruned at all.
    fn statuses(&self) -> impl Iterator<Item = (&'static str, Duration)> {
        [("succeeded", self.succeeded), ("failed", self.failed), ("cancelled", self.cancelled)]
            .into_iter()
            .filter(|(_, keep)| !keep.is_zero())
    }
}

/// The `kind` label values of `retention_deleted_total`.
pub const KINDS: [&str; 5] = ["run", "task", "attempt", "delivery", "payload"];

/// Rows pruned by their own age: `statement` changes at most `$2` rows older than `$1` (Unix
/// ms), and the rows it reports count as `kind`. It runs until a batch comes back short.
#[derive(Clone, Copy, Debug)]
pub struct Sweep {
    pub kind: &'static str,
    pub keep: Duration,
    pub statement: &'static str,
}

/// Rows deleted by one pass, by kind.
pub type Pruned = BTreeMap<&'static str, u64>;

/// The pruner; cheap to clone.
#[derive(Clone)]
pub struct Pruner {
    inner: Arc<Inner>,
}

struct Inner {
    queue: Queue,
    config: RetentionConfig,
    /// The deletes of one batch of runs, children first.
    deletes: Vec<RunDelete>,
    sweeps: Vec<Sweep>,
    deleted: BTreeMap<&'static str, Arc<Counter>>,
}

impl std::fmt::Debug for Pruner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pruner").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

impl Pruner {
    /// Registers `retention_deleted_total` at zero for every kind.
    pub fn new(
        queue: Queue,
        config: RetentionConfig,
        dependents: Vec<Dependent>,
        sweeps: Vec<Sweep>,
        registry: &Registry,
    ) -> Result<Pruner, WorkerError> {
        config.validate().map_err(WorkerError::Config)?;
        let family = registry.counter(&catalog::RETENTION_DELETED);
        let deleted = KINDS.iter().map(|k| (*k, family.get(&[k]))).collect();
        let deletes = queue.driver().run_deletes(&dependents);
        Ok(Pruner { inner: Arc::new(Inner { queue, config, deletes, sweeps, deleted }) })
    }

    /// Prunes every `interval` until the returned task is aborted (or dropped with the runtime).
    pub fn spawn(&self) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(me.inner.config.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = me.prune().await {
                    tracing::warn!(error = %e, "retention pass failed; the next pass retries");
                }
            }
        })
    }

    /// One pass: every expired run and swept row, batch after batch, then (SQLite) the freed
    /// pages given back. Returns what it deleted.
    pub async fn prune(&self) -> Result<Pruned, WorkerError> {
        let mut pruned = Pruned::new();
        let now = now_ms();
        let batch = i64::from(self.inner.config.batch_size);
        for (status, keep) in self.inner.config.statuses() {
            let cutoff = now - millis(keep);
            while self.prune_runs(status, cutoff, batch, &mut pruned).await? == batch {
                tokio::task::yield_now().await;
            }
        }
        for sweep in self.inner.sweeps.iter().filter(|s| !s.keep.is_zero()) {
            let cutoff = now - millis(sweep.keep);
            while self.sweep(sweep, cutoff, batch, &mut pruned).await? == batch {
                tokio::task::yield_now().await;
            }
        }
        if pruned.values().any(|n| *n > 0) {
            self.vacuum().await?;
        }
        Ok(pruned)
    }

    fn count(&self, pruned: &mut Pruned, kind: &'static str, n: u64) {
        *pruned.entry(kind).or_default() += n;
        if let Some(c) = self.inner.deleted.get(kind) {
            c.add(n);
        }
    }

    /// Deletes up to `batch` runs of `status` that finished before `cutoff`, with their rows, in
    /// one transaction; returns how many runs.
    async fn prune_runs(
        &self,
        status: &'static str,
        cutoff: i64,
        batch: i64,
        pruned: &mut Pruned,
    ) -> Result<i64, WorkerError> {
        let p = PruneRunsParams { status, cutoff, limit: batch, deletes: &self.inner.deletes };
        let done = self.inner.queue.driver().prune_runs(p).await?;
        for (kind, n) in done.deleted {
            self.count(pruned, kind, n);
        }
        Ok(i64::try_from(done.runs).unwrap_or(i64::MAX))
    }

    /// One batch of `sweep`; returns how many rows it changed.
    async fn sweep(&self, sweep: &Sweep, cutoff: i64, batch: i64, pruned: &mut Pruned) -> Result<i64, WorkerError> {
        let p = SweepParams { statement: sweep.statement, cutoff, limit: batch };
        let n = self.inner.queue.driver().sweep(p).await?;
        self.count(pruned, sweep.kind, n);
        Ok(i64::try_from(n).unwrap_or(i64::MAX))
    }

    /// SQLite: gives free pages beyond a tenth of the file back to the file system, a bounded
    /// number per writer lock (nothing to do on PostgreSQL).
    async fn vacuum(&self) -> Result<(), WorkerError> {
        let p = ReclaimPagesParams { max_pages: VACUUM_PAGES };
        while self.inner.queue.driver().reclaim_pages(p).await? > 0 {
            tokio::task::yield_now().await;
        }
        Ok(())
    }
}

/// Pages given back per writer lock (4 MiB with the default 4 KiB pages).
const VACUUM_PAGES: i64 = 1024;
