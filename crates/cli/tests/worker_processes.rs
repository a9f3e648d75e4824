//! `compozy worker` processes sharing one PostgreSQL: with two of them every task ends exactly
//! once and the executing gauges stay within the slots; a worker killed with SIGKILL in the
//! middle of an activity loses nothing: its lease expires and the other worker runs the task;
//! an API node (`compozy serve`, `worker.enabled: false`) enqueues through its HTTP API and
//! claims nothing, a worker process runs what it enqueued. Runs are otherwise enqueued from the
//! test through the worker crate's API, as webhooks do.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::Engine;
use compozy_autoload::{AutoloadConfig, Autoloader};
use compozy_core::Secret;
use compozy_store::{Store, StoreConfig};
use compozy_telemetry::{Registry, RegistryOptions};
use compozy_testkit::postgres::TestDb;
use compozy_worker::{Queue, Run, TaskHistory};

const SLOTS: f64 = 4.0;

const WORKFLOWS: &[(&str, &str)] = &[
    (
        "pair.yaml",
        "resource: workflow\nid: pair\ntasks:\n  - {id: a, type: wait, duration: 5ms}\n  - {id: b, type: wait, duration: 5ms}\n",
    ),
    (
        "slow.yaml",
        "resource: workflow\nid: slow\ntasks:\n  - id: a\n    type: wait\n    duration: 1500ms\n    retry: {max_attempts: 3, backoff: {initial: 10ms, max: 10ms}}\n",
    ),
];

/// A database, a project on disk, and the test's own handle on the queue.
struct World {
    db: TestDb,
    dir: tempfile::TempDir,
    queue: Queue,
    project: Autoloader,
    rt: tokio::runtime::Runtime,
}

