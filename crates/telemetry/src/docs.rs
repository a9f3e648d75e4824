//! `docs/metrics.md`, generated from the catalog table.

use std::fmt::Write;

use crate::catalog::{CATALOG, Kind, MetricDef, WITH_EXEMPLARS};

fn kind(def: &MetricDef) -> &'static str {
    match def.kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Histogram if WITH_EXEMPLARS.iter().any(|d| std::ptr::eq(*d, def)) => "histogram, exemplars",
        Kind::Histogram => "histogram",
    }
}

fn fmt_bound(b: f64) -> String {
    if b >= 1000.0 && b.fract() == 0.0 {
        let exp = b.log10();
        if exp.fract() == 0.0 {
            return format!("1e{}", exp as i32);
        }
    }
    format!("{b}")
}

/// The catalog as Markdown, one table per section, under the default namespace.
pub fn markdown() -> String {
    let mut out = String::new();
    out.push_str("# Metrics\n\n");
    out.push_str(
        "Generated from `crates/telemetry/src/catalog.rs` by `COMPOZY_UPDATE_DOCS=1 cargo test -p compozy-telemetry --test docs`; \
do not edit by hand. Names use the default namespace `compozy` (`monitoring.namespace`). Counters are queried \
with their `_total` suffix. Every family caps its series (`monitoring.series_limit`, default 2000); label sets \
beyond the cap are folded into one series whose labels read `__overflow__`, counted by \
`compozy_metrics_overflow_total{metric}`. Histograms marked *exemplars* carry the `trace_id` of sampled requests as \
OpenMetrics exemplars (see `docs/operations.md`, *Exemplars*).\n",
    );
    let mut section = "";
    for def in CATALOG {
        if def.section != section {
            section = def.section;
            let _ =
                write!(out, "\n## {section}\n\n| name | type | labels | buckets | meaning |\n|---|---|---|---|---|\n");
        }
        let labels = if def.labels.is_empty() { "–".to_string() } else { def.labels.join(", ") };
        let buckets = if def.buckets.is_empty() {
            "–".to_string()
        } else {
            def.buckets.iter().map(|b| fmt_bound(*b)).collect::<Vec<_>>().join(", ")
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            def.sample_name("compozy"),
            kind(def),
            labels,
            buckets,
            def.help
        );
    }
    out
}
