//! The overview's charts: a ring of samples read from the metrics registry every
//! `console.sample_interval`, so the console draws the last 15 minutes without Prometheus.
//!
//! Nothing is recorded twice: each sample reads the same families `/metrics` renders (request
//! counter and latency histogram, webhook deliveries, queue gauges, worker utilization) and
//! keeps the differences between consecutive reads, as `rate()` and `histogram_quantile()`
//! would. Memory is bounded: at most [`crate::ConsoleConfig::points`] points, each a fixed set
//! of numbers plus one bucket vector per queue (queues are configured names).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use compozy_telemetry::Registry;
use compozy_telemetry::catalog::{self, MetricDef};
use compozy_telemetry::family::Sample;
use parking_lot::Mutex;
use serde::Serialize;

/// Webhook results that are not refusals: the delivery was taken, or had nothing to do.
const NOT_REFUSED: [&str; 3] = ["accepted", "no_match", "duplicate"];

/// One point of the charts. Rates are per second over the interval that ends at `t`; `None`
/// where the interval had no data to compute from (no request: no error ratio, no p95).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Point {
    /// Unix milliseconds.
    pub t: i64,
    pub requests_per_s: f64,
    pub error_ratio: Option<f64>,
    pub p95_ms: Option<f64>,
    pub hooks_accepted_per_s: f64,
    pub hooks_refused_per_s: f64,
    pub queue_depth: f64,
    pub oldest_age_s: f64,
    pub utilization: Option<f64>,
}

/// Cumulative values of one read.
#[derive(Clone, Debug, Default)]
struct Totals {
    requests: u64,
    errors: u64,
    /// Request latency buckets (non-cumulative, +Inf last), summed over every series.
    latency: Vec<u64>,
    hooks_accepted: u64,
    hooks_refused: u64,
    /// Schedule-to-start buckets per queue.
    schedule: BTreeMap<String, Vec<u64>>,
}

/// What the registry says now: cumulative totals and the gauges.
#[derive(Clone, Debug, Default)]
pub struct Reading {
    totals: Totals,
    /// `(depth, oldest ready age in seconds)` per queue.
    pub queues: BTreeMap<String, (f64, f64)>,
    /// Activity slots' utilization of this process (absent on an API node).
    pub utilization: Option<f64>,
    /// Deliveries by `(source, result)` since the process started.
    pub deliveries: BTreeMap<(String, String), u64>,
    pub uptime_s: f64,
    pub activities_executing: f64,
    pub activity_slots: f64,
}

impl Reading {
    /// Reads every family the console shows.
    pub fn take(registry: &Registry) -> Reading {
        let mut r = Reading::default();
        let is = |def: &MetricDef, of: &'static MetricDef| std::ptr::eq(def, of);
        for family in registry.collectors() {
            let def = family.def();
            if is(def, &catalog::HTTP_REQUESTS) {
                family.collect(&mut |labels, sample| {
                    let n = counter(&sample);
                    r.totals.requests += n;
                    if labels.get(2).is_some_and(|s| s.starts_with('5')) {
                        r.totals.errors += n;
                    }
                });
            } else if is(def, &catalog::HTTP_REQUEST_DURATION) {
                family.collect(&mut |_, sample| add_buckets(&mut r.totals.latency, &sample));
            } else if is(def, &catalog::WEBHOOK_DELIVERIES) {
                family.collect(&mut |labels, sample| {
                    let (source, result) =
                        (labels.first().copied().unwrap_or(""), labels.get(1).copied().unwrap_or(""));
                    let n = counter(&sample);
                    if result == "accepted" {
                        r.totals.hooks_accepted += n;
                    } else if !NOT_REFUSED.contains(&result) {
                        r.totals.hooks_refused += n;
                    }
                    *r.deliveries.entry((source.to_string(), result.to_string())).or_default() += n;
                });
            } else if is(def, &catalog::WORKER_TASK_QUEUE_DEPTH) {
                family.collect(&mut |labels, sample| {
                    r.queues.entry(label(labels)).or_default().0 = gauge(&sample);
                });
            } else if is(def, &catalog::WORKER_TASK_QUEUE_OLDEST_AGE) {
                family.collect(&mut |labels, sample| {
                    r.queues.entry(label(labels)).or_default().1 = gauge(&sample);
                });
            } else if is(def, &catalog::WORKER_SCHEDULE_TO_START) {
                family.collect(&mut |labels, sample| {
                    add_buckets(r.totals.schedule.entry(label(labels)).or_default(), &sample);
                });
            } else if is(def, &catalog::WORKER_UTILIZATION) {
                family.collect(&mut |labels, sample| {
                    if labels.first() == Some(&"activity") {
                        r.utilization = Some(gauge(&sample));
                    }
                });
            } else if is(def, &catalog::SYSTEM_UPTIME) {
                family.collect(&mut |_, sample| r.uptime_s = gauge(&sample));
            } else if is(def, &catalog::WORKER_ACTIVITIES_EXECUTING) {
                family.collect(&mut |_, sample| r.activities_executing = gauge(&sample));
            } else if is(def, &catalog::WORKER_MAX_CONCURRENT_ACTIVITIES) {
                family.collect(&mut |_, sample| r.activity_slots = gauge(&sample));
            }
        }
        r
    }
}

