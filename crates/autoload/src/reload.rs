//! The autoloader service: the registry in service, atomic reloads that keep the old registry
//! on failure, file watching, and readiness.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use compozy_core::{ComponentState, Readiness};
use compozy_telemetry::Registry;
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, PollWatcher, RecommendedWatcher, RecursiveMode, Watcher};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{AutoloadConfig, ConfigError, WatchMethod};
use crate::discovery::Matcher;
use crate::load::{LoadReport, NoProgress, run};
use crate::metrics::AutoloadMetrics;
use crate::registry::ProjectRegistry;

/// A load whose registry was not put in service; the previous one stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("autoload rejected the project ({} error(s)); first: {}", .0.errors.len(), first_error(.0))]
    Rejected(LoadReport),
    #[error("autoload task failed: {0}")]
    Aborted(String),
}

impl ReloadError {
    pub fn report(&self) -> Option<&LoadReport> {
        match self {
            ReloadError::Rejected(r) => Some(r),
            ReloadError::Aborted(_) => None,
        }
    }
}

fn first_error(r: &LoadReport) -> String {
    r.errors.first().map_or_else(|| "none".into(), ToString::to_string)
}

#[derive(Debug, thiserror::Error)]
#[error("cannot watch the project root: {0}")]
pub struct WatchError(#[from] notify::Error);

/// Holds the registry in service. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Autoloader {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    project: String,
    config: AutoloadConfig,
    matcher: Matcher,
    current: ArcSwap<ProjectRegistry>,
    metrics: AutoloadMetrics,
    ready: AtomicBool,
    /// Reloads run one at a time, so an older load can never replace a newer one.
    reloading: Mutex<()>,
    /// Called with each registry put in service.
    listeners: Mutex<Vec<Listener>>,
    /// The outcome of the latest load or reload, applied or not.
    last: Mutex<Option<Arc<LastReload>>>,
}

/// The latest load or reload: when it ended and its report (`applied` says whether its registry
/// went into service; its errors name file, line and column).
#[derive(Clone, Debug)]
pub struct LastReload {
    /// Unix milliseconds.
    pub at: i64,
    pub report: LoadReport,
}

type Listener = Box<dyn Fn(&ProjectRegistry) + Send + Sync>;

