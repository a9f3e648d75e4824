//! The worker end to end: real store (PostgreSQL and SQLite), real project, real processes.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use compozy_worker::{Run, Worker, WorkerConfig};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(20);

async fn finished(worker: &Worker, id: &str) -> Run {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let r = worker.queue().get_run(id).await.expect("get run").expect("run exists");
        if matches!(r.status.as_str(), "succeeded" | "failed" | "cancelled") {
            return r;
        }
        if tokio::time::Instant::now() >= deadline {
            let tasks = worker.queue().run_tasks(id).await;
            panic!("run {id} did not finish: {r:?}\n{tasks:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_end_every_task_exactly_once() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    for env in Env::both().await {
        // No process dies here: a lease long enough that a starved machine's late heartbeat
        // cannot lose it (a rescue would rightly run a task twice).
        let config = WorkerConfig { lease: Duration::from_secs(10), ..fast() };
        let (a, ma) = env.worker(config.clone());
        let (b, mb) = env.worker(config);
        let runs = 150;
        let mut ids = Vec::new();
        for _ in 0..runs {
            ids.push(a.start_run("noop", &json!({})).await.expect("start"));
        }
        let over = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (over, ma, mb) = (over.clone(), ma.clone(), mb.clone());
            tokio::spawn(async move {
                loop {
                    for m in [&ma, &mb] {
                        let t = render(m);
                        if sample(&t, "compozy_worker_activities_executing") > 4.0
                            || sample(&t, "compozy_worker_workflows_executing") > 4.0
                            || sample(&t, "compozy_worker_utilization_ratio{worker_type=\"activity\"}") > 1.0
                        {
                            over.store(true, Ordering::SeqCst);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        };
        let (sa, ha) = spawn(&a);
        let (sb, hb) = spawn(&b);
        for id in &ids {
            let run = finished(&a, id).await;
            assert_eq!(run.status, "succeeded", "{}", env.name());
            let tasks = a.queue().run_tasks(id).await.expect("tasks");
            assert_eq!(tasks.len(), 2);
            assert!(tasks.iter().all(|t| t.state == "succeeded" && t.attempt == 1), "{tasks:?}");
        }
        sampler.abort();
        let _ = (sa.send(()), sb.send(()));
        ha.await.expect("a stops");
        hb.await.expect("b stops");
        assert!(!over.load(Ordering::SeqCst), "executing gauges exceeded the slots");
        let series = "compozy_worker_activity_duration_seconds_count{activity_type=\"wait\",outcome=\"success\"}";
        let total = sample(&render(&ma), series) + sample(&render(&mb), series);
        assert_eq!(total, f64::from(runs * 2), "{}: every task ran exactly once", env.name());
        for m in [&ma, &mb] {
            let t = render(m);
            assert_eq!(sample(&t, "compozy_worker_activities_executing"), 0.0);
            assert_eq!(sample(&t, "compozy_worker_max_concurrent_activities"), 4.0);
            assert_eq!(sample(&t, "compozy_worker_max_concurrent_workflows"), 4.0);
            assert_eq!(sample(&t, "compozy_worker_task_retries_total{activity_type=\"wait\"}"), 0.0);
        }
        let starts = "compozy_worker_schedule_to_start_seconds_count{queue_name=\"default\"}";
        assert_eq!(sample(&render(&ma), starts) + sample(&render(&mb), starts), f64::from(runs * 2));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_worker_loses_nothing() {
    for env in Env::both().await {
        let (a, _) = env.worker(fast());
        let (b, mb) = env.worker(fast());
        let id = a.start_run("slow", &json!({})).await.expect("start");
        let (_sa, ha) = spawn(&a);
        eventually("a claims the task", LIMIT, || async {
            let t = a.queue().run_tasks(&id).await.expect("tasks");
            t.first().is_some_and(|t| t.state == "running")
        })
        .await;
        ha.abort();
        let _ = ha.await;
        let (sb, hb) = spawn(&b);
        let run = finished(&b, &id).await;
        assert_eq!(run.status, "succeeded", "{}", env.name());
        let tasks = b.queue().run_tasks(&id).await.expect("tasks");
        assert_eq!((tasks[0].state.as_str(), tasks[0].attempt), ("succeeded", 2));
        let t = render(&mb);
        // A rescue, not a retry of the task's policy (crash semantics: tests/crash.rs).
        assert_eq!(sample(&t, "compozy_worker_tasks_rescued_total{queue_name=\"default\"}"), 1.0);
        assert_eq!(sample(&t, "compozy_worker_task_retries_total{activity_type=\"wait\"}"), 0.0);
        assert_eq!(sample(&t, "compozy_worker_tasks_dead_total{queue_name=\"default\"}"), 0.0);
        let _ = sb.send(());
        hb.await.expect("b stops");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_retry_with_backoff_then_dead_letter() {
    for env in Env::both().await {
        let (w, m) = env.worker(fast());
        let (s, h) = spawn(&w);
        let id = w.start_run("failing", &json!({})).await.expect("start");
        let run = finished(&w, &id).await;
        assert_eq!(run.status, "failed");
        assert_eq!(run.error.as_deref(), Some("task `a`: tool exited with exit status: 3: boom"));
        let tasks = w.queue().run_tasks(&id).await.expect("tasks");
        assert_eq!(
            (tasks[0].state.as_str(), tasks[0].attempt, tasks[0].last_outcome.as_deref()),
            ("dead", 3, Some("error"))
        );
        let t = render(&m);
        assert_eq!(sample(&t, "compozy_worker_task_retries_total{activity_type=\"tool\"}"), 2.0, "{}", env.name());
        assert_eq!(sample(&t, "compozy_worker_tasks_dead_total{queue_name=\"default\"}"), 1.0);
        let errors = "compozy_worker_activity_duration_seconds_count{activity_type=\"tool\",outcome=\"error\"}";
        assert_eq!(sample(&t, errors), 3.0);
        let _ = s.send(());
        h.await.expect("stops");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_floods_do_not_hurt_the_worker() {
    for env in Env::both().await {
        let (w, m) = env.worker(fast());
        let (s, h) = spawn(&w);
        let hang = w.start_run("hang", &json!({})).await.expect("start");
        let noisy = w.start_run("noisy", &json!({})).await.expect("start");
        let run = finished(&w, &hang).await;
        assert_eq!((run.status.as_str(), run.error.as_deref()), ("failed", Some("task `a`: timed out")));
        let tasks = w.queue().run_tasks(&hang).await.expect("tasks");
        assert_eq!(tasks[0].last_outcome.as_deref(), Some("timeout"));
        let run = finished(&w, &noisy).await;
        assert_eq!(run.error.as_deref(), Some("task `a`: tool stdout exceeded max_output_bytes"));
        let t = render(&m);
        let timeouts = "compozy_worker_activity_duration_seconds_count{activity_type=\"tool\",outcome=\"timeout\"}";
        assert_eq!(sample(&t, timeouts), 1.0);
        assert_eq!(sample(&t, "compozy_worker_tasks_dead_total{queue_name=\"default\"}"), 2.0);
        // The worker still works.
        let ok = w.start_run("noop", &json!({})).await.expect("start");
        assert_eq!(finished(&w, &ok).await.status, "succeeded");
        let _ = s.send(());
        h.await.expect("stops");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_flow_between_tasks_and_tools_see_only_their_env() {
    for env in Env::both().await {
        let (w, _) = env.worker(fast());
        let (s, h) = spawn(&w);
        let id = w.start_run("pipe", &json!({"x": 7})).await.expect("start");
        let run = finished(&w, &id).await;
        assert_eq!(run.status, "succeeded", "{run:?}");
        let tasks = w.queue().run_tasks(&id).await.expect("tasks");
        assert_eq!(tasks[0].output, Some(json!({"x": 7})));
        assert_eq!(tasks[1].output, Some(json!({"prev": 7, "all": {"x": 7}})));
        assert_eq!(run.output, Some(json!({"v": "configured", "home": ""})));
        let _ = s.send(());
        h.await.expect("stops");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depth_and_age_grow_while_paused_and_drain_after() {
    for env in Env::both().await {
        let (w, m) = env.worker(fast());
        w.pause();
        let (s, h) = spawn(&w);
        for _ in 0..5 {
            w.start_run("noop", &json!({})).await.expect("start");
        }
        let depth = "compozy_worker_task_queue_depth{queue_name=\"default\"}";
        let age = "compozy_worker_task_queue_oldest_age_seconds{queue_name=\"default\"}";
        eventually("depth reaches 5", LIMIT, || async { sample(&render(&m), depth) == 5.0 }).await;
        let first = sample(&render(&m), age);
        eventually("age grows", LIMIT, || async { sample(&render(&m), age) > first }).await;
        w.resume();
        eventually("queue drains", LIMIT, || async {
            let t = render(&m);
            sample(&t, depth) == 0.0 && sample(&t, age) == 0.0
        })
        .await;
        let runs =
            w.queue().list_runs(&compozy_worker::RunFilter { limit: 10, ..Default::default() }).await.expect("list");
        assert_eq!(runs.len(), 5);
        let _ = s.send(());
        h.await.expect("stops");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_node_enqueues_but_never_claims() {
    for env in Env::both().await {
        let (api, m) = env.worker(WorkerConfig { enabled: false, ..fast() });
        let (s, h) = spawn(&api);
        let id = api.start_run("noop", &json!({})).await.expect("start");
        let depth = "compozy_worker_task_queue_depth{queue_name=\"default\"}";
        eventually("the run waits in the queue", LIMIT, || async { sample(&render(&m), depth) == 1.0 }).await;
        tokio::time::sleep(fast().poll_interval * 3).await;
        let run = api.queue().get_run(&id).await.expect("read").expect("run");
        assert_eq!(run.status, "pending", "{}: an API node claims nothing", env.name());
        let t = render(&m);
        assert_eq!(sample(&t, "compozy_worker_max_concurrent_activities"), 0.0, "{t}");
        assert!(!t.contains("compozy_worker_utilization_ratio{"), "no utilization without slots: {t}");

        // A worker process on the same store runs it.
        let (w, _) = env.worker(fast());
        let (sw, hw) = spawn(&w);
        assert_eq!(finished(&w, &id).await.status, "succeeded", "{}", env.name());
        for (stop, handle) in [(s, h), (sw, hw)] {
            let _ = stop.send(());
            handle.await.expect("stops");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_run_and_shutdown_releases_leases() {
    for env in Env::both().await {
        let config = WorkerConfig { shutdown_timeout: Duration::from_millis(100), ..fast() };
        let (w, m) = env.worker(config);
        let (s, h) = spawn(&w);
        let id = w.start_run("long", &json!({})).await.expect("start");
        eventually("claimed", LIMIT, || async { w.queue().run_tasks(&id).await.expect("tasks")[0].state == "running" })
            .await;
        eventually("the cluster snapshot counts this dispatcher", LIMIT, || async {
            sample(&render(&m), "compozy_dispatchers_active") == 1.0
        })
        .await;
        assert_eq!(sample(&render(&m), "compozy_dispatchers_stale"), 0.0);
        assert_eq!(sample(&render(&m), "compozy_dispatcher_consecutive_failures"), 0.0);
        assert_eq!(sample(&render(&m), "compozy_dispatcher_health_status"), 1.0);
        let _ = s.send(());
        h.await.expect("stops");
        let t = &w.queue().run_tasks(&id).await.expect("tasks")[0];
        assert_eq!((t.state.as_str(), t.attempt), ("available", 0), "released, attempt not counted");
        assert!(w.queue().cancel_run(&id).await.expect("cancel"));
        assert!(!w.queue().cancel_run(&id).await.expect("cancel again"));
        let run = w.queue().get_run(&id).await.expect("get").expect("run");
        assert_eq!(run.status, "cancelled");
        assert_eq!(w.queue().run_tasks(&id).await.expect("tasks")[0].state, "cancelled");
    }
}

/// The run row as stored: `(status, started_at)`.
async fn stored_run(env: &Env, id: &str) -> (String, Option<i64>) {
    const SQL: &str = "SELECT status, started_at FROM workflow_runs WHERE id = $1";
    let mut conn = env.store.acquire().await.expect("connection");
    compozy_store::on_conn!(&mut conn, c => sqlx::query_as(SQL).bind(id).fetch_one(&mut **c).await.expect("run row"))
}

/// The run as the API reads it: `(status, started_at)`.
async fn read_run(w: &Worker, id: &str) -> (String, Option<i64>) {
    let run = w.queue().get_run(id).await.expect("get").expect("run");
    (run.status, run.started_at)
}

async fn listed(w: &Worker, status: &str) -> Vec<String> {
    let filter = compozy_worker::RunFilter { status: Some(status.into()), limit: 100, ..Default::default() };
    w.queue().list_runs(&filter).await.expect("list").into_iter().map(|r| r.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_writes_no_run_row_and_the_run_reads_running_from_its_first_task() {
    for env in Env::both().await {
        let config = WorkerConfig { shutdown_timeout: Duration::from_millis(100), ..fast() };
        let (w, _) = env.worker(config);
        let id = w.start_run("long", &json!({})).await.expect("start");
        assert_eq!(read_run(&w, &id).await, ("pending".into(), None), "{}", env.name());
        assert_eq!(listed(&w, "pending").await, vec![id.clone()], "{}", env.name());

        let (s, h) = spawn(&w);
        eventually("claimed", LIMIT, || async { w.queue().run_tasks(&id).await.expect("tasks")[0].state == "running" })
            .await;
        let task = w.queue().run_tasks(&id).await.expect("tasks").remove(0);
        assert_eq!(stored_run(&env, &id).await, ("pending".into(), None), "{}: the claim wrote the run", env.name());
        assert_eq!(read_run(&w, &id).await, ("running".into(), task.started_at), "{}", env.name());
        assert_eq!(listed(&w, "running").await, vec![id.clone()], "{}", env.name());
        assert!(listed(&w, "pending").await.is_empty(), "{}", env.name());

        // Released at shutdown (the attempt is not counted), claimed again: the run's start is
        // still its first task's first start.
        let _ = s.send(());
        h.await.expect("stops");
        assert_eq!(w.queue().run_tasks(&id).await.expect("tasks")[0].state, "available");
        tokio::time::sleep(Duration::from_millis(5)).await;
        let (s, h) = spawn(&w);
        eventually("claimed again", LIMIT, || async {
            let t = &w.queue().run_tasks(&id).await.expect("tasks")[0];
            t.state == "running" && t.started_at != task.started_at
        })
        .await;
        assert_eq!(read_run(&w, &id).await, ("running".into(), task.started_at), "{}", env.name());

        assert!(w.queue().cancel_run(&id).await.expect("cancel"));
        assert_eq!(read_run(&w, &id).await, ("cancelled".into(), task.started_at), "{}", env.name());
        assert_eq!(listed(&w, "cancelled").await, vec![id.clone()], "{}", env.name());
        assert!(listed(&w, "running").await.is_empty(), "{}", env.name());
        let _ = s.send(());
        h.await.expect("stops");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notify_wakes_workers_of_other_processes() {
    let Some(env) = Env::postgres().await else { return };
    let Backend::Postgres(db) = &env.backend else { return };
    // With an hour between polls, only the NOTIFY can wake the claim loop.
    let config = WorkerConfig {
        poll_interval: Duration::from_secs(3600),
        refresh_interval: Duration::from_secs(3600),
        ..fast()
    };
    let (w, _) = env.worker(config);
    let w = w.listen(compozy_core::Secret::new(db.url()));
    let (s, h) = spawn(&w);
    // Another process's enqueue: a separate queue handle, so no in-process wake-up.
    let other = compozy_worker::Queue::new(env.store.clone());
    let registry = env.project.current();
    let workflow = registry.workflow("noop").expect("noop");
    for _ in 0..3 {
        let id = other.start_run(workflow, &json!({}), "default").await.expect("start");
        assert_eq!(finished(&w, &id).await.status, "succeeded");
    }
    let _ = s.send(());
    h.await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatcher_health_counts_failed_heartbeats_not_scrapes() {
    let env = Env::sqlite().await;
    let config = WorkerConfig { stale_after: Duration::from_millis(600), ..fast() };
    let (w, m) = env.worker(config);
    let (s, h) = spawn(&w);
    eventually("healthy", LIMIT, || async {
        let t = render(&m);
        sample(&t, "compozy_dispatcher_health_status") == 1.0 && sample(&t, "compozy_dispatchers_active") == 1.0
    })
    .await;
    env.store.close().await;
    eventually("two failed heartbeats", LIMIT, || async {
        sample(&render(&m), "compozy_dispatcher_consecutive_failures") >= 2.0
    })
    .await;
    // Scraping does not count: two renders with no heartbeat between them read the same value
    // (the heartbeat interval is 200 ms; both renders happen within microseconds of each other).
    let a = render(&m);
    let b = render(&m);
    let failures = |t: &str| sample(t, "compozy_dispatcher_consecutive_failures");
    assert!(failures(&b) - failures(&a) <= 1.0);
    eventually("stale after 600 ms without a heartbeat", LIMIT, || async {
        let t = render(&m);
        sample(&t, "compozy_dispatcher_health_status") == 0.0
            && sample(&t, "compozy_dispatcher_heartbeat_age_seconds") > 0.6
    })
    .await;
    let _ = s.send(());
    h.await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_tool_takes_its_children_with_it() {
    let env = Env::sqlite().await;
    let tool = "resource: tool\nid: orphan\ncommand: sh\nargs: [\"-c\", \"sleep 1000 & echo $! > child.pid; wait\"]\n";
    env.add("tools/orphan.yaml", tool).await;
    let wf = "resource: workflow\nid: orphans\ntasks:\n  - {id: a, type: tool, tool: orphan, timeout: 300ms}\n";
    env.add("workflows/orphans.yaml", wf).await;
    let (w, _) = env.worker(fast());
    let (s, h) = spawn(&w);
    let id = w.start_run("orphans", &json!({})).await.expect("start");
    assert_eq!(finished(&w, &id).await.error.as_deref(), Some("task `a`: timed out"));
    let pid = std::fs::read_to_string(env.dir.path().join("child.pid")).expect("child pid");
    let stat = format!("/proc/{}/stat", pid.trim());
    eventually("the grandchild is gone", LIMIT, || async {
        // Gone, or a zombie waiting for a reaper that never comes in some containers.
        std::fs::read_to_string(&stat).map_or(true, |s| s.split_whitespace().nth(2) == Some("Z"))
    })
    .await;
    let _ = s.send(());
    h.await.expect("stops");
}
