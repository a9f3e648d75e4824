//! `/metrics` rendering: OpenMetrics text when the scraper asks for it, Prometheus text 0.0.4
//! otherwise. prometheus-client's encoders write the text; our families feed them through its
//! `Collector` interface.
//!
//! Exemplars appear in OpenMetrics only. prometheus-client can write exemplars only from its own
//! exemplar metrics (its `Exemplar` has no public constructor), so the exemplars our histograms
//! keep are gathered while the families are encoded and appended to their bucket lines
//! afterwards. With no exemplar kept anywhere (no tracing) the text is the encoder's, untouched.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit as PcUnit;

use parking_lot::Mutex;

use crate::catalog::{Kind, MetricDef, Unit};
use crate::exemplar::Exemplar;
use crate::family::{Collect, Sample};
use crate::registry::Registry;

pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The two text formats served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Prometheus,
}

impl Format {
    /// OpenMetrics when `Accept` names `application/openmetrics-text` with a non-zero q;
    /// Prometheus 0.0.4 text for anything else, including no header and unknown types.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else { return Format::Prometheus };
        for part in accept.split(',') {
            let mut params = part.split(';').map(str::trim);
            if !params.next().is_some_and(|m| m.eq_ignore_ascii_case("application/openmetrics-text")) {
                continue;
            }
            let refused =
                params.any(|p| p.strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()).is_some_and(|q| q <= 0.0));
            if !refused {
                return Format::OpenMetrics;
            }
        }
        Format::Prometheus
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Prometheus => PROMETHEUS_CONTENT_TYPE,
        }
    }
}

/// Renders every family of `registry` in `format`.
pub fn render(registry: &Arc<Registry>, format: Format) -> String {
    let found = (format == Format::OpenMetrics).then(|| Arc::new(Mutex::new(Vec::new())));
    let mut pc = prometheus_client::registry::Registry::default();
    pc.register_collector(Box::new(Families { registry: registry.clone(), exemplars: found.clone() }));
    let mut out = String::with_capacity(64 * 1024);
    let result = match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &pc),
        Format::Prometheus => prometheus_client::encoding::prometheus_text::encode(&mut out, &pc),
    };
    // Writing into a String cannot fail; an error here would be an encoder bug.
    if let Err(e) = result {
        tracing::error!(error = %e, "metrics encoding failed");
    }
    match found {
        Some(found) if !found.lock().is_empty() => splice_exemplars(&out, &found.lock()),
        _ => out,
    }
}

/// The exemplars of one histogram family, each with the position of its bucket line among the
/// family's bucket lines (series in encoding order, then buckets, +Inf last), ascending.
#[derive(Debug)]
struct FamilyExemplars {
    /// The exposed family name, unit included, as its `# TYPE` line names it.
    name: String,
    by_line: Vec<(usize, Exemplar)>,
}

/// Appends each kept exemplar to its bucket line. OpenMetrics escapes newlines in label values
/// and help, so every line is a sample or a `# ` descriptor; a family's samples follow its
/// `# TYPE` (and `# UNIT`) line up to the next descriptor, its bucket lines starting with
/// `<name>_bucket{`. `found` is in encoding order, so one forward pass copies the text between
/// those families as it is.
fn splice_exemplars(text: &str, found: &[FamilyExemplars]) -> String {
    let kept: usize = found.iter().map(|f| f.by_line.len()).sum();
    let mut out = String::with_capacity(text.len() + kept * 80);
    let mut rest = text;
    for family in found {
        let header = format!("# TYPE {} histogram\n", family.name);
        let Some(at) = rest.find(&header) else { continue };
        let (head, body) = rest.split_at(at + header.len());
        out.push_str(head);
        rest = body;
        let prefix = format!("{}_bucket{{", family.name);
        let mut pending = family.by_line.iter().peekable();
        let mut bucket_line = 0;
        while let Some(&&(want, exemplar)) = pending.peek() {
            let Some(end) = rest.find('\n') else { break };
            let line = &rest[..end];
            if line.starts_with("# ") && !line.starts_with("# UNIT ") {
                break;
            }
            out.push_str(line);
            if line.starts_with(&prefix) {
                if bucket_line == want {
                    exemplar.write_openmetrics(&mut out);
                    pending.next();
                }
                bucket_line += 1;
            }
            out.push('\n');
            rest = &rest[end + 1..];
        }
    }
    out.push_str(rest);
    out
}

