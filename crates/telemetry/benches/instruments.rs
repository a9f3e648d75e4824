//! Instrument costs: a bound histogram record (1 thread, and 2 threads on one hot series),
//! a counter increment, a label lookup, and encoding 10,000 series in both formats.
//! Allocations per record are counted by a counting allocator and printed after the run.
//!
//! Exemplars: `record/histogram_traced_no_source` is the latency histograms' record before any
//! trace id source is set (as with tracing off); the `exemplars` group then sets a source and
//! records through it with a sampled trace (an exemplar kept) and an unsampled one, and
//! encodes 1,000 histogram series with and without exemplars. The source is process-wide and
//! set once, so `record` runs before `exemplars`.

use std::cell::Cell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use compozy_telemetry::{Format, Registry, RegistryOptions, catalog, exemplar, render};
use criterion::{Criterion, criterion_group, criterion_main};

#[global_allocator]
static GLOBAL: compozy_testkit::CountingAllocator = compozy_testkit::CountingAllocator;

fn values() -> Vec<f64> {
    // Log-uniform-ish latencies from 1 ms to 4 s.
    (0..1024).map(|i| 0.001 * (4000f64).powf((i * 389 % 1024) as f64 / 1024.0)).collect()
}

fn record(c: &mut Criterion) {
    let registry = Registry::new(RegistryOptions::default());
    let h = registry.histogram(&catalog::HTTP_REQUEST_DURATION).get(&["GET", "/api/v0/executions/{id}", "200"]);
    let counter = registry.counter(&catalog::HTTP_REQUESTS).get(&["GET", "/api/v0/executions/{id}", "200"]);
    let vals = values();
    let mut g = c.benchmark_group("record");
    g.bench_function("histogram_bound_1_thread", |b| {
        let mut i = 0;
        b.iter(|| {
            h.observe(black_box(vals[i & 1023]));
            i += 1;
        })
    });
    g.bench_function("histogram_hot_series_2_threads", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for t in 0..2 {
                    let (h, vals) = (&h, &vals);
                    s.spawn(move || {
                        for i in 0..iters as usize {
                            h.observe(black_box(vals[(i + t) & 1023]));
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
    g.bench_function("histogram_traced_no_source", |b| {
        assert!(exemplar::current_trace_id().is_none(), "the source must not be set yet");
        let mut i = 0;
        b.iter(|| {
            h.observe_traced(black_box(vals[i & 1023]));
            i += 1;
        })
    });
    g.bench_function("counter_bound", |b| b.iter(|| counter.inc()));
    let family = registry.histogram(&catalog::HTTP_REQUEST_DURATION);
    g.bench_function("histogram_label_lookup", |b| {
        b.iter(|| family.get(black_box(&["GET", "/api/v0/executions/{id}", "200"])).observe(0.01))
    });
    g.finish();

    let before = compozy_testkit::allocations();
    for i in 0..1_000_000 {
        h.observe(vals[i & 1023]);
        counter.inc();
    }
    let per = (compozy_testkit::allocations() - before) as f64 / 1e6;
    eprintln!("allocations per bound histogram record + counter increment: {per}");
}

thread_local! {
    static SAMPLED: Cell<Option<[u8; 16]>> = const { Cell::new(None) };
}

/// A stand-in for the tracing setup's source: the current "span" is a thread-local.
fn source() -> Option<[u8; 16]> {
    SAMPLED.with(Cell::get)
}

fn exemplars(c: &mut Criterion) {
    exemplar::set_trace_id_source(source);
    let registry = Registry::new(RegistryOptions::default());
    let h = registry.histogram(&catalog::HTTP_REQUEST_DURATION).get(&["GET", "/api/v0/executions/{id}", "200"]);
    let vals = values();
    let mut g = c.benchmark_group("exemplars");
    g.bench_function("histogram_traced_unsampled", |b| {
        SAMPLED.with(|s| s.set(None));
        let mut i = 0;
        b.iter(|| {
            h.observe_traced(black_box(vals[i & 1023]));
            i += 1;
        })
    });
    g.bench_function("histogram_traced_sampled", |b| {
        SAMPLED.with(|s| s.set(Some([0x5a; 16])));
        let mut i = 0;
        b.iter(|| {
            h.observe_traced(black_box(vals[i & 1023]));
            i += 1;
        })
    });
    SAMPLED.with(|s| s.set(None));

    let plain = Registry::new(RegistryOptions::default());
    let traced = Registry::new(RegistryOptions::default());
    let (pf, tf) =
        (plain.histogram(&catalog::HTTP_REQUEST_DURATION), traced.histogram(&catalog::HTTP_REQUEST_DURATION));
    for i in 0..1_000 {
        let labels = ["GET", &format!("/api/v0/route{}/{{id}}", i / 10), &format!("{}", 200 + i % 10)];
        for v in &vals[..16] {
            pf.get(&labels).observe(*v);
            tf.get(&labels).observe_with_exemplar(*v, [0x5a; 16]);
        }
    }
    g.bench_function("openmetrics_1k_histogram_series_plain", |b| b.iter(|| render(&plain, Format::OpenMetrics).len()));
    g.bench_function("openmetrics_1k_histogram_series_with_exemplars", |b| {
        b.iter(|| render(&traced, Format::OpenMetrics).len())
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let registry = Registry::new(RegistryOptions { series_limit: 20_000, ..Default::default() });
    let family = registry.counter(&catalog::HTTP_REQUESTS);
    for i in 0..10_000 {
        family.get(&["GET", &format!("/api/v0/route{}/{{id}}", i / 50), &format!("{}", 200 + i % 50)]).add(i);
    }
    let mut g = c.benchmark_group("encode_10k_counter_series");
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("prometheus_0.0.4", |b| b.iter(|| render(&registry, Format::Prometheus).len()));
    g.bench_function("openmetrics", |b| b.iter(|| render(&registry, Format::OpenMetrics).len()));
    g.finish();
}

criterion_group!(benches, record, exemplars, encode);
criterion_main!(benches);
