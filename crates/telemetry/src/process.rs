//! Process and meta metrics: build info, uptime, readiness and the conventional `process_*`
//! collector. All are read at collection time.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::catalog;
use crate::registry::Registry;

/// What `compozy_build_info` reports.
#[derive(Clone, Debug)]
pub struct BuildInfo {
    pub version: &'static str,
    pub commit: &'static str,
    pub rustc: &'static str,
}

/// Registers build info, uptime and the `process_*` families.
pub fn register(registry: &Registry, build: BuildInfo) {
    registry.observe(&catalog::BUILD_INFO, move |emit| emit(&[build.version, build.commit, build.rustc], 1.0));
    let started = Instant::now();
    registry.observe(&catalog::SYSTEM_UPTIME, move |emit| emit(&[], started.elapsed().as_secs_f64()));
    register_process(registry);
}

/// Registers `compozy_server_ready`, read from `ready` at each collection.
pub fn register_ready(registry: &Registry, ready: Arc<dyn Fn() -> bool + Send + Sync>) {
    registry.observe(&catalog::SERVER_READY, move |emit| emit(&[], if ready() { 1.0 } else { 0.0 }));
}

#[cfg(target_os = "linux")]
fn register_process(registry: &Registry) {
    use procfs::process::Process;
    use procfs::{page_size, ticks_per_second};

    let ticks = ticks_per_second() as f64;
    let page = page_size() as f64;
    registry.observe(&catalog::PROCESS_CPU, move |emit| {
        if let Ok(stat) = Process::myself().and_then(|p| p.stat()) {
            emit(&[], (stat.utime + stat.stime) as f64 / ticks);
        }
    });
    registry.observe(&catalog::PROCESS_RESIDENT_MEMORY, move |emit| {
        if let Ok(stat) = Process::myself().and_then(|p| p.stat()) {
            emit(&[], stat.rss as f64 * page);
        }
    });
    registry.observe(&catalog::PROCESS_OPEN_FDS, |emit| {
        if let Ok(n) = Process::myself().and_then(|p| p.fd_count()) {
            emit(&[], n as f64);
        }
    });
    // Start time = boot time + the process's start offset in clock ticks.
    let start = match (procfs::boot_time_secs(), Process::myself().and_then(|p| p.stat())) {
        (Ok(boot), Ok(stat)) => boot as f64 + stat.starttime as f64 / ticks,
        _ => SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
    };
    registry.observe(&catalog::PROCESS_START_TIME, move |emit| emit(&[], start));
}

#[cfg(not(target_os = "linux"))]
fn register_process(registry: &Registry) {
    let start = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    registry.observe(&catalog::PROCESS_START_TIME, move |emit| emit(&[], start));
}