fn label(labels: &[&str]) -> String {
    labels.first().copied().unwrap_or("").to_string()
}

fn counter(sample: &Sample<'_>) -> u64 {
    match sample {
        Sample::Counter(n) => *n,
        Sample::CounterF64(v) => *v as u64,
        _ => 0,
    }
}

fn gauge(sample: &Sample<'_>) -> f64 {
    match sample {
        Sample::Gauge(v) | Sample::CounterF64(v) => *v,
        Sample::Counter(n) => *n as f64,
        Sample::Histogram { .. } => 0.0,
    }
}

fn add_buckets(into: &mut Vec<u64>, sample: &Sample<'_>) {
    if let Sample::Histogram { buckets, .. } = sample {
        if into.len() < buckets.len() {
            into.resize(buckets.len(), 0);
        }
        for (acc, b) in into.iter_mut().zip(buckets.iter()) {
            *acc += b;
        }
    }
}

/// Element-wise `now - before` (a series that appeared since counts from zero).
fn diff(now: &[u64], before: &[u64]) -> Vec<u64> {
    now.iter().enumerate().map(|(i, n)| n.saturating_sub(before.get(i).copied().unwrap_or(0))).collect()
}

/// The `q` quantile of non-cumulative `buckets` (+Inf last) with upper `bounds`, interpolated
/// linearly inside the bucket as Prometheus' `histogram_quantile` does; the highest finite
/// bound when it falls in +Inf; `None` without observations.
pub fn quantile(q: f64, bounds: &[f64], buckets: &[u64]) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut seen = 0u64;
    for (i, &n) in buckets.iter().enumerate() {
        if n > 0 && (seen + n) as f64 >= rank {
            let Some(&upper) = bounds.get(i) else { return bounds.last().copied() };
            let lower = if i == 0 { 0.0 } else { bounds[i - 1] };
            return Some(lower + (upper - lower) * ((rank - seen as f64) / n as f64).clamp(0.0, 1.0));
        }
        seen += n;
    }
    bounds.last().copied()
}

/// The chart ring and the latest reading.
pub struct Series {
    registry: Arc<Registry>,
    capacity: usize,
    inner: Mutex<Ring>,
}

#[derive(Default)]
struct Ring {
    points: VecDeque<Point>,
    /// Totals of each point, oldest first (the window's schedule-to-start comes from the first).
    totals: VecDeque<Totals>,
    last: Option<(Instant, Totals)>,
}

impl std::fmt::Debug for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Series").field("capacity", &self.capacity).finish_non_exhaustive()
    }
}

impl Series {
    pub fn new(registry: Arc<Registry>, capacity: usize) -> Self {
        Self { registry, capacity: capacity.max(2), inner: Mutex::new(Ring::default()) }
    }

    /// Reads the registry and appends a point (the first read only sets the baseline).
    pub fn sample(&self) {
        self.sample_at(Instant::now(), now_ms());
    }

    fn sample_at(&self, now: Instant, t: i64) {
        let reading = Reading::take(&self.registry);
        let mut ring = self.inner.lock();
        let totals = reading.totals.clone();
        if let Some((then, before)) = ring.last.take() {
            let secs = now.saturating_duration_since(then).as_secs_f64().max(1e-3);
            let requests = totals.requests.saturating_sub(before.requests);
            let errors = totals.errors.saturating_sub(before.errors);
            let latency = diff(&totals.latency, &before.latency);
            let point = Point {
                t,
                requests_per_s: requests as f64 / secs,
                error_ratio: (requests > 0).then(|| errors as f64 / requests as f64),
                p95_ms: quantile(0.95, catalog::HTTP_REQUEST_DURATION.buckets, &latency).map(|s| s * 1000.0),
                hooks_accepted_per_s: totals.hooks_accepted.saturating_sub(before.hooks_accepted) as f64 / secs,
                hooks_refused_per_s: totals.hooks_refused.saturating_sub(before.hooks_refused) as f64 / secs,
                queue_depth: reading.queues.values().map(|q| q.0).sum(),
                oldest_age_s: reading.queues.values().map(|q| q.1).fold(0.0, f64::max),
                utilization: reading.utilization,
            };
            ring.points.push_back(point);
            ring.totals.push_back(totals.clone());
            while ring.points.len() > self.capacity {
                ring.points.pop_front();
                ring.totals.pop_front();
            }
        }
        ring.last = Some((now, totals));
    }

