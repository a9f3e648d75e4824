//! OTLP push: the same families as `/metrics`, exported as http/protobuf with cumulative
//! temporality every `interval` when `monitoring.otlp.endpoint` is set.
//!
//! The request is built straight from our families (see `docs/telemetry.md` for why we do not
//! run the OpenTelemetry SDK beside them: it would record every sample twice). Names are sent
//! without unit and `_total` suffixes, with UCUM units, so a Prometheus OTLP receiver using the
//! default `UnderscoreEscapingWithSuffixes` translation stores the same names as a scrape.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use crate::catalog::{Kind, Unit};
use crate::family::Sample;
use crate::registry::Registry;

/// Where and how often to push.
#[derive(Clone, Debug)]
pub struct OtlpOptions {
    /// Collector base URL (`http://host:4318`); `/v1/metrics` is appended unless present.
    pub endpoint: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Extra request headers (for example an authorization header).
    pub headers: Vec<(String, String)>,
    /// `service.name` and `service.version` of the resource.
    pub service_name: String,
    pub service_version: String,
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        key_strindex: 0,
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_string())) }),
    }
}

fn ucum(unit: Unit) -> &'static str {
    match unit {
        Unit::None => "",
        Unit::Seconds => "s",
        Unit::Bytes => "By",
        Unit::Ratio => "1",
    }
}

/// Builds one export request holding every family's current values.
pub fn build_request(registry: &Registry, options: &OtlpOptions, start: SystemTime) -> ExportMetricsServiceRequest {
    let (start_ns, now_ns) = (unix_nanos(start), unix_nanos(SystemTime::now()));
    let ns = registry.namespace();
    let cumulative = AggregationTemporality::Cumulative as i32;
    let mut metrics = Vec::new();
    for family in registry.collectors() {
        let def = family.def();
        let mut numbers = Vec::new();
        let mut histograms = Vec::new();
        family.collect(&mut |values, sample| {
            let attributes = def.labels.iter().zip(values).map(|(k, v)| kv(k, v)).collect();
            match sample {
                Sample::Counter(v) => {
                    let v = i64::try_from(v).unwrap_or(i64::MAX);
                    numbers.push(number(attributes, start_ns, now_ns, number_data_point::Value::AsInt(v)));
                }
                Sample::CounterF64(v) => {
                    numbers.push(number(attributes, start_ns, now_ns, number_data_point::Value::AsDouble(v)));
                }
                // Gauges are instantaneous: no start time.
                Sample::Gauge(v) => numbers.push(number(attributes, 0, now_ns, number_data_point::Value::AsDouble(v))),
                Sample::Histogram { sum, count, buckets, .. } => histograms.push(HistogramDataPoint {
                    attributes,
                    start_time_unix_nano: start_ns,
                    time_unix_nano: now_ns,
                    count,
                    sum: Some(sum),
                    bucket_counts: buckets.to_vec(),
                    explicit_bounds: def.buckets.to_vec(),
                    ..Default::default()
                }),
            }
        });
        if numbers.is_empty() && histograms.is_empty() {
            continue;
        }
        let data = match def.kind {
            Kind::Counter => {
                metric::Data::Sum(Sum { data_points: numbers, aggregation_temporality: cumulative, is_monotonic: true })
            }
            Kind::Gauge => metric::Data::Gauge(Gauge { data_points: numbers }),
            Kind::Histogram => {
                metric::Data::Histogram(Histogram { data_points: histograms, aggregation_temporality: cumulative })
            }
        };
        let name = if def.namespaced { format!("{ns}_{}", def.name) } else { def.name.to_string() };
        metrics.push(Metric {
            name,
            description: def.help.to_string(),
            unit: ucum(def.unit).to_string(),
            metadata: Vec::new(),
            data: Some(data),
        });
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", &options.service_name),
                    kv("service.version", &options.service_version),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope { name: "compozy".into(), ..Default::default() }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn number(attributes: Vec<KeyValue>, start: u64, now: u64, value: number_data_point::Value) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        start_time_unix_nano: start,
        time_unix_nano: now,
        value: Some(value),
        ..Default::default()
    }
}

fn metrics_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/metrics") { base.to_string() } else { format!("{base}/v1/metrics") }
}

/// An error from one export attempt.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("OTLP request failed: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("OTLP collector answered {0}")]
    Status(reqwest::StatusCode),
}

/// Pushes the registry's values periodically until `shutdown` resolves, then pushes once more.
pub struct Exporter {
    registry: Arc<Registry>,
    options: OtlpOptions,
    client: reqwest::Client,
    url: String,
    start: SystemTime,
}

impl Exporter {
    pub fn new(registry: Arc<Registry>, options: OtlpOptions) -> Result<Self, reqwest::Error> {
        // reqwest is built without a default TLS provider; install ring's once per process
        // (a second install fails harmlessly when another component already did it).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder().timeout(options.timeout).build()?;
        let url = metrics_url(&options.endpoint);
        Ok(Self { registry, options, client, url, start: SystemTime::now() })
    }

    /// Sends one export now.
    pub async fn export(&self) -> Result<(), ExportError> {
        let body = build_request(&self.registry, &self.options, self.start).encode_to_vec();
        let mut request = self.client.post(&self.url).header("content-type", "application/x-protobuf").body(body);
        for (k, v) in &self.options.headers {
            request = request.header(k, v);
        }
        let response = request.send().await?;
        if response.status().is_success() { Ok(()) } else { Err(ExportError::Status(response.status())) }
    }

    /// Runs the export loop; failures are logged and retried at the next tick.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut tick = tokio::time::interval(self.options.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = tick.tick() => self.export_logged().await,
                () = &mut shutdown => break,
            }
        }
        self.export_logged().await;
    }

    async fn export_logged(&self) {
        if let Err(e) = self.export().await {
            tracing::warn!(error = %e, "OTLP metrics export failed; retrying at the next interval");
        }
    }
}
