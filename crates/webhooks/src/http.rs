//! HTTP glue: the public receiver, the admin delivery log and replay, and the answers.

use std::time::Instant;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use compozy_core::envelope::ok_with as success;
use compozy_core::problem::{Problem, ProblemType};
use compozy_core::{cursor, timestamp};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;
use tracing::Instrument;

use crate::Webhooks;
use crate::deliveries::{self, Filter};
use crate::metrics::Ended;
use crate::pipeline::{Accepted, Outcome, Request, Stop, UNAVAILABLE_RETRY};

/// `POST /api/v0/hooks/{slug}`: public (senders authenticate by signature).
pub fn routes(webhooks: &Webhooks) -> Vec<(&'static str, MethodRouter)> {
    vec![("/api/v0/hooks/{slug}", post(receive).with_state(webhooks.clone()))]
}

/// The delivery log and replay: mount behind the admin guard.
pub fn admin_routes(webhooks: &Webhooks) -> Vec<(&'static str, MethodRouter)> {
    vec![
        ("/api/v0/hooks/deliveries", get(list).with_state(webhooks.clone())),
        ("/api/v0/hooks/deliveries/{id}/replay", post(replay).with_state(webhooks.clone())),
    ]
}

async fn receive(State(w): State<Webhooks>, Path(slug): Path<String>, headers: HeaderMap, body: Body) -> Response {
    w.handle(Request { slug: &slug, headers: &headers, body, replay_of: None }).await
}

impl Webhooks {
    /// Runs one delivery through the pipeline and records its metrics (exactly one
    /// `deliveries_total` increment, whatever the ending).
    ///
    /// With tracing on, the delivery is one span (its steps are children) and its metrics are
    /// recorded inside it, so the processing duration's exemplar names its trace.
    pub(crate) async fn handle(&self, req: Request<'_>) -> Response {
        let span = compozy_telemetry::child_span!(
            "webhook.delivery",
            webhook.source = tracing::field::Empty,
            webhook.event = tracing::field::Empty,
            webhook.result = tracing::field::Empty,
            run.id = tracing::field::Empty,
        );
        let delivery = async {
            let started = Instant::now();
            let outcome = self.inner.process(req).await;
            let result = match &outcome.result {
                Ok(_) => crate::metrics::DeliveryResult::Accepted,
                Err(stop) => stop.result(),
            };
            self.inner.metrics.ended(&Ended {
                source: &outcome.source,
                event_type: &outcome.event_type,
                result,
                payload_size: outcome.payload_size,
                seconds: started.elapsed().as_secs_f64(),
            });
            outcome_fields(&tracing::Span::current(), &outcome, result.label());
            respond(outcome)
        };
        delivery.instrument(span).await
    }
}

/// The delivery span's attributes: bounded values only (the source and event are the project's
/// own names, as in the metrics' labels).
fn outcome_fields(span: &tracing::Span, outcome: &Outcome, result: &str) {
    if span.is_none() {
        return;
    }
    span.record("webhook.source", outcome.source.as_str());
    span.record("webhook.event", outcome.event_type.as_str());
    span.record("webhook.result", result);
    if let Ok(accepted) = &outcome.result {
        span.record("run.id", accepted.run_id.as_str());
    }
}

fn respond(outcome: Outcome) -> Response {
    match outcome.result {
        Ok(Accepted { run_id, delivery_id, event }) => success(
            StatusCode::ACCEPTED,
            json!({"status": "accepted", "event": event, "run_id": run_id, "delivery_id": delivery_id}),
            "Accepted",
        ),
        Err(stop) => stop_response(stop),
    }
}

