//! Reload keeps the old registry on failure; the watcher reloads on change; readiness.

mod common;

use std::time::{Duration, Instant};

use common::*;
use compozy_autoload::{AutoloadConfig, ReloadError};
use compozy_core::Readiness;

const SUCCESSFUL: &str = "compozy_autoload_last_reload_successful";
const TIMESTAMP: &str = "compozy_autoload_last_reload_success_timestamp_seconds";

#[tokio::test]
async fn failed_reload_keeps_the_previous_registry() {
    let p = Project::new();
    p.write("a.yaml", tool("a"));
    let m = metrics();
    let loader = autoloader(&p, AutoloadConfig::default(), &m);
    let readiness = Readiness::default();
    loader.register_readiness(&readiness);
    assert!(!readiness.is_ready(), "not ready before the first load");
    assert_eq!(value(&m, SUCCESSFUL, &[]), 0.0);

    loader.load().await.expect("first load");
    assert!(readiness.is_ready());
    let first = loader.current();
    let stamp = value(&m, TIMESTAMP, &[]);
    assert!(stamp > 1.7e9, "unix time, got {stamp}");
    assert_eq!(value(&m, SUCCESSFUL, &[]), 1.0);

    p.write("b.yaml", "resource: tool\nid: b\ncommand: [\n");
    let err = loader.reload().await.expect_err("broken file");
    let ReloadError::Rejected(report) = &err else { panic!("{err}") };
    assert_eq!(report.errors[0].file, "b.yaml");
    assert!(std::sync::Arc::ptr_eq(&first, &loader.current()), "old registry still in service");
    assert!(loader.current().tool("a").is_some());
    assert!(readiness.is_ready(), "a failed reload does not make the service unready");
    assert_eq!(value(&m, SUCCESSFUL, &[]), 0.0);
    assert_eq!(value(&m, TIMESTAMP, &[]), stamp, "timestamp stays at the last success");
    assert_eq!(value(&m, "compozy_autoload_duration_seconds_count", &[]), 2.0);

    p.write("b.yaml", tool("b"));
    let report = loader.reload().await.expect("fixed");
    assert_eq!(report.loaded[&compozy_autoload::ResourceKind::Tool], 2);
    assert!(loader.current().tool("b").is_some());
    assert_eq!(value(&m, SUCCESSFUL, &[]), 1.0);
    assert!(value(&m, TIMESTAMP, &[]) >= stamp);
    assert_eq!(value(&m, "compozy_autoload_configs_loaded_total", &[("type", "tool")]), 3.0, "1 then 2");
}

#[tokio::test]
async fn failed_first_load_leaves_the_service_unready() {
    let p = Project::new();
    p.write("a.yaml", "nonsense");
    let m = metrics();
    let loader = autoloader(&p, AutoloadConfig::default(), &m);
    let readiness = Readiness::default();
    loader.register_readiness(&readiness);
    assert!(loader.load().await.is_err());
    assert!(!readiness.is_ready());
    let state = &readiness.states()[0];
    assert_eq!((state.0.as_str(), state.1.ready), ("autoload", false));
    assert!(loader.current().is_empty());
}

#[tokio::test]
async fn missing_root_is_reported_not_panicked() {
    let m = metrics();
    let loader = compozy_autoload::Autoloader::new(AutoloadConfig::default(), "/nonexistent/compozy-root", PROJECT, &m)
        .expect("config");
    let err = loader.load().await.expect_err("no root");
    assert!(err.to_string().contains("project root"), "{err}");
    assert_eq!(errors_metric(&m, "validation_error"), 1.0);
}

#[tokio::test]
async fn disabled_autoload_loads_nothing_and_is_ready() {
    let p = Project::new();
    p.write("a.yaml", "not: [valid");
    let m = metrics();
    let loader = autoloader(&p, AutoloadConfig { enabled: false, ..AutoloadConfig::default() }, &m);
    loader.load().await.expect("nothing to load");
    assert!(loader.is_ready() && loader.current().is_empty());
}

/// Polls `cond` until it holds or `limit` passes; the limit is a failure bound, not a timing assertion.
async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

