//! Crashes never fail a run: expired leases re-queue without consuming the task's attempts,
//! a task that keeps killing its workers is dead-lettered on its own bound, attempts are fenced
//! by their token (a stale attempt ends nothing, even in the process that re-claimed the task),
//! a lost lease stops the running activity, and the dispatcher registry tells the truth.

mod common;

use std::time::Duration;

use common::*;
use compozy_testkit::sample_opt;
use compozy_worker::queue::{Claimed, Failed, Success};
use compozy_worker::{Worker, WorkerConfig};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(20);

fn now_ms() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis())
        .expect("ms")
}

/// The success of claimed attempt `t`, with `output` (JSON), ending its run.
fn success(t: &Claimed, output: &str) -> Success {
    Success {
        task_id: t.id.clone(),
        token: t.token.clone(),
        run_id: t.run_id.clone(),
        output: output.into(),
        next: None,
    }
}

async fn status(worker: &Worker, id: &str) -> String {
    worker.queue().get_run(id).await.expect("get run").expect("run exists").status
}

/// Waits for run `id` to end; its status.
async fn finished(worker: &Worker, id: &str) -> String {
    eventually("the run ends", LIMIT, || async {
        matches!(status(worker, id).await.as_str(), "succeeded" | "failed" | "cancelled")
    })
    .await;
    status(worker, id).await
}

/// A workflow of one task without a `retry` block (one attempt), as users write them.
const ONE_SHOT: &str = "resource: workflow\nid: oneshot\ntasks:\n  - {id: a, type: wait, duration: 1500ms}\n";

