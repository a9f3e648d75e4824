//! `worker:` configuration.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// `false`: this process claims no tasks (an API node whose runs `compozy worker` processes
    /// execute); it registers with role `api` (not counted as an active dispatcher), still
    /// rescues expired leases and reports queue metrics, with zero slots.
    pub enabled: bool,
    /// The queue this process claims from and `start_run` enqueues on.
    pub queue: String,
    /// Activity slots of this process.
    pub max_concurrent_activities: u32,
    /// Runs advanced at once by this process (each holds one in-flight task).
    pub max_concurrent_workflows: u32,
    /// Tasks claimed per round trip at most.
    pub claim_batch: u32,
    /// How long a claim is valid without a heartbeat; an expired lease is re-queued.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// How often leases are extended and the dispatcher heartbeat is written.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// Claim attempts happen at least this often when no wake-up arrives.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Queue depth, dispatcher counts and the lease rescue are refreshed this often.
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// A dispatcher whose heartbeat is older than this is stale.
    #[serde(with = "humantime_serde")]
    pub stale_after: Duration,
    /// A registry row whose heartbeat is older than this many `stale_after` belongs to a dead
    /// process and is deleted (by any live process).
    pub stale_prune_multiple: u32,
    /// Expired leases a task survives: past this many rescues it is dead-lettered (it keeps
    /// killing its workers). Rescues do not consume the task's own `max_attempts`.
    pub max_rescues: u32,
    /// Graceful shutdown: running activities get this long before their leases are released.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Tool stdout kept at most (bytes); more fails the attempt.
    pub max_output_bytes: usize,
    /// Tool stderr kept at most (bytes); the rest is discarded.
    pub max_stderr_bytes: usize,
    /// HTTP response body read at most (bytes); more fails the attempt.
    pub max_response_bytes: usize,
    /// Programs outside the project root that tools may run, as absolute paths (`/usr/bin/jq`);
    /// every other tool program and working directory stays inside the root.
    pub allowed_commands: Vec<std::path::PathBuf>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            queue: "default".into(),
            max_concurrent_activities: 16,
            max_concurrent_workflows: 16,
            claim_batch: 16,
            lease: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(5),
            poll_interval: Duration::from_secs(1),
            refresh_interval: Duration::from_secs(5),
            stale_after: Duration::from_secs(30),
            stale_prune_multiple: 10,
            max_rescues: 5,
            shutdown_timeout: Duration::from_secs(30),
            max_output_bytes: 1024 * 1024,
            max_stderr_bytes: 64 * 1024,
            max_response_bytes: 1024 * 1024,
            allowed_commands: Vec::new(),
        }
    }
}

impl WorkerConfig {
    /// `(activity, workflow)` slots of this process: none when it claims nothing.
    /// The dispatcher registry's role of this process: only `worker` rows count as active.
    pub fn role(&self) -> &'static str {
        if self.enabled { "worker" } else { "api" }
    }

    /// Registry rows silent for this long belong to dead processes.
    pub fn prune_after(&self) -> Duration {
        self.stale_after.saturating_mul(self.stale_prune_multiple)
    }

    pub fn slots(&self) -> (u32, u32) {
        if self.enabled { (self.max_concurrent_activities, self.max_concurrent_workflows) } else { (0, 0) }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.queue.is_empty() || self.queue.len() > 64 {
            return Err("worker.queue must be 1 to 64 characters".into());
        }
        if self.max_concurrent_activities == 0 || self.max_concurrent_workflows == 0 || self.claim_batch == 0 {
            return Err("worker slots and claim_batch must be at least 1".into());
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_interval >= self.lease {
            return Err("worker.heartbeat_interval must be greater than 0 and shorter than worker.lease".into());
        }
        if self.stale_prune_multiple < 2 {
            return Err("worker.stale_prune_multiple must be at least 2".into());
        }
        if self.poll_interval.is_zero() || self.refresh_interval.is_zero() {
            return Err("worker.poll_interval and worker.refresh_interval must be greater than 0".into());
        }
        if self.allowed_commands.iter().any(|c| !c.is_absolute()) {
            return Err("worker.allowed_commands entries must be absolute paths".into());
        }
        Ok(())
    }
}