struct Families {
    registry: Arc<Registry>,
    /// Where histogram exemplars are gathered while encoding; `None` when the format has none.
    exemplars: Option<Arc<Mutex<Vec<FamilyExemplars>>>>,
}

impl std::fmt::Debug for Families {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Families")
    }
}

fn pc_unit(unit: Unit) -> Option<PcUnit> {
    match unit {
        Unit::None => None,
        Unit::Seconds => Some(PcUnit::Seconds),
        Unit::Bytes => Some(PcUnit::Bytes),
        Unit::Ratio => Some(PcUnit::Other("ratio".into())),
    }
}

fn metric_type(kind: Kind) -> MetricType {
    match kind {
        Kind::Counter => MetricType::Counter,
        Kind::Gauge => MetricType::Gauge,
        Kind::Histogram => MetricType::Histogram,
    }
}

/// The family name without its unit: the encoder appends the unit itself.
fn base_name(def: &MetricDef, namespace: &str) -> String {
    if def.namespaced { format!("{namespace}_{}", def.name) } else { def.name.to_string() }
}

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let ns = self.registry.namespace();
        for family in self.registry.collectors() {
            let mut by_line = Vec::new();
            encode_family(&mut encoder, family.as_ref(), ns, &mut by_line)?;
            if let Some(found) = &self.exemplars
                && !by_line.is_empty()
            {
                found.lock().push(FamilyExemplars { name: family.def().family_name(ns), by_line });
            }
        }
        Ok(())
    }
}

/// Encodes one family; histogram exemplars go to `exemplars`, keyed by bucket line.
fn encode_family(
    encoder: &mut DescriptorEncoder,
    family: &dyn Collect,
    ns: &str,
    exemplars: &mut Vec<(usize, Exemplar)>,
) -> Result<(), std::fmt::Error> {
    let def = family.def();
    let name = base_name(def, ns);
    let unit = pc_unit(def.unit);
    let mut metric = encoder.encode_descriptor(&name, def.help, unit.as_ref(), metric_type(def.kind))?;
    let mut bounds: Vec<(f64, u64)> = Vec::with_capacity(def.buckets.len() + 1);
    let mut result = Ok(());
    let mut bucket_lines = 0;
    family.collect(&mut |values, sample| {
        if result.is_err() {
            return;
        }
        let pairs: Vec<(&str, &str)> = def.labels.iter().copied().zip(values.iter().copied()).collect();
        result = (|| {
            let mut series = metric.encode_family(&pairs)?;
            match sample {
                Sample::Counter(v) => series.encode_counter::<NoLabelSet, _, f64>(&v, None),
                Sample::CounterF64(v) => series.encode_counter::<NoLabelSet, _, f64>(&v, None),
                Sample::Gauge(v) => series.encode_gauge(&v),
                Sample::Histogram { sum, count, buckets, exemplars: kept } => {
                    let kept = kept.iter().enumerate().filter_map(|(i, e)| e.map(|e| (bucket_lines + i, e)));
                    exemplars.extend(kept);
                    bucket_lines += buckets.len();
                    bounds.clear();
                    let uppers = def.buckets.iter().copied().chain(std::iter::once(f64::INFINITY));
                    bounds.extend(uppers.zip(buckets.iter().copied()));
                    series.encode_histogram::<NoLabelSet>(sum, count, &bounds, None)
                }
            }
        })();
    });
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_prefers_openmetrics_only_when_asked() {
        assert_eq!(Format::negotiate(None), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("application/json")), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Prometheus);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;version=1.0.0;q=0.5,text/plain;q=0.4")),
            Format::OpenMetrics
        );
        assert_eq!(Format::negotiate(Some("application/openmetrics-text; q=0")), Format::Prometheus);
    }
}
