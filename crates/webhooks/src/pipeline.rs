//! One delivery, step by step: look up → read body (limit, deadline) → verify → slot → parse →
//! dedupe → filter → render → schema → store delivery + enqueue run (one transaction) → answer.
//!
//! The body is read and verified before a processing slot is taken, so a sender that stalls or
//! cannot sign holds nothing that verified deliveries need.
//!
//! Parsing comes before dedupe (the issue lists it after) because a configured `body.<path>`
//! delivery ID needs the parsed body; a body that is not a JSON object is refused with 400 before
//! any dedupe key is claimed, which is what the later order would answer too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use compozy_autoload::ProjectRegistry;
use compozy_autoload::resources::{VerifyMethod, WebhookTrigger};
use compozy_store::{Cache, CacheError, RETRY_AFTER};
use compozy_worker::WorkerError;
use http::HeaderMap;
use http_body_util::BodyExt;
use serde_json::Value;
use tracing::Instrument;

use crate::deliveries::NewDelivery;
use crate::metrics::{DEFAULT_EVENT, DeliveryResult as Res, NO_EVENT, UNKNOWN};
use crate::{Inner, dedupe, input, verify};

/// Why processing stopped early (the response and the `result` label follow from it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    NotFound,
    Overloaded,
    PayloadTooLarge(usize),
    /// The body did not arrive within `webhooks.body_timeout`: 408.
    BodyTimeout,
    VerificationFailed,
    BadRequest(&'static str),
    /// A duplicate of a delivery that succeeded: 200, the sender should stop retrying.
    Duplicate,
    /// A duplicate of a delivery still in process: 409, the sender should retry later.
    InProgress,
    NoMatch,
    SchemaError(String),
    /// The store or the cache could not serve: 503 with `Retry-After`.
    Unavailable,
    /// Anything else: 500 without details.
    Internal,
}

impl Stop {
    pub fn result(&self) -> Res {
        match self {
            Stop::NotFound => Res::NotFound,
            Stop::Overloaded => Res::Overloaded,
            Stop::PayloadTooLarge(_) => Res::PayloadTooLarge,
            Stop::BodyTimeout => Res::BodyTimeout,
            Stop::VerificationFailed => Res::VerificationFailed,
            Stop::BadRequest(_) => Res::BadRequest,
            Stop::Duplicate => Res::Duplicate,
            Stop::InProgress => Res::InProgress,
            Stop::NoMatch => Res::NoMatch,
            Stop::SchemaError(_) => Res::SchemaError,
            Stop::Unavailable | Stop::Internal => Res::Error,
        }
    }
}

/// A delivery that was stored with its run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub run_id: String,
    pub delivery_id: String,
    pub event: String,
}

/// How a delivery ended, with what its metrics need.
#[derive(Debug)]
pub struct Outcome {
    pub source: String,
    pub event_type: String,
    pub payload_size: Option<usize>,
    pub result: Result<Accepted, Stop>,
}

impl Outcome {
    fn stop(source: &str, event_type: &str, size: Option<usize>, stop: Stop) -> Outcome {
        Outcome { source: source.into(), event_type: event_type.into(), payload_size: size, result: Err(stop) }
    }
}

/// A received delivery (or a replayed one: verification and dedupe are skipped).
pub struct Request<'a> {
    pub slug: &'a str,
    pub headers: &'a HeaderMap,
    pub body: Body,
    pub replay_of: Option<String>,
}