/// A worker (not running) of a project that has the `oneshot` workflow.
async fn oneshot_worker(env: &Env) -> Worker {
    env.add("workflows/oneshot.yaml", ONE_SHOT).await;
    env.worker(fast()).0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_does_not_consume_the_attempts_of_a_task() {
    for env in Env::both().await {
        env.add("workflows/oneshot.yaml", ONE_SHOT).await;
        let (a, _) = env.worker(fast());
        let (b, mb) = env.worker(fast());
        let id = a.start_run("oneshot", &json!({})).await.expect("start");
        let (_sa, ha) = spawn(&a);
        eventually("a claims the task", LIMIT, || async {
            a.queue().run_tasks(&id).await.expect("tasks").first().is_some_and(|t| t.state == "running")
        })
        .await;
        ha.abort(); // the process dies: no release, no heartbeat
        let _ = ha.await;
        let (sb, hb) = spawn(&b);
        assert_eq!(finished(&b, &id).await, "succeeded", "{}", env.name());
        let history = b.queue().run_history(&id).await.expect("history");
        let task = &history[0];
        assert_eq!((task.task.state.as_str(), task.task.attempt, task.task.max_attempts), ("succeeded", 2, 1));
        let [lost, ran] = &task.attempts[..] else { panic!("two attempts expected: {task:?}") };
        assert_eq!(lost.outcome.as_deref(), Some("rescued"), "{}", env.name());
        assert!(lost.error.as_deref().is_some_and(|e| e.starts_with("lease expired")), "{lost:?}");
        assert_eq!(lost.worker.as_deref(), Some(a.id()));
        assert_eq!((ran.outcome.as_deref(), ran.worker.as_deref()), (Some("success"), Some(b.id())));
        let t = render(&mb);
        assert_eq!(sample(&t, "compozy_worker_tasks_rescued_total{queue_name=\"default\"}"), 1.0, "{t}");
        assert_eq!(sample(&t, "compozy_worker_task_retries_total{activity_type=\"wait\"}"), 0.0);
        assert_eq!(sample(&t, "compozy_worker_tasks_dead_total{queue_name=\"default\"}"), 0.0);
        let _ = sb.send(());
        hb.await.expect("b stops");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_keeps_killing_its_workers_is_dead_lettered_past_max_rescues() {
    for env in Env::both().await {
        let w = oneshot_worker(&env).await;
        let q = w.queue();
        let id = w.start_run("oneshot", &json!({})).await.expect("start");
        // Two workers that die holding the task: claimed with a lease that is already over.
        for round in 0..3 {
            let claimed = q.claim("default", &format!("dead-{round}"), 1, now_ms() - 1).await.expect("claim");
            assert_eq!(claimed.len(), 1, "round {round}: the task is ready again");
            let rescued = q.rescue(2).await.expect("rescue");
            if round < 2 {
                assert_eq!(rescued.requeued, vec!["default".to_string()], "{}", env.name());
            } else {
                assert_eq!(rescued.dead.len(), 1, "{}: the third expiry is past max_rescues 2", env.name());
            }
        }
        let run = q.get_run(&id).await.expect("get").expect("run");
        assert_eq!(run.status, "failed");
        assert!(run.error.as_deref().is_some_and(|e| e.contains("keeps killing its workers")), "{run:?}");
        let task = &q.run_history(&id).await.expect("history")[0];
        assert_eq!(task.task.state, "dead");
        let outcomes: Vec<_> =
            task.attempts.iter().map(|a| (a.attempt, a.outcome.clone().unwrap_or_default())).collect();
        assert_eq!(outcomes, [(1, "rescued".into()), (2, "rescued".into()), (3, "rescued".into())], "{task:?}");
        let workers: Vec<_> = task.attempts.iter().map(|a| a.worker.clone().unwrap_or_default()).collect();
        assert_eq!(workers, ["dead-0", "dead-1", "dead-2"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_attempt_ends_nothing_after_the_same_process_reclaims_the_task() {
    for env in Env::both().await {
        let w = oneshot_worker(&env).await;
        let q = w.queue();
        let id = w.start_run("oneshot", &json!({})).await.expect("start");
        let me = "worker-same";
        let stale = q.claim("default", me, 1, now_ms() - 1).await.expect("claim").remove(0);
        q.rescue(5).await.expect("rescue");
        let fresh = q.claim("default", me, 1, now_ms() + 60_000).await.expect("reclaim").remove(0);
        assert_eq!((stale.id.as_str(), stale.attempt, fresh.attempt), (fresh.id.as_str(), 1, 2));
        assert_ne!(stale.token, fresh.token, "{}: every claim draws a new token", env.name());

        // The stale attempt can neither extend, fail nor complete the new one.
        let held =
            q.extend_leases(&[(stale.id.clone(), stale.token.clone())], now_ms() + 60_000).await.expect("extend");
        assert!(held.is_empty(), "{}: a stale attempt extends nothing", env.name());
        let failed = q.fail(&stale, me, "error", "stale", Some(now_ms()), false).await.expect("fail");
        assert_eq!(failed, Failed::Lost);
        assert!(q.succeed_batch(&[success(&stale, "\"stale\"")]).await.expect("succeed").is_empty());
        assert_eq!(q.run_tasks(&id).await.expect("tasks")[0].state, "running", "{}", env.name());

        // The live attempt still holds its lease and ends the task.
        let held =
            q.extend_leases(&[(fresh.id.clone(), fresh.token.clone())], now_ms() + 60_000).await.expect("extend");
        assert!(held.contains(&fresh.token));
        assert_eq!(q.succeed_batch(&[success(&fresh, "\"fresh\"")]).await.expect("succeed").len(), 1);
        let run = q.get_run(&id).await.expect("get").expect("run");
        assert_eq!((run.status.as_str(), run.output), ("succeeded", Some(json!("fresh"))));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_stops_the_running_tool_and_records_nothing() {
    for env in Env::both().await {
        let tool =
            "resource: tool\nid: sleeper\ncommand: sh\nargs: [\"-c\", \"sleep 1000 & echo $! > sleeper.pid; wait\"]\n";
        env.add("tools/sleeper.yaml", tool).await;
        let wf = "resource: workflow\nid: sleepy\ntasks:\n  - {id: a, type: tool, tool: sleeper, timeout: 1h}\n";
        env.add("workflows/sleepy.yaml", wf).await;
        let pid_file = env.dir.path().join("sleeper.pid");
        let _ = std::fs::remove_file(&pid_file);
        let (w, m) = env.worker(fast());
        let (s, h) = spawn(&w);
        let id = w.start_run("sleepy", &json!({})).await.expect("start");
        eventually("the tool runs", LIMIT, || async { pid_file.exists() }).await;
        eventually("the pid is written", LIMIT, || async {
            std::fs::read_to_string(&pid_file).is_ok_and(|p| p.trim().parse::<u32>().is_ok())
        })
        .await;
        let pid = std::fs::read_to_string(&pid_file).expect("pid");
        // Cancelling the run takes the lease away; the next heartbeat stops the activity.
        assert!(w.queue().cancel_run(&id).await.expect("cancel"));
        let stat = format!("/proc/{}/stat", pid.trim());
        eventually("the tool's process group is killed", LIMIT, || async {
            std::fs::read_to_string(&stat).map_or(true, |s| s.split_whitespace().nth(2) == Some("Z"))
        })
        .await;
        eventually("the slot is free again", LIMIT, || async {
            sample(&render(&m), "compozy_worker_activities_executing") == 0.0
        })
        .await;
        let task = &w.queue().run_history(&id).await.expect("history")[0];
        assert_eq!(task.task.state, "cancelled", "{}", env.name());
        assert!(
            task.attempts.iter().all(|a| a.outcome.is_none() || a.outcome.as_deref() == Some("rescued")),
            "{task:?}"
        );
        let _ = s.send(());
        h.await.expect("stops");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_dispatchers_are_pruned_and_api_nodes_are_not_dispatchers() {
    for env in Env::both().await {
        let config = WorkerConfig { stale_after: Duration::from_millis(400), stale_prune_multiple: 3, ..fast() };
        let (w, m) = env.worker(config.clone());
        let (api, _) = env.worker(WorkerConfig { enabled: false, ..config });
        // A process that registered and died without deregistering.
        env.store.register_instance("worker-killed", "worker").await.expect("register");
        let (s, h) = spawn(&w);
        let (sa, ha) = spawn(&api);
        eventually("the dead one goes stale", LIMIT, || async {
            let t = render(&m);
            sample(&t, "compozy_dispatchers_stale") == 1.0 && sample(&t, "compozy_dispatchers_active") == 1.0
        })
        .await;
        let roles: Vec<_> = env.store.list_instances(Duration::from_secs(3600)).await.expect("list");
        assert!(roles.iter().any(|i| i.id == api.id() && i.role == "api"), "{roles:?}");
        assert!(roles.iter().any(|i| i.id == w.id() && i.role == "worker"), "{roles:?}");
        eventually("pruned after 3 × stale_after", LIMIT, || async {
            sample(&render(&m), "compozy_dispatchers_stale") == 0.0
        })
        .await;
        let left = env.store.list_instances(Duration::from_secs(3600)).await.expect("list");
        assert!(left.iter().all(|i| i.id != "worker-killed"), "{}: {left:?}", env.name());
        assert_eq!(sample(&render(&m), "compozy_dispatchers_active"), 1.0, "the API node is not counted");
        for (stop, handle) in [(s, h), (sa, ha)] {
            let _ = stop.send(());
            handle.await.expect("stops");
        }
    }
}

/// A heartbeat due while the worker stops must not register the process again after its row
/// was removed: heartbeats every millisecond make the race likely on every stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_leaves_no_dispatcher_row() {
    for env in Env::both().await {
        let config = WorkerConfig { heartbeat_interval: Duration::from_millis(1), ..fast() };
        for _ in 0..20 {
            let (w, _) = env.worker(config.clone());
            let (s, h) = spawn(&w);
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = s.send(());
            h.await.expect("stops");
            tokio::time::sleep(Duration::from_millis(5)).await;
            let left = env.store.list_instances(Duration::from_secs(3600)).await.expect("list");
            assert!(left.iter().all(|i| i.id != w.id()), "{}: {} registered again: {left:?}", env.name(), w.id());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_age_counts_from_the_start_before_the_first_heartbeat() {
    let env = Env::sqlite().await;
    let (_w, m) = env.worker(fast());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = render(&m);
    assert!(sample(&t, "compozy_dispatcher_heartbeat_age_seconds") >= 0.3, "{t}");
    assert_eq!(sample(&t, "compozy_dispatcher_health_status"), 0.0);
    assert_eq!(sample_opt(&t, "compozy_worker_tasks_rescued_total{queue_name=\"default\"}"), Some(0.0), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_refuses_values_outside_the_vocabularies() {
    for env in Env::both().await {
        let (w, _) = env.worker(fast());
        let id = w.start_run("noop", &json!({})).await.expect("start");
        let strangers = [
            format!("UPDATE tasks SET kind = 'shell' WHERE run_id = '{id}'"),
            format!("UPDATE tasks SET state = 'paused' WHERE run_id = '{id}'"),
            format!("UPDATE tasks SET last_outcome = 'meh' WHERE run_id = '{id}'"),
            format!("UPDATE workflow_runs SET status = 'done' WHERE id = '{id}'"),
        ];
        for statement in &strangers {
            let mut conn = env.store.acquire().await.expect("connection");
            let refused = match &mut conn {
                compozy_store::StoreConn::Postgres(c) => {
                    sqlx::query(sqlx::AssertSqlSafe(statement.as_str())).execute(&mut **c).await.is_err()
                }
                compozy_store::StoreConn::Sqlite(c) => {
                    sqlx::query(sqlx::AssertSqlSafe(statement.as_str())).execute(&mut **c).await.is_err()
                }
            };
            assert!(refused, "{}: {statement}", env.name());
        }
        assert_eq!(w.queue().run_tasks(&id).await.expect("tasks")[0].kind, "wait");
    }
}

/// The heartbeat's lease extension and the completer's batch write the same rows. Taken in
/// opposite orders they deadlocked on PostgreSQL, and the batch chosen as the victim left its
/// tasks to wait for their leases to expire and run again; the extension now skips rows that
/// are locked (reporting them held) instead of waiting for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_extension_and_completion_of_the_same_tasks_never_fail_each_other() {
    const TASKS: i64 = 32;
    for env in Env::both().await {
        let w = oneshot_worker(&env).await;
        let q = w.queue();
        for round in 0..20 {
            for _ in 0..TASKS {
                w.start_run("oneshot", &json!({})).await.expect("start");
            }
            let mut claimed = q.claim("default", "worker-x", TASKS, now_ms() + 60_000).await.expect("claim");
            assert_eq!(claimed.len() as i64, TASKS);
            claimed.sort_by(|a, b| a.id.cmp(&b.id));
            let held: Vec<(String, String)> = claimed.iter().map(|t| (t.id.clone(), t.token.clone())).collect();
            let successes: Vec<Success> = claimed.iter().rev().map(|t| success(t, "1")).collect();
            let heartbeats = async {
                for _ in 0..4 {
                    q.extend_leases(&held, now_ms() + 60_000).await.expect("a lease extension never fails");
                }
            };
            let (_, completed) = tokio::join!(heartbeats, q.succeed_batch(&successes));
            let completed =
                completed.unwrap_or_else(|e| panic!("{} round {round}: completion failed: {e}", env.name()));
            assert_eq!(completed.len() as i64, TASKS, "{} round {round}", env.name());
        }
    }
}

/// Cancelling a run while its task's success is being recorded. The cancel took the run's row
/// first and the completion its task's row first, so PostgreSQL could end either as a deadlock
/// victim (and with the completion, every other success of its batch). Either may win; neither
/// fails, and exactly one of them has its way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_racing_the_completion_of_its_task_fails_neither() {
    for env in Env::both().await {
        let w = oneshot_worker(&env).await;
        let q = w.queue();
        for round in 0..40 {
            let id = w.start_run("oneshot", &json!({})).await.expect("start");
            let t = q.claim("default", "worker-x", 1, now_ms() + 60_000).await.expect("claim").remove(0);
            let done = [success(&t, "1")];
            let (cancelled, completed) = tokio::join!(q.cancel_run(&id), q.succeed_batch(&done));
            let name = env.name();
            let cancelled = cancelled.unwrap_or_else(|e| panic!("{name} round {round}: cancel failed: {e}"));
            let completed = completed.unwrap_or_else(|e| panic!("{name} round {round}: completion failed: {e}"));
            assert_eq!(cancelled, completed.is_empty(), "{name} round {round}: exactly one wins");
            let want = if cancelled { "cancelled" } else { "succeeded" };
            assert_eq!(status(&w, &id).await, want, "{name} round {round}");
        }
    }
}

/// A stopping process releases its leases while its completion flusher may still be writing a
/// batch (the flusher outlives the shutdown's wait). The release leaves the rows that batch
/// holds; waiting for them instead, the two could each wait for the other's next row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_at_shutdown_leaves_the_rows_a_completion_is_writing() {
    let Some(env) = Env::postgres().await else { return };
    let mut conn = env.store.acquire().await.expect("connection");
    let compozy_store::StoreConn::Postgres(batch) = &mut conn else { unreachable!("a PostgreSQL env") };
    let seed = [
        "INSERT INTO workflow_runs (id, workflow_id, status, input, created_at, started_at) VALUES \
         ('r1', 'noop', 'running', '{}', 1, 1), ('r2', 'noop', 'running', '{}', 2, 2)",
        "INSERT INTO tasks (id, run_id, position, name, kind, queue, state, attempt, max_attempts, available_at, \
         created_at, lease_owner, lease_token, lease_expires_at) SELECT id || '-t', id, 0, 'pause', 'wait', \
         'default', 'running', 1, 3, 0, 0, 'w-stopping', id || '-token', 9000000000000 FROM workflow_runs",
    ];
    for sql in seed {
        sqlx::query(sql).execute(&mut **batch).await.expect("seed");
    }
    // The completion batch in flight holds r1's task.
    sqlx::query("BEGIN").execute(&mut **batch).await.expect("begin");
    sqlx::query("SELECT id FROM tasks WHERE id = 'r1-t' FOR UPDATE").execute(&mut **batch).await.expect("lock");

    let (worker, _) = env.worker(fast());
    let release = tokio::time::timeout(Duration::from_secs(30), worker.queue().release("w-stopping"));
    let released = release.await.expect("the release waited for the completion's row").expect("release");
    assert_eq!(released, 1);
    sqlx::query("COMMIT").execute(&mut **batch).await.expect("commit");
    let states: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT id, state, lease_owner FROM tasks ORDER BY id")
            .fetch_all(&mut **batch)
            .await
            .expect("read");
    assert_eq!(
        states,
        [("r1-t".into(), "running".into(), Some("w-stopping".into())), ("r2-t".into(), "available".into(), None)]
    );
}