async fn watch_reloads_on_change(config: AutoloadConfig) {
    let p = Project::new();
    p.write("a.yaml", tool("a"));
    let m = metrics();
    let loader = autoloader(&p, config, &m);
    loader.load().await.expect("first load");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = loader
        .watch(async move {
            let _ = stopped.await;
        })
        .expect("watch");

    p.write("sub/b.yaml", tool("b"));
    assert!(eventually(Duration::from_secs(20), || loader.current().tool("b").is_some()).await, "new file loaded");

    p.write("sub/b.yaml", "resource: tool\nid: b\ncommand: [\n");
    assert!(eventually(Duration::from_secs(20), || value(&m, SUCCESSFUL, &[]) == 0.0).await, "failure seen");
    assert!(loader.current().tool("b").is_some(), "old registry kept");

    p.remove("sub/b.yaml");
    assert!(eventually(Duration::from_secs(20), || loader.current().tool("b").is_none()).await, "removal seen");
    assert_eq!(value(&m, SUCCESSFUL, &[]), 1.0);

    stop.send(()).expect("watcher alive");
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("watch stops").expect("no panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_watch_reloads_on_change() {
    let config = AutoloadConfig { debounce: Duration::from_millis(50), ..AutoloadConfig::default() };
    watch_reloads_on_change(config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_watch_reloads_on_change() {
    let config = AutoloadConfig {
        debounce: Duration::from_millis(50),
        watch_method: compozy_autoload::WatchMethod::Poll,
        poll_interval: Duration::from_millis(100),
        ..AutoloadConfig::default()
    };
    watch_reloads_on_change(config).await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_follows_a_configmap_style_symlink_swap() {
    // Kubernetes mounts: name.yaml -> ..data/name.yaml, ..data -> ..<timestamp>; an update
    // writes a new timestamped directory and renames a new `..data` symlink over the old one.
    use std::os::unix::fs::symlink;
    let p = Project::new();
    p.write("..v1/t.yaml", tool("v1"));
    symlink("..v1", p.root().join("..data")).expect("symlink");
    symlink("..data/t.yaml", p.root().join("t.yaml")).expect("symlink");
    let m = metrics();
    let loader =
        autoloader(&p, AutoloadConfig { debounce: Duration::from_millis(50), ..AutoloadConfig::default() }, &m);
    let report = loader.load().await.expect("first load");
    assert_eq!(report.files_discovered, 1, "the timestamped directory is not loaded twice");
    assert!(loader.current().tool("v1").is_some());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = loader
        .watch(async move {
            let _ = stopped.await;
        })
        .expect("watch");

    p.write("..v2/t.yaml", tool("v2"));
    symlink("..v2", p.root().join("..data_tmp")).expect("symlink");
    std::fs::rename(p.root().join("..data_tmp"), p.root().join("..data")).expect("atomic swap");
    assert!(eventually(Duration::from_secs(20), || loader.current().tool("v2").is_some()).await, "swap seen");
    assert!(loader.current().tool("v1").is_none());

    stop.send(()).expect("watcher alive");
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("watch stops").expect("no panic");
}

#[test]
fn a_file_rewritten_during_loads_is_loaded_whole_or_reported() {
    let p = Project::new();
    let short = "resource: tool\nid: t\ncommand: a\n".to_string();
    let long = format!("resource: tool\nid: t\ncommand: b{}\n", "b".repeat(4000));
    p.write("t.yaml", &short);
    let path = p.root().join("t.yaml");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, short, long) = (stop.clone(), short.clone(), long.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::fs::write(&path, if i.is_multiple_of(2) { &long } else { &short }).expect("rewrite");
                i += 1;
            }
        })
    };
    let m = metrics();
    let loader = autoloader(&p, lenient(), &m);
    let (mut loaded, mut reported) = (0, 0);
    for _ in 0..200 {
        let report = loader.reload_blocking().expect("lenient");
        match loader.current().tool("t") {
            Some(t) => {
                assert!(t.command == "a" || t.command == format!("b{}", "b".repeat(4000)), "torn read loaded");
                assert!(report.errors.is_empty());
                loaded += 1;
            }
            None => {
                assert_eq!(report.errors.len(), 1, "a missing tool is always reported");
                reported += 1;
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().expect("writer");
    assert_eq!(loaded + reported, 200);
}