impl Inner {
    pub(crate) async fn process(&self, req: Request<'_>) -> Outcome {
        let registry: Arc<ProjectRegistry> = self.worker.project().registry();
        let Some((workflow, hook)) = registry.webhook(req.slug) else {
            return Outcome::stop(UNKNOWN, UNKNOWN, None, Stop::NotFound);
        };
        let source = hook.source();
        let limit = usize::try_from(hook.body_limit.unwrap_or(self.config.default_body_limit)).unwrap_or(usize::MAX);
        let reading = tokio::time::timeout(self.config.body_timeout, read_body(req.headers, req.body, limit));
        let raw = match reading.instrument(compozy_telemetry::child_span!("webhook.read_body")).await {
            Ok(Ok(b)) => b,
            Ok(Err(stop)) => return Outcome::stop(source, NO_EVENT, None, stop),
            Err(_) => return Outcome::stop(source, NO_EVENT, None, Stop::BodyTimeout),
        };
        let size = Some(raw.len());
        let replay = req.replay_of.is_some();
        if !replay && let Err(stop) = self.verify(hook, req.headers, &raw) {
            return Outcome::stop(source, NO_EVENT, size, stop);
        }
        let _depth = self.metrics.enter();
        let Some(_slot) = self.slots.acquire(req.slug, self.config.slot_wait).await else {
            return Outcome::stop(source, NO_EVENT, size, Stop::Overloaded);
        };
        let body = match serde_json::from_slice::<Value>(&raw) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Outcome::stop(source, NO_EVENT, size, Stop::BadRequest("the body must be a JSON object")),
        };
        let claim = if replay { None } else { dedupe::delivery_id(hook, req.headers, &body, &raw) };
        let claim = claim.map(|id| dedupe::cache_key(req.slug, &id));
        if let Some(key) = &claim {
            let claiming = dedupe::claim(&self.cache, key, self.config.in_progress_ttl);
            match claiming.instrument(compozy_telemetry::child_span!("webhook.dedupe")).await {
                Ok(dedupe::Claim::New) => {}
                Ok(dedupe::Claim::Succeeded) => return Outcome::stop(source, NO_EVENT, size, Stop::Duplicate),
                Ok(dedupe::Claim::InProgress) => return Outcome::stop(source, NO_EVENT, size, Stop::InProgress),
                Err(e) => return Outcome::stop(source, NO_EVENT, size, cache_stop(&e)),
            }
        }
        let ctx = DeliveryCtx {
            slug: req.slug,
            workflow_id: workflow.id.as_str(),
            hook,
            raw: &raw,
            replay_of: req.replay_of,
        };
        let (event, result) = self.dispatch(&ctx, &body, req.headers, claim.clone()).await;
        self.finish_claim(hook, claim.as_deref(), &result).await;
        Outcome { source: source.into(), event_type: event, payload_size: size, result }
    }

    fn verify(&self, hook: &WebhookTrigger, headers: &HeaderMap, raw: &[u8]) -> Result<(), Stop> {
        if hook.verify.method == VerifyMethod::None {
            return Ok(());
        }
        let _span = compozy_telemetry::child_span!("webhook.verify").entered();
        let started = Instant::now();
        let checked = verify::verify(&hook.verify, headers, raw, unix_now());
        self.metrics.verified(hook.source(), started.elapsed().as_secs_f64());
        checked.map_err(|e| {
            tracing::info!(source = hook.source(), reason = e.reason(), "webhook verification failed");
            Stop::VerificationFailed
        })
    }

    /// Filter, render, schema, store + enqueue. Returns the event type label and the result.
    async fn dispatch(
        &self,
        d: &DeliveryCtx<'_>,
        body: &Value,
        headers: &HeaderMap,
        dedupe_key: Option<String>,
    ) -> (String, Result<Accepted, Stop>) {
        let selected =
            compozy_telemetry::child_span!("webhook.filter_render").in_scope(|| self.filter_render(d, body, headers));
        let (name, run_input) = match selected {
            Ok(selected) => selected,
            Err((name, stop)) => return (name, Err(stop)),
        };
        let run = match self.worker.new_run(d.workflow_id, &run_input) {
            Ok(run) => run,
            Err(e) => return (name, Err(worker_stop(&e))),
        };
        let delivery = NewDelivery {
            id: uuid::Uuid::new_v4().to_string(),
            slug: d.slug.to_string(),
            source: d.hook.source().to_string(),
            event: name.clone(),
            workflow_id: d.workflow_id.to_string(),
            run_id: run.id.clone(),
            dedupe_key: dedupe_key.as_deref().map(|k| dedupe::stored_key(k).to_string()),
            dedupe_since: self.log_window(d.hook),
            replay_of: d.replay_of.clone(),
            payload: (!self.config.retention.is_zero()).then(|| String::from_utf8_lossy(d.raw).into_owned()),
            created_at: unix_ms(),
        };
        let delivery_id = delivery.id.clone();
        let commit =
            self.starter.start(run, delivery).instrument(compozy_telemetry::child_span!("webhook.store_commit"));
        match commit.await {
            Ok(run_id) => (name.clone(), Ok(Accepted { run_id, delivery_id, event: name })),
            Err(WorkerError::Duplicate { stored_at }) => {
                if let Some(key) = dedupe_key.as_deref() {
                    self.remember_duplicate(d.hook, key, stored_at).await;
                }
                (NO_EVENT.into(), Err(Stop::Duplicate))
            }
            Err(e) => (name, Err(worker_stop(&e))),
        }
    }

    /// The delivery log had the ID (accepted within the TTL by a process that has since
    /// restarted, or evicted from a full in-process cache): the cache learns it for the rest of
    /// the TTL.
    async fn remember_duplicate(&self, hook: &WebhookTrigger, cache_key: &str, stored_at: i64) {
        let left = u64::try_from(stored_at.saturating_add(self.dedupe_ttl_ms(hook)).saturating_sub(unix_ms()));
        let left = left.unwrap_or(0);
        if let Err(e) = dedupe::succeeded(&self.cache, cache_key, Duration::from_millis(left.max(1))).await {
            tracing::warn!(source = hook.source(), error = %e, "webhook dedupe mark not updated");
        }
    }

    /// Since when the delivery log is asked for the delivery's ID, if it is: only behind the
    /// in-process cache, which a restart empties and a full map evicts from. Redis is shared and
    /// outlives the engine's processes, so it remains the record there (the read per batch cost
    /// a fifth of the accepted deliveries on PostgreSQL).
    fn log_window(&self, hook: &WebhookTrigger) -> Option<i64> {
        matches!(self.cache, Cache::Memory(_)).then(|| unix_ms().saturating_sub(self.dedupe_ttl_ms(hook)))
    }

    fn dedupe_ttl_ms(&self, hook: &WebhookTrigger) -> i64 {
        i64::try_from(self.dedupe_ttl(hook).as_millis()).unwrap_or(i64::MAX)
    }

    fn dedupe_ttl(&self, hook: &WebhookTrigger) -> Duration {
        dedupe::ttl(hook.dedupe.as_ref(), self.config.dedupe_ttl)
    }

    /// Filter and render: the event the delivery matches and its run's input (checked against
    /// the event's schema), or why it stops, with the event type label.
    fn filter_render(
        &self,
        d: &DeliveryCtx<'_>,
        body: &Value,
        headers: &HeaderMap,
    ) -> Result<(String, Value), (String, Stop)> {
        let ctx = input::context(body, headers);
        let event = match input::select(d.hook, &self.cel, &ctx) {
            Ok(Some(e)) => Some(e),
            // A webhook without events starts its workflow with the body for every delivery.
            Ok(None) if d.hook.events.is_empty() => None,
            Ok(None) => return Err((NO_EVENT.into(), Stop::NoMatch)),
            Err(_) => return Err((NO_EVENT.into(), Stop::BadRequest("an event filter could not be evaluated"))),
        };
        let name = event.map_or(DEFAULT_EVENT, |e| e.name.as_str()).to_string();
        let run_input = match event.and_then(|e| e.input.as_ref()) {
            Some(t) => input::render(t, &ctx),
            None => body.clone(),
        };
        if let Some(schema) = event.and_then(|e| e.compiled.schema.as_ref())
            && !schema.is_valid(&run_input)
        {
            let detail = format!("the input of event `{name}` does not match its schema");
            return Err((name, Stop::SchemaError(detail)));
        }
        Ok((name, run_input))
    }

    /// Success (2xx) marks the key succeeded; any failure releases it for the sender's retry.
    async fn finish_claim(&self, hook: &WebhookTrigger, key: Option<&str>, result: &Result<Accepted, Stop>) {
        let Some(key) = key else { return };
        let done = match result {
            // Found in the delivery log, and marked with the TTL's remainder then.
            Err(Stop::Duplicate) => return,
            Ok(_) | Err(Stop::NoMatch) => dedupe::succeeded(&self.cache, key, self.dedupe_ttl(hook)).await,
            Err(_) => dedupe::release(&self.cache, key).await,
        };
        if let Err(e) = done {
            // The in-progress mark expires on its own after `in_progress_ttl`.
            tracing::warn!(source = hook.source(), error = %e, "webhook dedupe mark not updated");
        }
    }
}

