//! schemathesis (PyPI, installed by `.ci/install` into `.venv/`) against a running engine with
//! an admin key, embedded and on PostgreSQL + Redis: every operation of the served OpenAPI
//! document, with positive and negative data, must pass the conformance checks below.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Engine;
use common::services::{TestDb, redis_up};
use compozy_testkit::service_missing;

const QUICKSTART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/quickstart/compozy.yaml");
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance,response_headers_conformance";
/// Cases per operation and phase: bounds the run to about a minute per engine on CI.
const MAX_EXAMPLES: &str = "15";

fn schemathesis() -> Option<PathBuf> {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/schemathesis");
    if bin.exists() {
        Some(bin)
    } else {
        service_missing("schemathesis", ".venv/bin/schemathesis is missing; run .ci/install");
        None
    }
}

/// Rate limits off: the run would otherwise spend itself on 429s (which the document lists).
fn env(extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut env = vec![("COMPOZY_AUTH_RATE_LIMIT_ENABLED", "false".to_string())];
    env.extend_from_slice(extra);
    env
}

fn run(bin: &Path, engine: &Engine, report: &Path) {
    let base = format!("http://{}", engine.addr);
    let out = Command::new(bin)
        .args(["run", &format!("{base}/api/v0/openapi.json"), "--url", &base, "--checks", CHECKS])
        // One worker: hypothesis parses lambda sources with `ast`, which is not thread-safe on
        // Python 3.11 (runs with two workers died of "AST constructor recursion depth mismatch").
        .args(["--max-examples", MAX_EXAMPLES, "--seed", "17", "--workers", "1", "--no-color"])
        .args(["--phases", "examples,coverage,fuzzing", "--request-timeout", "20"])
        .args(["--header", &format!("Authorization: Bearer {}", engine.key)])
        .args(["--generation-database", "none", "--report-dir"])
        .arg(report)
        .output()
        .expect("run schemathesis");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    assert!(out.status.success(), "schemathesis found failures:\n{text}");
}

#[test]
fn embedded_engine_conforms_to_its_openapi_document() {
    let Some(bin) = schemathesis() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::start(dir.path(), &["--config", QUICKSTART], &env(&[]));
    run(&bin, &engine, &dir.path().join("report"));
}

#[test]
fn server_mode_engine_conforms_to_its_openapi_document() {
    let Some(bin) = schemathesis() else { return };
    let Some(db) = TestDb::create("schemathesis") else {
        return service_missing("PostgreSQL", "cannot create a database with psql");
    };
    if !redis_up() {
        return service_missing("Redis", "127.0.0.1:6379 refused");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let env = env(&[("COMPOZY_DATABASE_URL", db.url()), ("COMPOZY_REDIS_URL", "redis://127.0.0.1:6379".into())]);
    let engine = Engine::start(dir.path(), &["--config", QUICKSTART], &env);
    run(&bin, &engine, &dir.path().join("report"));
}