fn stop_response(stop: Stop) -> Response {
    let problem: Problem = match stop {
        Stop::NoMatch => return success(StatusCode::OK, json!({"status": "no_matching_event"}), "No event matched"),
        Stop::Duplicate => return success(StatusCode::OK, json!({"status": "duplicate"}), "Already processed"),
        Stop::NotFound => ProblemType::NotFound.with("webhook not found"),
        Stop::Overloaded => ProblemType::Overloaded.with("too many deliveries in process").with_retry_after(1),
        Stop::BodyTimeout => ProblemType::BodyTimeout.with("the body did not arrive in time"),
        Stop::PayloadTooLarge(limit) => ProblemType::PayloadTooLarge.with(format!("the body exceeds {limit} bytes")),
        Stop::VerificationFailed => ProblemType::VerificationFailed.with("signature verification failed"),
        Stop::BadRequest(why) => ProblemType::InvalidRequest.with(why),
        Stop::InProgress => ProblemType::DeliveryInProgress
            .with("a delivery with this ID is in process; retry later")
            .with_retry_after(5),
        Stop::SchemaError(detail) => ProblemType::InvalidInput.with(detail),
        Stop::Unavailable => ProblemType::Unavailable
            .with("temporarily unavailable; retry later")
            .with_retry_after(UNAVAILABLE_RETRY.as_secs()),
        Stop::Internal => ProblemType::Internal.with("internal error"),
    };
    problem.into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    slug: Option<String>,
    result: Option<String>,
    /// RFC 3339: deliveries at or after.
    since: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    limit: Option<u32>,
}

async fn list(State(w): State<Webhooks>, query: Result<Query<ListQuery>, QueryRejection>) -> Response {
    let Ok(Query(q)) = query else {
        return ProblemType::InvalidRequest.with("unknown or malformed query parameter").into_response();
    };
    let before = match q.cursor.as_deref().map(cursor::decode) {
        Some(None) => return ProblemType::InvalidRequest.with("invalid cursor").into_response(),
        Some(c) => c,
        None => None,
    };
    let since = match q.since.as_deref().map(timestamp::parse) {
        Some(None) => return ProblemType::InvalidRequest.with("since must be an RFC 3339 timestamp").into_response(),
        Some(t) => t,
        None => None,
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let filter = Filter { slug: q.slug, result: q.result, since, before, limit };
    match deliveries::list(w.inner.worker.queue().store(), &filter).await {
        Ok(items) => {
            let next = (items.len() == limit as usize)
                .then(|| items.last().map(|d| cursor::encode(d.created_at, &d.id)))
                .flatten();
            success(StatusCode::OK, json!({"deliveries": items, "next_cursor": next}), "Success")
        }
        Err(e) => {
            tracing::warn!(error = %e, "webhook delivery listing failed");
            stop_response(Stop::Unavailable)
        }
    }
}

async fn replay(State(w): State<Webhooks>, Path(id): Path<String>) -> Response {
    w.replay(&id).await
}

impl Webhooks {
    /// Re-runs stored delivery `id` through filter, render, schema and enqueue with the current
    /// configuration (no verification: it was verified when received, and its timestamp is old
    /// by now; no dedupe: replaying is asking for a new run). Answers as
    /// `POST /api/v0/hooks/deliveries/{id}/replay` does: 202 with the new run, or a problem.
    pub async fn replay(&self, id: &str) -> Response {
        let stored = match deliveries::get_with_payload(self.inner.worker.queue().store(), id).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "webhook delivery lookup failed");
                return stop_response(Stop::Unavailable);
            }
        };
        let Some((delivery, payload)) = stored else {
            return ProblemType::NotFound.with("no such delivery").into_response();
        };
        let Some(payload) = payload else {
            let detail = "the payload of this delivery was not kept (webhooks.retention)";
            return ProblemType::PayloadNotKept.with(detail).into_response();
        };
        let headers = HeaderMap::new();
        let req = Request {
            slug: &delivery.slug,
            headers: &headers,
            body: Body::from(payload),
            replay_of: Some(delivery.id),
        };
        self.handle(req).await
    }

    /// The delivery log, newest first (what `GET /api/v0/hooks/deliveries` lists).
    pub async fn deliveries(&self, filter: &Filter) -> Result<Vec<deliveries::Delivery>, compozy_store::StoreError> {
        deliveries::list(self.inner.worker.queue().store(), filter).await
    }
}