struct DeliveryCtx<'a> {
    slug: &'a str,
    workflow_id: &'a str,
    hook: &'a WebhookTrigger,
    raw: &'a [u8],
    replay_of: Option<String>,
}

async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<bytes::Bytes, Stop> {
    let declared = headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Stop::PayloadTooLarge(limit));
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        // Ours, or the server's own limit layer's (`server.body_limit`) wrapped in the body's error.
        Err(e) if over_limit(e.as_ref()) => Err(Stop::PayloadTooLarge(limit)),
        Err(_) => Err(Stop::BadRequest("the body could not be read")),
    }
}

fn over_limit(mut e: &(dyn std::error::Error + 'static)) -> bool {
    loop {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        match e.source() {
            Some(next) => e = next,
            None => return false,
        }
    }
}

fn cache_stop(e: &CacheError) -> Stop {
    tracing::warn!(error = %e, "webhook dedupe unavailable");
    Stop::Unavailable
}

fn worker_stop(e: &WorkerError) -> Stop {
    if let WorkerError::InvalidInput { .. } = e {
        Stop::SchemaError(e.to_string())
    } else if matches!(e, WorkerError::Stopped) {
        tracing::warn!("webhook run not stored: the engine is shutting down");
        Stop::Unavailable
    } else if e.retry_after().is_some() {
        tracing::warn!(error = %e, "webhook run not stored: store unavailable");
        Stop::Unavailable
    } else {
        tracing::error!(error = %e, "webhook run not stored");
        Stop::Internal
    }
}

/// How long a client should wait after a 503 for an unavailable dependency.
pub const UNAVAILABLE_RETRY: Duration = RETRY_AFTER;

fn unix_now() -> i64 {
    unix_ms() / 1000
}

/// Now, in Unix milliseconds.
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