impl World {
    fn new() -> Option<World> {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let db = rt.block_on(TestDb::create())?;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("compozy.yaml"), "project:\n  name: procs\n").expect("project file");
        std::fs::create_dir_all(dir.path().join("workflows")).expect("mkdir");
        for (file, text) in WORKFLOWS {
            std::fs::write(dir.path().join("workflows").join(file), text).expect("workflow");
        }
        let metrics = Registry::new(RegistryOptions::default());
        let (queue, project) = rt.block_on(async {
            let config = StoreConfig { url: Some(Secret::new(db.url())), ..StoreConfig::default() };
            let store = Store::connect(&config, dir.path(), &metrics).await.expect("connect");
            store.migrate().await.expect("migrate");
            let project = Autoloader::new(AutoloadConfig::default(), dir.path(), "procs", &metrics).expect("autoload");
            project.load().await.expect("project loads");
            (Queue::new(store), project)
        });
        Some(World { db, dir, queue, project, rt })
    }

    /// A `compozy worker` on this world's database with short leases and 4 slots.
    fn worker(&self) -> Engine {
        Engine::start_worker(self.dir.path(), &["--config", "compozy.yaml"], &self.env())
    }

    /// `compozy serve` on this world's database as an API node (`worker.enabled: false`).
    fn api_node(&self) -> Engine {
        let mut env = self.env().to_vec();
        env.push(("COMPOZY_WORKER_ENABLED", "false".into()));
        Engine::start(self.dir.path(), &["--config", "compozy.yaml"], &env)
    }

    fn env(&self) -> [(&'static str, String); 9] {
        [
            ("COMPOZY_DATABASE_URL", self.db.url()),
            ("COMPOZY_WORKER_MAX_CONCURRENT_ACTIVITIES", "4".into()),
            ("COMPOZY_WORKER_MAX_CONCURRENT_WORKFLOWS", "4".into()),
            ("COMPOZY_WORKER_CLAIM_BATCH", "4".into()),
            ("COMPOZY_WORKER_LEASE", "2s".into()),
            ("COMPOZY_WORKER_HEARTBEAT_INTERVAL", "500ms".into()),
            ("COMPOZY_WORKER_POLL_INTERVAL", "100ms".into()),
            ("COMPOZY_WORKER_REFRESH_INTERVAL", "200ms".into()),
            ("COMPOZY_AUTOLOAD_WATCH", "false".into()),
        ]
    }

    fn start(&self, workflow: &str) -> String {
        let registry = self.project.current();
        let wf = registry.workflow(workflow).expect("workflow loaded");
        self.rt.block_on(self.queue.start_run(wf, &serde_json::json!({}), "default")).expect("start run")
    }

    fn run(&self, id: &str) -> Run {
        self.rt.block_on(self.queue.get_run(id)).expect("get run").expect("run exists")
    }

    fn history(&self, id: &str) -> Vec<TaskHistory> {
        self.rt.block_on(self.queue.run_history(id)).expect("history")
    }

    /// Polls until `f` holds (a guard against hangs, not a timing assertion).
    fn eventually(&self, what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !f() {
            assert!(Instant::now() < deadline, "gave up waiting for: {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn metric(engine: &Engine, sample: &str) -> f64 {
    engine.metric(sample).unwrap_or(0.0)
}

/// The highest executing and utilization values seen on any scrape of `engines`, until `stop`.
fn sample_gauges(addrs: Vec<std::net::SocketAddr>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(f64, usize)> {
    const GAUGES: [&str; 4] = [
        "compozy_worker_activities_executing ",
        "compozy_worker_workflows_executing ",
        "compozy_worker_utilization_ratio{worker_type=\"activity\"} ",
        "compozy_worker_utilization_ratio{worker_type=\"workflow\"} ",
    ];
    std::thread::spawn(move || {
        let (mut worst, mut scrapes) = (0.0_f64, 0);
        while !stop.load(Ordering::SeqCst) {
            for addr in &addrs {
                let Some((_, _, text)) = common::http(*addr, "GET", "/metrics", &[]) else { continue };
                scrapes += 1;
                for line in text.lines() {
                    for (i, g) in GAUGES.iter().enumerate() {
                        if let Some(v) = line.strip_prefix(g).and_then(|v| v.trim().parse::<f64>().ok()) {
                            // Utilization is 0–1; executing counts are compared in slots.
                            worst = worst.max(if i < 2 { v / SLOTS } else { v });
                        }
                    }
                }
            }
        }
        (worst, scrapes)
    })
}

#[test]
fn two_worker_processes_end_every_task_exactly_once_within_their_slots() {
    let Some(world) = World::new() else { return };
    let (a, b) = (world.worker(), world.worker());
    world.eventually("both dispatchers registered", || {
        metric(&a, "compozy_dispatchers_active") == 2.0 && metric(&b, "compozy_dispatchers_active") == 2.0
    });
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_gauges(vec![a.addr, b.addr], stop.clone());
    let runs = 300;
    let ids: Vec<String> = (0..runs).map(|_| world.start("pair")).collect();
    for id in &ids {
        world.eventually("the run ends", || world.run(id).finished_at.is_some());
    }
    stop.store(true, Ordering::SeqCst);
    let (worst, scrapes) = sampler.join().expect("sampler");
    assert!(scrapes > 0, "the gauges were never scraped");
    assert!(worst <= 1.0, "an executing gauge exceeded the slots (worst {worst} of the slots)");

    let mut workers = std::collections::HashSet::new();
    for id in &ids {
        assert_eq!(world.run(id).status, "succeeded");
        let tasks = world.history(id);
        assert_eq!(tasks.len(), 2);
        for t in &tasks {
            assert_eq!((t.task.state.as_str(), t.task.attempt, t.attempts.len()), ("succeeded", 1, 1), "{t:?}");
            assert_eq!(t.attempts[0].outcome.as_deref(), Some("success"));
            workers.insert(t.attempts[0].worker.clone().expect("worker recorded"));
        }
    }
    assert_eq!(workers.len(), 2, "both processes took tasks");
    let ran = "compozy_worker_activity_duration_seconds_count{activity_type=\"wait\",outcome=\"success\"}";
    let starts = "compozy_worker_schedule_to_start_seconds_count{queue_name=\"default\"}";
    let total = f64::from(runs * 2);
    assert_eq!(metric(&a, ran) + metric(&b, ran), total, "each task ran exactly once");
    assert_eq!(metric(&a, starts) + metric(&b, starts), total, "each task was claimed exactly once");
    for e in [&a, &b] {
        assert_eq!(metric(e, "compozy_worker_task_retries_total{activity_type=\"wait\"}"), 0.0);
        assert_eq!(metric(e, "compozy_worker_activities_executing"), 0.0);
    }
}

#[test]
fn a_worker_killed_mid_activity_loses_nothing() {
    let Some(world) = World::new() else { return };
    let a = world.worker();
    world.eventually("a registered", || metric(&a, "compozy_dispatchers_active") >= 1.0);
    let id = world.start("slow");
    world.eventually("a runs the activity", || world.history(&id).first().is_some_and(|t| t.task.state == "running"));
    a.kill9();
    // Started after the kill, so only b can take the task over, once a's lease has expired.
    let b = world.worker();
    world.eventually("the run ends", || world.run(&id).finished_at.is_some());
    assert_eq!(world.run(&id).status, "succeeded");
    let task = &world.history(&id)[0];
    assert_eq!((task.task.state.as_str(), task.task.attempt), ("succeeded", 2));
    let [lost, retried] = &task.attempts[..] else { panic!("two attempts expected: {task:?}") };
    assert_eq!((lost.attempt, lost.outcome.as_deref()), (1, Some("rescued")));
    assert!(lost.error.as_deref().is_some_and(|e| e.starts_with("lease expired")), "{lost:?}");
    assert_eq!((retried.attempt, retried.outcome.as_deref()), (2, Some("success")));
    assert!(lost.worker.is_some() && retried.worker.is_some() && lost.worker != retried.worker, "{task:?}");
    assert_eq!(metric(&b, "compozy_worker_tasks_rescued_total{queue_name=\"default\"}"), 1.0);
    assert_eq!(metric(&b, "compozy_worker_task_retries_total{activity_type=\"wait\"}"), 0.0);
    assert_eq!(metric(&b, "compozy_worker_tasks_dead_total{queue_name=\"default\"}"), 0.0);
}

#[test]
fn an_api_node_enqueues_and_a_worker_process_runs() {
    let Some(world) = World::new() else { return };
    let api = world.api_node();
    let bearer = format!("Bearer {}", api.key);
    let auth = [("authorization", bearer.as_str()), ("content-type", "application/json")];
    let (status, _, body) =
        common::post(api.addr, "/api/v0/workflows/pair/executions", &auth, "{}").expect("HTTP exchange");
    assert_eq!(status, 202, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let id = body["data"]["execution_id"].as_str().expect("execution id").to_string();

    // The API node reports the waiting task, no slots and no utilization, and claims nothing.
    api.eventually("the task is counted as waiting", |e| {
        metric(e, "compozy_worker_task_queue_depth{queue_name=\"default\"}") == 1.0
    });
    assert_eq!(metric(&api, "compozy_worker_max_concurrent_activities"), 0.0);
    let (_, _, text) = api.get("/metrics");
    assert!(!text.contains("compozy_worker_utilization_ratio{"), "no utilization without slots");
    std::thread::sleep(Duration::from_millis(500)); // five of the worker's poll intervals
    assert_eq!(world.run(&id).status, "pending", "an API node claims nothing");

    let w = world.worker();
    world.eventually("the worker process runs it", || world.run(&id).finished_at.is_some());
    assert_eq!(world.run(&id).status, "succeeded");
    let ran = "compozy_worker_activity_duration_seconds_count{activity_type=\"wait\",outcome=\"success\"}";
    assert_eq!(metric(&w, ran), 2.0, "both tasks ran in the worker process");
    assert_eq!(metric(&api, ran), 0.0, "none in the API node");
}
