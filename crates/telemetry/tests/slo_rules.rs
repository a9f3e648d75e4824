//! The SLO rule files (`deploy/prometheus/slo/<name>.yml`) are rendered from the one spec,
//! `deploy/prometheus/slos.yml`: this test fails when a file differs from what the spec renders
//! (or an enabled SLO has no file, or a disabled one still has one). Render them with
//! `COMPOZY_UPDATE_SLO=1 cargo test -p compozy-telemetry --test slo_rules`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Deserialize;

/// Every `runbook_url` is built from the external label operators set (docs/operations.md).
const RUNBOOK_URL: &str = "{{ with $externalLabels.runbook_base_url }}{{ . }}{{ else }}docs/runbooks/{{ end }}";

#[derive(Debug, Deserialize)]
struct Spec {
    period: String,
    alerts: Vec<AlertSpec>,
    slos: Vec<Slo>,
}

#[derive(Debug, Deserialize)]
struct AlertSpec {
    suffix: String,
    pace: String,
    severity: String,
    #[serde(rename = "for")]
    pending: String,
    windows: Vec<Window>,
}

#[derive(Debug, Deserialize)]
struct Window {
    long: String,
    short: String,
    factor: f64,
}

#[derive(Debug, Deserialize)]
struct Slo {
    name: String,
    enabled: bool,
    alert_prefix: String,
    objective: f64,
    title: String,
    sli: String,
    events: String,
    failed: String,
    errors: String,
    total: String,
}

fn prometheus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus")
}

