//! One claimed attempt, from its claim to its recorded end: resolve the workflow and the
//! template context, run the activity within its slot (stopped when the lease is lost), then
//! hand a success to the completer or record the failure (retry, dead-letter or fail).
//!
//! With tracing on, each attempt is a span ([`attempt_span`]) with the activity and the
//! recording of its outcome as children; the activity's duration is recorded inside it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use compozy_autoload::ToolRules;
use compozy_autoload::resources::{Action, Workflow};
use compozy_telemetry::traces;
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tracing::Instrument;

use crate::activity::{self, Limits, Outcome};
use crate::clock::{millis, now_ms};
use crate::completer::Completer;
use crate::context::Context;
use crate::queue::{Claimed, Failed, Success, new_task};
use crate::{backoff, template};

/// Slots one claimed task holds: its run's until the run is advanced, the activity's while it runs.
pub(crate) struct Slots {
    pub(crate) workflow: OwnedSemaphorePermit,
    pub(crate) activity: OwnedSemaphorePermit,
}

/// Decrements a gauge when dropped, so aborted tasks are counted out too.
struct Counted<'a>(&'a std::sync::atomic::AtomicI64);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(crate) async fn execute(
    ctx: Arc<Context>,
    task: Claimed,
    slots: Slots,
    completer: Completer,
    lost: oneshot::Receiver<()>,
) {
    let workflow_gauge = Counted(&ctx.metrics.snapshot.workflows);
    let registry = ctx.project.registry();
    let attempt = async {
        match resolve(&ctx, &registry, &task).await {
            Ok((workflow, input)) => (Some(workflow), run_activity(&ctx, workflow, &task, input, slots.activity).await),
            Err(outcome) => (None, outcome),
        }
    };
    // Losing the lease drops the attempt's future: a tool's process group is killed with it,
    // and nothing is recorded (another attempt owns the task now, or its run was cancelled).
    let ended = tokio::select! {
        ended = attempt => Some(ended),
        Ok(()) = lost => None,
    };
    let outcome = ended.as_ref().map_or("lost", |(_, outcome)| outcome.label());
    outcome_fields(&tracing::Span::current(), outcome);
    if let Some((workflow, outcome)) = ended {
        let held = Held { _gauge: workflow_gauge, _slot: slots.workflow };
        let span = compozy_telemetry::child_span!("task.complete");
        record(&ctx, &completer, workflow, &task, outcome, held).instrument(span).await;
    }
    ctx.inflight.lock().remove(&task.token);
}

/// The span of one attempt, from its claim to its recorded end (none with tracing off). The
/// first attempt continues the trace that enqueued the task; a retry or a rescue (attempt > 1)
/// starts its own trace, linked to the enqueuer's span.
pub(crate) fn attempt_span(task: &Claimed) -> tracing::Span {
    let span = compozy_telemetry::span!(
        "task.attempt",
        otel.status_code = tracing::field::Empty,
        task.id = %task.id,
        task.name = %task.name,
        task.kind = task.kind.as_str(),
        task.attempt = task.attempt,
        task.queue = %task.queue,
        task.outcome = tracing::field::Empty,
        run.id = %task.run_id,
    );
    if span.is_none() {
        return span;
    }
    match task.traceparent.as_deref() {
        Some(parent) if task.attempt <= 1 => traces::set_parent(&span, parent),
        Some(enqueuer) => {
            traces::set_root(&span);
            traces::add_link(&span, enqueuer);
        }
        None => traces::set_root(&span),
    }
    span
}

fn outcome_fields(span: &tracing::Span, outcome: &'static str) {
    if span.is_none() {
        return;
    }
    span.record("task.outcome", outcome);
    if outcome != "success" {
        span.record("otel.status_code", "ERROR");
    }
}

/// The activity's span: a tool run, an HTTP call (a client span) or a wait.
fn activity_span(action: &Action) -> tracing::Span {
    match action {
        Action::Wait(_) => compozy_telemetry::child_span!("activity.wait"),
        Action::Tool(t) => compozy_telemetry::child_span!("activity.tool", tool.id = %t.tool.as_str()),
        Action::Http(h) => compozy_telemetry::child_span!(
            "activity.http",
            otel.kind = "client",
            http.request.method = %h.method,
            http.response.status_code = tracing::field::Empty,
        ),
    }
}

/// What a task holds until its outcome is recorded, or, for a success, handed to the flusher.
struct Held<'a> {
    // Fields drop in order: the gauge goes down before the slot can be claimed again.
    _gauge: Counted<'a>,
    _slot: OwnedSemaphorePermit,
}

