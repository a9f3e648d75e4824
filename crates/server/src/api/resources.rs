//! `GET /api/v0/resources/{type}` and `GET /api/v0/resources/{type}/{id}`: the project's
//! loaded resources, secrets redacted by their types' serialisation.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use compozy_autoload::{Autoloader, ResourceKind};

use super::ok;
use compozy_core::problem::ProblemType;

pub fn routes(autoloader: Autoloader) -> Vec<(&'static str, MethodRouter)> {
    vec![
        ("/api/v0/resources/{type}", get(list).with_state(autoloader.clone())),
        ("/api/v0/resources/{type}/{id}", get(one).with_state(autoloader)),
    ]
}

fn unknown_type() -> Response {
    ProblemType::NotFound.with("no such resource type").into_response()
}

async fn list(State(autoloader): State<Autoloader>, Path(kind_name): Path<String>) -> Response {
    let Some(kind) = ResourceKind::parse(&kind_name) else { return unknown_type() };
    let registry = autoloader.current();
    let items: Vec<_> = registry.list(kind).collect();
    ok(items, "resources listed")
}

async fn one(State(autoloader): State<Autoloader>, Path((kind_name, id)): Path<(String, String)>) -> Response {
    let Some(kind) = ResourceKind::parse(&kind_name) else { return unknown_type() };
    let registry = autoloader.current();
    match registry.get(kind, &id) {
        Some(item) => ok(item, "resource found"),
        None => ProblemType::NotFound.with("no resource with this id").into_response(),
    }
}