impl Autoloader {
    /// Validates the configuration and compiles its patterns; loads nothing yet. The registry
    /// in service is empty until [`Autoloader::load`] succeeds.
    pub fn new(
        config: AutoloadConfig,
        root: impl Into<PathBuf>,
        project: &str,
        metrics: &Registry,
    ) -> Result<Self, ConfigError> {
        let matcher = Matcher::new(&config)?;
        let inner = Inner {
            root: root.into(),
            project: project.to_string(),
            config,
            matcher,
            current: ArcSwap::from_pointee(ProjectRegistry::default()),
            metrics: AutoloadMetrics::new(metrics, project),
            ready: AtomicBool::new(false),
            reloading: Mutex::new(()),
            listeners: Mutex::new(Vec::new()),
            last: Mutex::new(None),
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    pub fn config(&self) -> &AutoloadConfig {
        &self.inner.config
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The registry in service. Callers keep the `Arc` for the duration of one request so a
    /// concurrent reload never changes what they see half-way.
    pub fn current(&self) -> Arc<ProjectRegistry> {
        self.inner.current.load_full()
    }

    /// Calls `f` with every registry put in service from now on (on the reloading thread; keep it
    /// short), e.g. to create the metric series of newly configured names.
    pub fn on_reload(&self, f: impl Fn(&ProjectRegistry) + Send + Sync + 'static) {
        self.inner.listeners.lock().push(Box::new(f));
    }

    /// The latest load or reload's outcome (`None` before the first).
    pub fn last_reload(&self) -> Option<Arc<LastReload>> {
        self.inner.last.lock().clone()
    }

    /// Whether a load has succeeded since start-up.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// Registers the `autoload` component: ready once the first load has succeeded.
    pub fn register_readiness(&self, readiness: &Readiness) {
        let inner = self.inner.clone();
        readiness.register("autoload", move || {
            if inner.ready.load(Ordering::Acquire) {
                ComponentState::ready("files")
            } else {
                ComponentState::not_ready("files", "the project's resources have not loaded")
            }
        });
    }

    /// The initial load (start-up). Same as [`Autoloader::reload`].
    pub async fn load(&self) -> Result<LoadReport, ReloadError> {
        self.reload().await
    }

    /// Builds a new registry on a blocking thread and swaps it in; on failure the previous one
    /// stays in service. For `POST /api/v0/admin/reload`, SIGHUP and the watcher.
    pub async fn reload(&self) -> Result<LoadReport, ReloadError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.reload_blocking())
            .await
            .map_err(|e| ReloadError::Aborted(e.to_string()))?
    }

    /// [`Autoloader::reload`] for callers outside a runtime.
    pub fn reload_blocking(&self) -> Result<LoadReport, ReloadError> {
        let inner = &self.inner;
        let _one_at_a_time = inner.reloading.lock();
        let outcome = run(&inner.root, &inner.config, &inner.matcher, &NoProgress);
        inner.metrics.record(&outcome.report);
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        *inner.last.lock() = Some(Arc::new(LastReload { at, report: outcome.report.clone() }));
        match outcome.registry {
            Some(registry) => {
                let registry = Arc::new(registry);
                inner.current.store(registry.clone());
                inner.listeners.lock().iter().for_each(|f| f(&registry));
                inner.ready.store(true, Ordering::Release);
                log_applied(&inner.project, &outcome.report);
                Ok(outcome.report)
            }
            None => {
                let err = ReloadError::Rejected(outcome.report);
                tracing::warn!(project = %inner.project, error = %err, "autoload failed; the previous registry stays in service");
                Err(err)
            }
        }
    }

    /// Watches the project directory (recursively, so editors' rename-on-save and Kubernetes
    /// `..data` symlink swaps are seen) and reloads after `debounce` of quiet. Returns when
    /// `shutdown` completes.
    pub fn watch<F>(&self, shutdown: F) -> Result<JoinHandle<()>, WatchError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel::<()>(1);
        let root = std::fs::canonicalize(&self.inner.root).map_err(|e| WatchError(notify::Error::io(e)))?;
        let mut watcher = self.watcher(tx)?;
        watcher.watch(&root, RecursiveMode::Recursive)?;
        let this = self.clone();
        Ok(tokio::spawn(async move {
            // The watcher lives as long as the task.
            let _watcher = watcher;
            this.watch_loop(rx, shutdown).await;
        }))
    }

    fn watcher(&self, tx: mpsc::Sender<()>) -> Result<Box<dyn Watcher + Send>, WatchError> {
        let config = &self.inner.config;
        let handler = move |event: notify::Result<notify::Event>| {
            // A full channel means a reload is already pending: the signal is coalesced.
            if event.map_or(true, |e| is_change(&e.kind)) {
                let _ = tx.try_send(());
            }
        };
        // Polling compares contents: modification times have one-second resolution there, so
        // two saves within a second would otherwise go unseen.
        let poll_config =
            notify::Config::default().with_poll_interval(config.poll_interval).with_compare_contents(true);
        if config.watch_method == WatchMethod::Native {
            match RecommendedWatcher::new(handler.clone(), notify::Config::default()) {
                Ok(w) => return Ok(Box::new(w)),
                Err(e) => tracing::warn!(error = %e, "native file watcher unavailable; polling instead"),
            }
        }
        Ok(Box::new(PollWatcher::new(handler, poll_config)?))
    }

    async fn watch_loop<F: Future<Output = ()>>(&self, mut rx: mpsc::Receiver<()>, shutdown: F) {
        let debounce = self.inner.config.debounce;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                signal = rx.recv() => if signal.is_none() { return },
            }
            // Wait for `debounce` without events: one reload per burst of writes.
            loop {
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(debounce) => break,
                    signal = rx.recv() => if signal.is_none() { return },
                }
            }
            // Failures are logged and counted by reload itself.
            let _ = self.reload().await;
        }
    }
}

/// Reads (including our own) are not changes; a write being closed is.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

fn log_applied(project: &str, r: &LoadReport) {
    let total: usize = r.loaded.values().sum();
    tracing::info!(
        project,
        resources = total,
        files = r.files_processed,
        errors = r.errors.len(),
        duration_ms = r.duration.as_millis() as u64,
        "autoload applied"
    );
    for e in &r.errors {
        tracing::warn!(project, error = %e, "autoload skipped a file");
    }
}