    /// The points of the window, oldest first.
    pub fn points(&self) -> Vec<Point> {
        self.inner.lock().points.iter().cloned().collect()
    }

    /// Schedule-to-start `(p50, p95)` in seconds per queue over the window (since the oldest
    /// point; since start-up until the ring has two points).
    pub fn schedule_to_start(&self) -> BTreeMap<String, (Option<f64>, Option<f64>)> {
        let now = Reading::take(&self.registry).totals.schedule;
        let ring = self.inner.lock();
        let first = ring.totals.front().map(|t| &t.schedule);
        let bounds = catalog::WORKER_SCHEDULE_TO_START.buckets;
        now.into_iter()
            .map(|(queue, buckets)| {
                let window = match first.and_then(|f| f.get(&queue)) {
                    Some(before) => diff(&buckets, before),
                    None => buckets,
                };
                (queue, (quantile(0.5, bounds, &window), quantile(0.95, bounds, &window)))
            })
            .collect()
    }

    /// Samples every `every` until the task is aborted.
    pub fn spawn(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let series = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                series.sample();
            }
        })
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use compozy_telemetry::RegistryOptions;

    use super::*;

    #[test]
    fn quantiles_interpolate_like_prometheus() {
        let bounds = [0.1, 0.5, 1.0];
        assert_eq!(quantile(0.95, &bounds, &[0, 0, 0, 0]), None);
        // 10 observations in (0.1, 0.5]: the median is half-way through that bucket.
        let median = quantile(0.5, &bounds, &[0, 10, 0, 0]).expect("some");
        assert!((median - 0.3).abs() < 1e-9, "{median}");
        // 100 in the first bucket: p95 is at 95% of (0, 0.1].
        let p95 = quantile(0.95, &bounds, &[100, 0, 0, 0]).expect("some");
        assert!((p95 - 0.095).abs() < 1e-9, "{p95}");
        // Past the last finite bound: the bound itself.
        assert_eq!(quantile(0.99, &bounds, &[1, 0, 0, 99]), Some(1.0));
    }

    #[test]
    fn points_are_rates_of_the_same_instruments_as_metrics() {
        let registry = Registry::new(RegistryOptions::default());
        let ok = registry.counter(&catalog::HTTP_REQUESTS).get(&["GET", "/x", "200"]);
        let failed = registry.counter(&catalog::HTTP_REQUESTS).get(&["GET", "/x", "503"]);
        let latency = registry.histogram(&catalog::HTTP_REQUEST_DURATION).get(&["GET", "/x", "200"]);
        let accepted = registry.counter(&catalog::WEBHOOK_DELIVERIES).get(&["github", "accepted"]);
        let refused = registry.counter(&catalog::WEBHOOK_DELIVERIES).get(&["github", "verification_failed"]);
        let duplicate = registry.counter(&catalog::WEBHOOK_DELIVERIES).get(&["github", "duplicate"]);
        let series = Series::new(registry.clone(), 3);
        let t0 = Instant::now();
        series.sample_at(t0, 0);
        assert!(series.points().is_empty(), "the first read is the baseline");

        for _ in 0..18 {
            ok.inc();
            latency.observe(0.004);
        }
        failed.add(2);
        accepted.add(10);
        refused.add(4);
        duplicate.add(6);
        series.sample_at(t0 + Duration::from_secs(2), 2000);
        let p = &series.points()[0];
        assert_eq!(p.requests_per_s, 10.0);
        assert_eq!(p.error_ratio, Some(0.1));
        assert_eq!((p.hooks_accepted_per_s, p.hooks_refused_per_s), (5.0, 2.0), "duplicates are not refusals");
        let p95 = p.p95_ms.expect("p95");
        assert!(p95 > 1.0 && p95 <= 5.0, "{p95}");

        // An idle interval: zero rates, no ratio, no latency.
        series.sample_at(t0 + Duration::from_secs(4), 4000);
        let idle = &series.points()[1];
        assert_eq!((idle.requests_per_s, idle.error_ratio, idle.p95_ms), (0.0, None, None));

        // Bounded: the oldest points go.
        for i in 3..10 {
            series.sample_at(t0 + Duration::from_secs(2 * i), 2000 * i as i64);
        }
        let points = series.points();
        assert_eq!(points.len(), 3);
        assert_eq!(points[0].t, 14_000);
    }
}
