//! The shipped Grafana dashboards (`deploy/grafana/dashboards/*.json`): valid JSON, a
//! `${datasource}` variable used by every panel, a unit on every panel, and queries that only
//! select catalog metrics or series recorded by `deploy/prometheus/recording-rules.yml` or the
//! SLO files `deploy/prometheus/slo/*.yml`; latency panels of the histograms that carry exemplars
//! show them, linked to a traces data source by the provisioning.

#[path = "support/promql.rs"]
mod promql;

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

/// The shortest allowed rate window: 4 x the 15s scrape interval.
const MIN_RANGE_SECS: u64 = 60;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn dashboards() -> Vec<(String, Value)> {
    let dir = repo_root().join("deploy/grafana/dashboards");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read dashboard");
            let value: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", p.display()));
            (p.file_name().expect("file name").to_string_lossy().into_owned(), value)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Record names defined in recording-rules.yml and the SLO files slo/*.yml (read line by line:
/// `- record: NAME`).
fn recorded_names() -> BTreeSet<String> {
    let dir = repo_root().join("deploy/prometheus");
    let slos = std::fs::read_dir(dir.join("slo")).expect("deploy/prometheus/slo").map(|e| e.expect("entry").path());
    std::iter::once(dir.join("recording-rules.yml"))
        .chain(slos)
        .flat_map(|path| {
            std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
                .lines()
                .filter_map(|l| l.trim().strip_prefix("- record:").map(|n| n.trim().to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// All panels, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().expect("panels array") {
        out.push(p);
        if let Some(nested) = p["panels"].as_array() {
            out.extend(nested.iter());
        }
    }
    out
}

#[test]
fn the_expected_dashboards_are_shipped_with_unique_uids() {
    let all = dashboards();
    let titles: BTreeSet<&str> = all.iter().map(|(_, d)| d["title"].as_str().expect("title")).collect();
    for expected in ["HTTP Performance", "Database Health", "Auth", "Webhooks", "Workers", "Autoload", "Overview"] {
        assert!(
            titles.contains(format!("Compozy / {expected}").as_str()),
            "missing dashboard {expected}; have {titles:?}"
        );
    }
    let uids: BTreeSet<&str> = all.iter().map(|(_, d)| d["uid"].as_str().expect("uid")).collect();
    assert_eq!(uids.len(), all.len(), "dashboard uids must be unique");
}

#[test]
fn every_panel_uses_the_datasource_variable_and_has_a_unit() {
    for (file, d) in dashboards() {
        let vars = d["templating"]["list"].as_array().expect("templating.list");
        let ds =
            vars.iter().find(|v| v["name"] == "datasource").unwrap_or_else(|| panic!("{file}: no datasource variable"));
        assert_eq!(ds["type"], "datasource", "{file}: datasource variable type");
        assert_eq!(ds["query"], "prometheus", "{file}: datasource variable must list Prometheus sources");
        let mut ids = BTreeSet::new();
        for p in panels(&d) {
            let title = p["title"].as_str().unwrap_or("?");
            assert!(ids.insert(p["id"].as_u64().expect("panel id")), "{file}: duplicate panel id at {title}");
            if p["type"] == "row" {
                continue;
            }
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{file}/{title}: panel datasource");
            let unit = p["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or("");
            assert!(!unit.is_empty(), "{file}/{title}: panel has no unit");
            let targets = p["targets"].as_array().unwrap_or_else(|| panic!("{file}/{title}: no targets"));
            assert!(!targets.is_empty(), "{file}/{title}: no targets");
            for t in targets {
                if let Some(tds) = t.get("datasource") {
                    assert_eq!(tds["uid"], "${datasource}", "{file}/{title}: target datasource");
                }
            }
        }
    }
}

#[test]
fn every_query_selects_catalog_or_recorded_names_only() {
    let catalog = promql::catalog_series_names();
    let recorded = recorded_names();
    assert!(!recorded.is_empty(), "no recording rules found");
    let mut problems = Vec::new();
    let mut queries = 0;
    for (file, d) in dashboards() {
        for p in panels(&d) {
            let title = p["title"].as_str().unwrap_or("?");
            let unit = p["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or("");
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"].as_str().unwrap_or_else(|| panic!("{file}/{title}: target without expr"));
                queries += 1;
                let names = promql::metric_names(expr);
                if names.is_empty() {
                    problems.push(format!("{file}/{title}: selects no metric: {expr}"));
                }
                for name in names {
                    let known = if name.contains(':') {
                        recorded.contains(&name)
                    } else {
                        name == "up" || catalog.contains(&name)
                    };
                    if !known {
                        problems.push(format!("{file}/{title}: unknown name {name}"));
                    }
                }
                for (text, secs) in promql::range_windows(expr) {
                    match secs {
                        Some(s) if s >= MIN_RANGE_SECS => {}
                        _ => problems
                            .push(format!("{file}/{title}: window [{text}] below {MIN_RANGE_SECS}s or unparsable")),
                    }
                }
                if unit == "percentunit" && expr.contains("100") {
                    problems
                        .push(format!("{file}/{title}: percentunit panels show 0-1 ratios, not percentages: {expr}"));
                }
                if expr.contains("histogram_quantile") && !expr.contains("by (le") {
                    problems.push(format!(
                        "{file}/{title}: aggregate with sum by (le, ...) before histogram_quantile: {expr}"
                    ));
                }
            }
        }
    }
    assert!(queries > 50, "only {queries} queries found");
    assert!(problems.is_empty(), "dashboard query problems:\n{}", problems.join("\n"));
}

/// The exposed name of each histogram with exemplars (`compozy_..._seconds`).
fn exemplar_families() -> Vec<String> {
    compozy_telemetry::catalog::WITH_EXEMPLARS.iter().map(|d| d.family_name("compozy")).collect()
}

/// Every seconds panel that reads one of those histograms (raw or through a recording rule)
/// has a target with exemplars on, and that target selects the raw `_bucket` series: exemplars
/// are stored on scraped series only, so a query of a recorded series would show none.
#[test]
fn latency_panels_show_trace_exemplars() {
    let families = exemplar_families();
    let mut covered = BTreeSet::new();
    let mut problems = Vec::new();
    for (file, d) in dashboards() {
        for p in panels(&d) {
            let title = p["title"].as_str().unwrap_or("?");
            let targets: Vec<&Value> = p["targets"].as_array().into_iter().flatten().collect();
            let expr = |t: &Value| t["expr"].as_str().unwrap_or("").to_string();
            for t in targets.iter().filter(|t| t["exemplar"] == true) {
                let names = promql::metric_names(&expr(t));
                if !families.iter().any(|f| names.contains(&format!("{f}_bucket"))) {
                    problems.push(format!("{file}/{title}: exemplars on a query of no exemplar histogram's buckets"));
                }
            }
            if p["fieldConfig"]["defaults"]["unit"] != "s" {
                continue;
            }
            for f in &families {
                let bare = f.trim_start_matches("compozy_");
                if !targets.iter().any(|t| expr(t).contains(bare)) {
                    continue;
                }
                let shown = targets
                    .iter()
                    .any(|t| t["exemplar"] == true && promql::metric_names(&expr(t)).contains(&format!("{f}_bucket")));
                if shown {
                    covered.insert(f.clone());
                } else {
                    problems.push(format!("{file}/{title}: reads {f} without a target showing its exemplars"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "exemplar problems:\n{}", problems.join("\n"));
    assert_eq!(covered, families.into_iter().collect(), "every exemplar histogram has a latency panel");
}

#[test]
fn provisioning_links_exemplar_trace_ids_to_a_traces_data_source() {
    let path = repo_root().join("deploy/grafana/provisioning/datasources.yml");
    let text = std::fs::read_to_string(&path).expect("datasources.yml");
    let v: Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
    let sources = v["datasources"].as_array().expect("datasources list");
    let prometheus = sources.iter().find(|s| s["type"] == "prometheus").expect("a Prometheus data source");
    let links = prometheus["jsonData"]["exemplarTraceIdDestinations"].as_array().expect("exemplarTraceIdDestinations");
    let link = links.iter().find(|l| l["name"] == "trace_id").expect("a destination for the trace_id label");
    let target =
        sources.iter().find(|s| s["uid"] == link["datasourceUid"]).expect("the linked data source is provisioned");
    assert!(["tempo", "jaeger", "zipkin"].iter().any(|t| target["type"] == *t), "a traces data source: {target}");
}

#[test]
fn provisioning_files_point_at_the_dashboards() {
    let dir = repo_root().join("deploy/grafana/provisioning");
    let dashboards = std::fs::read_to_string(dir.join("dashboards.yml")).expect("dashboards.yml");
    assert!(dashboards.contains("type: file") && dashboards.contains("path:"), "dashboards.yml: file provider");
    let datasources = std::fs::read_to_string(dir.join("datasources.yml")).expect("datasources.yml");
    assert!(datasources.contains("type: prometheus"), "datasources.yml: a Prometheus data source");
}
