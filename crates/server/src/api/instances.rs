//! `GET /api/v0/instances`: the engine processes sharing this store, with their heartbeat age.
//! It reads the store, so it answers 503 with `Retry-After` while the store is unreachable.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::Response;
use axum::routing::{MethodRouter, get};
use compozy_store::Store;

use super::{dependency_error, ok};

/// Instances whose heartbeat is older than this are reported as stale.
pub const STALE_AFTER: Duration = Duration::from_secs(60);

pub fn routes(store: Store) -> Vec<(&'static str, MethodRouter)> {
    vec![("/api/v0/instances", get(list).with_state(store))]
}

fn rfc3339(t: SystemTime) -> String {
    let millis = t.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    compozy_core::timestamp::format(i64::try_from(millis).unwrap_or(i64::MAX))
}

async fn list(State(store): State<Store>) -> Response {
    match store.list_instances(STALE_AFTER).await {
        Ok(instances) => {
            let now = SystemTime::now();
            let items: Vec<_> = instances
                .iter()
                .map(|i| {
                    let age = now.duration_since(i.heartbeat_at).unwrap_or_default();
                    serde_json::json!({
                        "id": i.id,
                        "role": i.role,
                        "started_at": rfc3339(i.started_at),
                        "heartbeat_age_ms": u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
                        "stale": age > STALE_AFTER,
                    })
                })
                .collect();
            ok(items, "instances listed")
        }
        Err(e) => dependency_error("store", e.retry_after(), &e),
    }
}
