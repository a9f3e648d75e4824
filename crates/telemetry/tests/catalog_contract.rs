//! The catalog in code against the authoritative catalog document
//! (`../shared/spec/metrics.md`, beside the repository): every documented metric exists with
//! the same type, labels (in order) and buckets, and every metric in code is documented
//! (the SQLite pool families are documented by one sentence: "the same families under
//! `compozy_sqlite_`").

use std::collections::HashMap;
use std::path::PathBuf;

use compozy_telemetry::catalog::{CATALOG, Kind};

#[derive(Debug, Clone, PartialEq)]
struct Documented {
    kind: &'static str,
    labels: Vec<String>,
    buckets: Vec<f64>,
}

fn cells(line: &str) -> Vec<String> {
    line.trim().trim_matches('|').split('|').map(|c| c.trim().to_string()).collect()
}

fn strip_parens(s: &str) -> String {
    let mut depth = 0;
    s.chars()
        .filter(|c| {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    return false;
                }
                _ => {}
            }
            depth == 0
        })
        .collect()
}

/// `"event_type, outcome ∈ success, error"` → `[event_type, outcome]`.
fn label_names(cell: &str) -> Vec<String> {
    if cell == "–" || cell == "-" {
        return Vec::new();
    }
    strip_parens(cell)
        .split(';')
        .flat_map(|part| {
            let names = part.split('∈').next().unwrap_or("");
            names
                .split(',')
                .map(|n| n.trim().trim_matches('`').to_string())
                .filter(|n| !n.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Leading bucket list of a histogram's description cell: `"0.001, 0.005, …, 10; from …"`.
fn bucket_list(cell: &str) -> Option<Vec<f64>> {
    let head = cell.split(';').next().unwrap_or("");
    let nums: Option<Vec<f64>> = head.split(',').map(|n| n.trim().parse::<f64>().ok()).collect();
    nums.filter(|v| !v.is_empty())
}

fn parse(doc: &str) -> HashMap<String, Documented> {
    let mut out = HashMap::new();
    let mut last_buckets = Vec::new();
    for line in doc.lines().filter(|l| l.starts_with("| compozy_") || l.starts_with("| process_")) {
        let c = cells(line);
        let kind = match c[1].split_whitespace().next().unwrap_or("") {
            "counter" => "counter",
            "histogram" => "histogram",
            "gauge" => "gauge",
            "standard" => "standard",
            other => panic!("unknown type {other} in: {line}"),
        };
        let mut buckets = Vec::new();
        if kind == "histogram" {
            buckets = bucket_list(&c[3]).unwrap_or_else(|| {
                assert!(c[3].starts_with("same buckets"), "no buckets in: {line}");
                last_buckets.clone()
            });
            last_buckets = buckets.clone();
        }
        for name in c[0].split(',').map(|n| n.trim().trim_matches('`')) {
            out.insert(name.to_string(), Documented { kind, labels: label_names(&c[2]), buckets: buckets.clone() });
        }
    }
    out
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Histogram => "histogram",
    }
}

#[test]
fn code_catalog_matches_the_catalog_document() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/spec/metrics.md");
    let Ok(doc) = std::fs::read_to_string(&path) else {
        eprintln!("SKIPPED: {} not found (the shared catalog lives beside the repository)", path.display());
        return;
    };
    let documented = parse(&doc);
    assert!(documented.len() >= 55, "parsed only {} documented metrics", documented.len());

    for (name, want) in &documented {
        let def = CATALOG.iter().find(|d| d.sample_name("compozy") == *name);
        let def = def.unwrap_or_else(|| panic!("{name} is documented but not in the code catalog"));
        if want.kind != "standard" {
            assert_eq!(kind_name(def.kind), want.kind, "{name}: type");
        }
        let labels: Vec<String> = def.labels.iter().map(|l| l.to_string()).collect();
        assert_eq!(labels, want.labels, "{name}: labels");
        assert_eq!(def.buckets, want.buckets.as_slice(), "{name}: buckets");
    }
    for def in CATALOG {
        let name = def.sample_name("compozy");
        if let Some(pg) = name.strip_prefix("compozy_sqlite_") {
            let twin = documented.get(&format!("compozy_postgres_{pg}"));
            let twin = twin.unwrap_or_else(|| panic!("{name} has no documented Postgres twin"));
            assert_eq!(kind_name(def.kind), twin.kind, "{name}: type of its Postgres twin");
            assert_eq!(def.buckets, twin.buckets.as_slice(), "{name}: buckets of its Postgres twin");
            continue;
        }
        assert!(documented.contains_key(&name), "{name} is in the code catalog but not documented");
    }
}
