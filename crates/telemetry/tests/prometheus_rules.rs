//! The shipped Prometheus rules (`deploy/prometheus/`: recording-rules.yml, alerts.yml and the
//! SLO files slo/*.yml): promtool accepts them, their unit tests pass, every alert follows the
//! house style and is tested firing and silent, and every metric they select exists in the code
//! catalog.
//!
//! Needs `promtool` (Prometheus >= 2.42) on PATH for the promtool parts; without it they are
//! skipped, unless `COMPOZY_REQUIRE_SERVICES=1` (as in CI), where they fail.

#[path = "support/promql.rs"]
mod promql;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

/// `runbook_url` = the `runbook_base_url` external label operators set, or the repository path.
const RUNBOOK_BASE: &str = "{{ with $externalLabels.runbook_base_url }}{{ . }}{{ else }}docs/runbooks/{{ end }}";
/// The shortest allowed rate window: 4 x the 15s scrape interval.
const MIN_RANGE_SECS: u64 = 60;

#[derive(Debug, Deserialize)]
struct RuleFile {
    groups: Vec<Group>,
}

#[derive(Debug, Deserialize)]
struct Group {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
struct Rule {
    alert: Option<String>,
    record: Option<String>,
    expr: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct TestFile {
    rule_files: Vec<String>,
    tests: Vec<TestCase>,
}

#[derive(Debug, Deserialize)]
struct TestCase {
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTest>,
}

#[derive(Debug, Deserialize)]
struct AlertTest {
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Debug, Deserialize)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct ExprTest {
    expr: String,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn prometheus_dir() -> PathBuf {
    repo_root().join("deploy/prometheus")
}

fn rule_paths() -> Vec<PathBuf> {
    let dir = prometheus_dir();
    let mut slos: Vec<PathBuf> = std::fs::read_dir(dir.join("slo"))
        .expect("deploy/prometheus/slo exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    slos.sort();
    assert!(!slos.is_empty(), "no SLO rule files in deploy/prometheus/slo");
    [dir.join("recording-rules.yml"), dir.join("alerts.yml")].into_iter().chain(slos).collect()
}

fn test_paths() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(prometheus_dir().join("tests"))
        .expect("deploy/prometheus/tests exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no promtool test files in deploy/prometheus/tests");
    paths
}

fn read_yaml<T: for<'de> Deserialize<'de>>(path: &Path) -> T {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn rules() -> Vec<(String, Rule)> {
    rule_paths()
        .iter()
        .flat_map(|p| read_yaml::<RuleFile>(p).groups)
        .flat_map(|g| {
            let name = g.name;
            g.rules.into_iter().map(move |r| (name.clone(), r))
        })
        .collect()
}

fn recorded_names() -> BTreeSet<String> {
    rules().into_iter().filter_map(|(_, r)| r.record).collect()
}

/// Returns `None` (after reporting) when promtool is not installed.
fn promtool(args: &[&str]) -> Option<(bool, String)> {
    let bin = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".to_string());
    match Command::new(&bin).args(args).output() {
        Ok(out) => {
            let text = format!(
                "$ {bin} {}\n{}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            Some((out.status.success(), text))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            compozy_testkit::service_missing("promtool", "not installed; run .ci/install");
            None
        }
        Err(e) => panic!("running {bin}: {e}"),
    }
}

#[test]
fn promtool_check_rules_accepts_every_rule_file() {
    for path in rule_paths() {
        let path = path.to_str().expect("utf-8 path").to_string();
        let Some((ok, output)) = promtool(&["check", "rules", &path]) else { return };
        println!("{output}");
        assert!(ok, "promtool check rules failed:\n{output}");
        assert!(output.contains("SUCCESS"), "unexpected promtool output:\n{output}");
    }
}

#[test]
fn promtool_rule_unit_tests_pass() {
    for path in test_paths() {
        let path = path.to_str().expect("utf-8 path").to_string();
        let Some((ok, output)) = promtool(&["test", "rules", &path]) else { return };
        println!("{output}");
        assert!(ok, "promtool test rules failed:\n{output}");
        assert!(output.contains("SUCCESS") && !output.contains("FAILED"), "unexpected promtool output:\n{output}");
    }
}

#[test]
fn every_selected_metric_is_in_the_catalog_or_recorded() {
    let catalog = promql::catalog_series_names();
    let recorded = recorded_names();
    let mut unknown = Vec::new();
    for (group, rule) in rules() {
        let id = rule.alert.clone().or(rule.record.clone()).unwrap_or_default();
        for name in promql::metric_names(&rule.expr) {
            let known =
                if name.contains(':') { recorded.contains(&name) } else { name == "up" || catalog.contains(&name) };
            if !known {
                unknown.push(format!("{group}/{id}: {name}"));
            }
        }
    }
    assert!(unknown.is_empty(), "names not in the catalog nor recorded:\n{}", unknown.join("\n"));
}

#[test]
fn rate_windows_are_at_least_four_scrape_intervals() {
    for (group, rule) in rules() {
        for (text, secs) in promql::range_windows(&rule.expr) {
            let secs = secs.unwrap_or_else(|| panic!("{group}: unparsable window [{text}]"));
            assert!(secs >= MIN_RANGE_SECS, "{group}: window [{text}] shorter than {MIN_RANGE_SECS}s in {}", rule.expr);
        }
    }
}

#[test]
fn recording_rules_follow_the_naming_convention() {
    let mut seen = BTreeSet::new();
    for (group, rule) in rules() {
        let Some(record) = rule.record else { continue };
        // The SLO files record the same names, told apart by their `slo` label.
        let slo = rule.labels.get("slo").cloned().unwrap_or_default();
        assert!(seen.insert((record.clone(), slo)), "{group}: {record} recorded twice");
        let parts: Vec<&str> = record.split(':').collect();
        assert_eq!(parts.len(), 3, "{group}: {record} is not level:metric:operations");
        assert!(parts.iter().all(|p| !p.is_empty()), "{group}: {record} has an empty part");
        assert_eq!(parts[0], "compozy", "{group}: {record}: level must be `compozy`");
        assert!(rule.alert.is_none(), "{group}: {record} is both record and alert");
    }
}

#[test]
fn alerts_follow_the_house_style() {
    let mut names = BTreeSet::new();
    for (group, rule) in rules() {
        let Some(alert) = rule.alert else { continue };
        assert!(names.insert(alert.clone()), "alert {alert} defined twice");
        assert!(alert.chars().next().is_some_and(|c| c.is_ascii_uppercase()), "{alert}: CamelCase");
        let severity = rule.labels.get("severity").map(String::as_str);
        assert!(
            matches!(severity, Some("critical" | "warning" | "info")),
            "{group}/{alert}: severity must be critical|warning|info, got {severity:?}"
        );
        let summary = rule.annotations.get("summary").unwrap_or_else(|| panic!("{alert}: no summary"));
        assert!(!summary.contains("{{"), "{alert}: summary must be static");
        let description = rule.annotations.get("description").unwrap_or_else(|| panic!("{alert}: no description"));
        assert!(description.contains("$value"), "{alert}: description must show the current value");
        assert_eq!(
            rule.annotations.get("runbook_url").map(String::as_str),
            Some(format!("{RUNBOOK_BASE}{alert}.md").as_str()),
            "{alert}: runbook_url"
        );
        let runbook = repo_root().join(format!("docs/runbooks/{alert}.md"));
        assert!(runbook.is_file(), "{alert}: missing runbook {}", runbook.display());
    }
    for spec_alert in ["HighRequestLatency", "LargeResponsePayloads", "HighAuthFailureRate", "SuspiciousAuthActivity"] {
        assert!(names.contains(spec_alert), "the spec's alert {spec_alert} is missing");
    }
}

#[test]
fn every_alert_is_tested_firing_and_silent_and_every_record_is_tested() {
    let alerts: BTreeMap<String, Rule> =
        rules().into_iter().filter_map(|(_, r)| r.alert.clone().map(|a| (a, r))).collect();
    let recorded = recorded_names();
    let mut fired = BTreeSet::new();
    let mut silent = BTreeSet::new();
    let mut exprs = BTreeSet::new();
    for path in test_paths() {
        let file: TestFile = read_yaml(&path);
        assert!(
            file.rule_files.iter().any(|f| f.ends_with("alerts.yml"))
                && file.rule_files.iter().any(|f| f.ends_with("recording-rules.yml")),
            "{}: must load both rule files",
            path.display()
        );
        for case in file.tests {
            for t in case.alert_rule_test {
                let rule = alerts
                    .get(&t.alertname)
                    .unwrap_or_else(|| panic!("{}: unknown alert {}", path.display(), t.alertname));
                if t.exp_alerts.is_empty() {
                    silent.insert(t.alertname.clone());
                }
                for exp in &t.exp_alerts {
                    fired.insert(t.alertname.clone());
                    for (k, v) in &rule.labels {
                        assert_eq!(
                            exp.exp_labels.get(k),
                            Some(v),
                            "{}: {} expects label {k}",
                            path.display(),
                            t.alertname
                        );
                    }
                    for k in ["summary", "description", "runbook_url"] {
                        assert!(
                            exp.exp_annotations.contains_key(k),
                            "{}: {} expects no {k}",
                            path.display(),
                            t.alertname
                        );
                    }
                }
            }
            exprs.extend(case.promql_expr_test.into_iter().flat_map(|t| promql::metric_names(&t.expr)));
        }
    }
    let names: BTreeSet<String> = alerts.keys().cloned().collect();
    let never_fired: Vec<_> = names.difference(&fired).collect();
    let never_silent: Vec<_> = names.difference(&silent).collect();
    let untested: Vec<_> = recorded.difference(&exprs).collect();
    assert!(never_fired.is_empty(), "alerts never tested firing: {never_fired:?}");
    assert!(never_silent.is_empty(), "alerts never tested silent: {never_silent:?}");
    assert!(untested.is_empty(), "recording rules without a promql_expr_test: {untested:?}");
}