fn spec() -> Spec {
    let path = prometheus_dir().join("slos.yml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// A decimal without float noise: 1 - 0.999 prints as 0.001.
fn decimal(v: f64) -> String {
    let s = format!("{v:.10}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Windows in ascending length (5m < 30m < 1h < ...), the period last.
fn windows(spec: &Spec) -> Vec<String> {
    let mut all: BTreeSet<(u64, String)> = BTreeSet::new();
    for w in spec.alerts.iter().flat_map(|a| &a.windows) {
        for d in [&w.long, &w.short] {
            all.insert((seconds(d), d.clone()));
        }
    }
    all.insert((seconds(&spec.period), spec.period.clone()));
    all.into_iter().map(|(_, d)| d).collect()
}

fn seconds(d: &str) -> u64 {
    let (n, unit) = d.split_at(d.len() - 1);
    let n: u64 = n.parse().unwrap_or_else(|_| panic!("window {d}: a number and one of m h d"));
    n * match unit {
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => panic!("window {d}: unit must be m, h or d"),
    }
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

/// errors / total over `window`, 0 (not empty) when traffic had no error, no sample without traffic.
fn ratio_expr(slo: &Slo, window: &str) -> String {
    let errors = slo.errors.replace("$window", window);
    let total = slo.total.replace("$window", window);
    format!("(\n{}  or\n{}  * 0\n)\n/\n(\n{}  > 0\n)\n", indent(&errors, 4), indent(&total, 4), indent(&total, 2))
}

fn alert_expr(slo: &Slo, alert: &AlertSpec, budget: &str) -> String {
    let sel = |w: &str| format!("compozy:slo_errors:ratio_rate{w}{{slo=\"{}\"}}", slo.name);
    let pairs: Vec<String> = alert
        .windows
        .iter()
        .map(|w| {
            let limit = format!("({} * {budget})", decimal(w.factor));
            format!("(\n    {} > {limit}\n  and\n    {} > {limit}\n)\n", sel(&w.long), sel(&w.short))
        })
        .collect();
    pairs.join("or\n")
}

fn render(spec: &Spec, slo: &Slo) -> String {
    let budget = decimal(1.0 - slo.objective);
    let percent = format!("{}%", decimal(slo.objective * 100.0));
    let mut out = String::new();
    let _ = writeln!(out, "# Rendered from deploy/prometheus/slos.yml: do not edit; change the spec and run");
    let _ = writeln!(out, "#   COMPOZY_UPDATE_SLO=1 cargo test -p compozy-telemetry --test slo_rules");
    let _ = writeln!(out, "# SLO {}: {percent} of {} over {}.", slo.name, slo.sli, spec.period);
    let _ = writeln!(out, "# Leave this file out of rule_files to turn the SLO off.");
    let _ = writeln!(out, "groups:\n  - name: compozy-slo-{}.rules\n    rules:", slo.name);
    for w in windows(spec) {
        let _ = writeln!(out, "      - record: compozy:slo_errors:ratio_rate{w}");
        let _ = writeln!(out, "        labels:\n          slo: {}", slo.name);
        let _ = write!(out, "        expr: |\n{}", indent(&ratio_expr(slo, &w), 10));
    }
    let _ = writeln!(out, "      # 1 = the whole budget of the period left, 0 = spent, below 0 = overspent.");
    let _ = writeln!(out, "      - record: compozy:slo_error_budget:remaining_ratio");
    let _ = writeln!(out, "        labels:\n          slo: {}", slo.name);
    let _ = writeln!(
        out,
        "        expr: 1 - compozy:slo_errors:ratio_rate{}{{slo=\"{}\"}} / {budget}",
        spec.period, slo.name
    );
    let _ = writeln!(out, "\n  - name: compozy-slo-{}\n    rules:", slo.name);
    for alert in &spec.alerts {
        let name = format!("{}{}", slo.alert_prefix, alert.suffix);
        let longs: Vec<&str> = alert.windows.iter().map(|w| w.long.as_str()).collect();
        let least = alert.windows.iter().map(|w| w.factor).fold(f64::INFINITY, f64::min);
        let _ = writeln!(out, "      - alert: {name}");
        let _ = write!(out, "        expr: |\n{}", indent(&alert_expr(slo, alert, &budget), 10));
        let _ = writeln!(out, "        for: {}", alert.pending);
        let _ = writeln!(out, "        labels:\n          severity: {}\n          slo: {}", alert.severity, slo.name);
        let _ = writeln!(out, "        annotations:");
        let _ = writeln!(out, "          summary: The {percent} {} error budget is {}.", slo.title, alert.pace);
        let _ = writeln!(
            out,
            "          description: '{{{{ $value | humanizePercentage }}}} of the {} of job {{{{ $labels.job }}}} {} over \
             the long window ({}): at least {}x the rate the {} error budget allows.'",
            slo.events.replace('\'', "''"),
            slo.failed.replace('\'', "''"),
            longs.join(" or "),
            decimal(least),
            spec.period
        );
        let _ = writeln!(out, "          runbook_url: '{RUNBOOK_URL}{name}.md'");
    }
    out
}

#[test]
fn slo_rule_files_are_rendered_from_the_spec() {
    let spec = spec();
    let dir = prometheus_dir().join("slo");
    let update = std::env::var_os("COMPOZY_UPDATE_SLO").is_some();
    let mut expected = BTreeSet::new();
    let mut stale = Vec::new();
    for slo in &spec.slos {
        assert!(slo.objective > 0.0 && slo.objective < 1.0, "{}: objective must be in (0, 1)", slo.name);
        assert!(slo.errors.contains("$window") && slo.total.contains("$window"), "{}: use $window", slo.name);
        let path = dir.join(format!("{}.yml", slo.name));
        if !slo.enabled {
            if update {
                let _ = std::fs::remove_file(&path);
            }
            continue;
        }
        expected.insert(format!("{}.yml", slo.name));
        let text = render(&spec, slo);
        if update {
            std::fs::create_dir_all(&dir).expect("mkdir slo");
            std::fs::write(&path, &text).expect("write");
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    let unknown: Vec<_> = present.difference(&expected).collect();
    assert!(unknown.is_empty(), "files in deploy/prometheus/slo/ of no enabled SLO: {unknown:?}");
    assert!(
        stale.is_empty(),
        "out of date with deploy/prometheus/slos.yml (run COMPOZY_UPDATE_SLO=1 cargo test -p compozy-telemetry \
         --test slo_rules): {stale:?}"
    );
}

#[test]
fn every_slo_window_is_at_least_four_scrape_intervals_and_pairs_are_ordered() {
    let spec = spec();
    for alert in &spec.alerts {
        for w in &alert.windows {
            assert!(seconds(&w.short) >= 60, "{}: short window {} below 4 scrape intervals", alert.suffix, w.short);
            assert!(seconds(&w.short) < seconds(&w.long), "{}: short {} >= long {}", alert.suffix, w.short, w.long);
            assert!(seconds(&w.long) <= seconds(&spec.period), "{}: long {} beyond the period", alert.suffix, w.long);
            assert!(w.factor >= 1.0, "{}: a factor below 1 never spends the budget", alert.suffix);
        }
    }
    let names: BTreeSet<&str> = spec.slos.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names.len(), spec.slos.len(), "SLO names must be unique");
    for expected in ["http-availability", "webhook-acceptance", "schedule-to-start"] {
        assert!(names.contains(expected), "the issue's SLO {expected} is missing");
    }
}