/// The workflow of `task` and the context its activity's templates are rendered with.
async fn resolve<'r>(
    ctx: &Context,
    registry: &'r compozy_autoload::ProjectRegistry,
    task: &Claimed,
) -> Result<(&'r Workflow, serde_json::Value), Outcome> {
    let workflow =
        registry.workflow(&task.workflow_id).ok_or_else(|| Outcome::Permanent("workflow no longer loaded".into()))?;
    let def = usize::try_from(task.position).ok().and_then(|p| workflow.tasks.get(p));
    let Some(def) = def.filter(|d| d.id.as_str() == task.name) else {
        return Err(Outcome::Permanent("task no longer in the workflow".into()));
    };
    // Only templates read earlier outputs: a first task or a wait needs no read of the run.
    let outputs = if task.position == 0 || matches!(def.action, Action::Wait(_)) {
        Vec::new()
    } else {
        ctx.queue.outputs(&task.run_id).await.map_err(|e| Outcome::Error(format!("reading the run failed: {e}")))?
    };
    let parse = |s: &str| serde_json::from_str(s).unwrap_or(serde_json::Value::Null);
    let outputs = outputs.into_iter().map(|(id, o)| (id, o.as_deref().map(parse))).collect();
    Ok((workflow, template::context(parse(&task.input), outputs)))
}

async fn run_activity(
    ctx: &Context,
    workflow: &Workflow,
    task: &Claimed,
    vars: serde_json::Value,
    slot: OwnedSemaphorePermit,
) -> Outcome {
    let Some(def) = usize::try_from(task.position).ok().and_then(|p| workflow.tasks.get(p)) else {
        return Outcome::Permanent("task no longer in the workflow".into());
    };
    let _gauge = {
        ctx.metrics.snapshot.activities.fetch_add(1, Ordering::Relaxed);
        Counted(&ctx.metrics.snapshot.activities)
    };
    let started = Instant::now();
    let c = &ctx.config;
    let limits = Limits { stdout: c.max_output_bytes, stderr: c.max_stderr_bytes, response: c.max_response_bytes };
    // The tool and HTTP activities are boxed: inline, their state (a child process, an HTTP
    // exchange) made every attempt's future 18.8 KB, copied and zeroed at each spawn whatever
    // its kind (a fifth of a worker's CPU in a burn of no-op tasks); boxed, it is 1.9 KB.
    let activity = async {
        match &def.action {
            Action::Wait(w) => activity::wait(w.duration, def.timeout).await,
            Action::Tool(t) => {
                let registry = ctx.project.registry();
                match registry.tool(t.tool.as_str()) {
                    None => Outcome::Permanent(format!("tool `{}` is not loaded", t.tool)),
                    Some(tool) => {
                        let input = t.input.as_ref().map_or(serde_json::Value::Null, |i| template::render(i, &vars));
                        match ToolRules::new(&ctx.project.root(), &c.allowed_commands) {
                            Ok(rules) => Box::pin(activity::tool(tool, &rules, &input, def.timeout, limits)).await,
                            Err(e) => Outcome::Error(format!("project root: {}", e.kind())),
                        }
                    }
                }
            }
            Action::Http(h) => match &ctx.http {
                None => Outcome::Permanent("no HTTP client could be built".into()),
                Some(client) => {
                    let body = h.body.as_ref().map(|b| template::render(b, &vars));
                    Box::pin(activity::http(client, h, body, def.timeout, limits.response)).await
                }
            },
        }
    };
    let outcome = activity.instrument(activity_span(&def.action)).await;
    ctx.metrics.activity(task.kind, outcome.label(), started.elapsed().as_secs_f64());
    drop(slot);
    outcome
}

/// Writes the attempt's outcome and advances the run; a store failure leaves the lease to
/// expire, and the rescue re-queues the task.
async fn record(
    ctx: &Context,
    completer: &Completer,
    workflow: Option<&Workflow>,
    task: &Claimed,
    outcome: Outcome,
    held: Held<'_>,
) {
    let q = &ctx.queue;
    let result = match outcome {
        Outcome::Success(value) => {
            let next_pos = usize::try_from(task.position).unwrap_or(usize::MAX).saturating_add(1);
            let next = workflow.and_then(|w| new_task(w, &task.run_id, next_pos, &task.queue, now_ms()));
            let has_next = next.is_some();
            let success = Success {
                task_id: task.id.clone(),
                token: task.token.clone(),
                run_id: task.run_id.clone(),
                output: value.to_string(),
                next,
            };
            let stored = completer.submit(success).await;
            // Nothing runs for this task any more: free its slot now, so the next claim goes
            // out while the flush is in flight instead of after it.
            drop(held);
            ctx.wake.notify_one();
            let done = stored.await;
            if has_next && done == Some(true) {
                ctx.wake.notify_one();
            }
            return;
        }
        Outcome::Permanent(e) => q.fail(task, &ctx.id, "error", &e, None, true).await,
        failed => {
            let error = match &failed {
                Outcome::Error(e) => e.as_str(),
                _ => "timed out",
            };
            let policy = workflow.and_then(|w| usize::try_from(task.position).ok().and_then(|p| w.tasks.get(p)));
            let retry_at = policy.map(|d| now_ms() + millis(backoff::delay(&d.retry.backoff, task.attempt)));
            q.fail(task, &ctx.id, failed.label(), error, retry_at, false).await
        }
    };
    drop(held);
    match result {
        Ok(Failed::Retried) => ctx.metrics.retry(task.kind),
        Ok(Failed::Dead) => ctx.metrics.dead(),
        Ok(Failed::Lost) => {
            tracing::info!(task = %task.id, "the attempt had lost its lease; its failure was not recorded")
        }
        Ok(Failed::Failed) => {}
        Err(e) => tracing::warn!(task = %task.id, error = %e, "recording a task outcome failed; its lease will expire"),
    }
}
