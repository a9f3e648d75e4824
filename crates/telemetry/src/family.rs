//! Metric families with a cardinality guard.
//!
//! A family maps label values to one instrument each. Resolving a label set is the slow path
//! (a hash lookup under a read lock; an allocation the first time a set is seen): callers on
//! hot paths resolve once and keep the returned handle. Each family admits at most `cap`
//! series; a new label set beyond that is folded into the family's single `__overflow__`
//! series and counted in `compozy_metrics_overflow_total{metric}`.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

use indexmap::{Equivalent, IndexMap};
use parking_lot::RwLock;

use crate::catalog::{Kind, MetricDef};
use crate::exemplar::Exemplar;
use crate::instruments::{Counter, Gauge, Histogram, UpDownGauge};

/// The label value every guarded label takes in the overflow series.
pub const OVERFLOW: &str = "__overflow__";

/// Most labels a catalog family has.
pub const MAX_LABELS: usize = 4;

/// One sample read at collection time.
#[derive(Debug)]
pub enum Sample<'a> {
    Counter(u64),
    /// A counter read from elsewhere at collection time (CPU seconds, pool totals).
    CounterF64(f64),
    Gauge(f64),
    /// Non-cumulative bucket counts (+Inf last) with their sum and total count, and each
    /// bucket's latest exemplar (an empty slice when the series has none).
    Histogram {
        sum: f64,
        count: u64,
        buckets: &'a [u64],
        exemplars: &'a [Option<Exemplar>],
    },
}

/// Buffers reused across the series of one collection.
#[derive(Default)]
pub struct Scratch {
    buckets: Vec<u64>,
    exemplars: Vec<Option<Exemplar>>,
}

/// An instrument that a family can hold.
pub trait Instrument: Send + Sync + 'static {
    fn new(def: &'static MetricDef) -> Self;
    /// Reads the instrument; `scratch` holds histogram buckets and exemplars.
    fn read<'a>(&self, scratch: &'a mut Scratch) -> Sample<'a>;
}

impl Instrument for Counter {
    fn new(_: &'static MetricDef) -> Self {
        Counter::default()
    }
    fn read<'a>(&self, _: &'a mut Scratch) -> Sample<'a> {
        Sample::Counter(self.get())
    }
}

impl Instrument for UpDownGauge {
    fn new(_: &'static MetricDef) -> Self {
        UpDownGauge::default()
    }
    fn read<'a>(&self, _: &'a mut Scratch) -> Sample<'a> {
        Sample::Gauge(self.get() as f64)
    }
}

impl Instrument for Gauge {
    fn new(_: &'static MetricDef) -> Self {
        Gauge::default()
    }
    fn read<'a>(&self, _: &'a mut Scratch) -> Sample<'a> {
        Sample::Gauge(self.get())
    }
}

impl Instrument for Histogram {
    fn new(def: &'static MetricDef) -> Self {
        Histogram::new(def.buckets)
    }
    fn read<'a>(&self, scratch: &'a mut Scratch) -> Sample<'a> {
        let s = self.snapshot();
        scratch.buckets.clear();
        scratch.buckets.extend_from_slice(&s.buckets);
        scratch.exemplars.clear();
        if let Some(ex) = self.exemplars() {
            scratch.exemplars.extend_from_slice(&ex[..s.buckets.len()]);
        }
        Sample::Histogram { sum: s.sum, count: s.count, buckets: &scratch.buckets, exemplars: &scratch.exemplars }
    }
}

/// Owned label values of one series.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SeriesKey(Box<[Box<str>]>);

impl Hash for SeriesKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for v in &*self.0 {
            v.hash(state);
        }
    }
}

/// Borrowed label values, usable to look up a [`SeriesKey`] without allocating.
struct KeyRef<'a>(&'a [&'a str]);

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for v in self.0 {
            v.hash(state);
        }
    }
}

impl Equivalent<SeriesKey> for KeyRef<'_> {
    fn equivalent(&self, key: &SeriesKey) -> bool {
        self.0.len() == key.0.len() && self.0.iter().zip(key.0.iter()).all(|(a, b)| *a == &**b)
    }
}

/// A family of series of one instrument type.
pub struct Family<M> {
    def: &'static MetricDef,
    cap: usize,
    series: RwLock<IndexMap<SeriesKey, Arc<M>>>,
    overflow: OnceLock<Arc<M>>,
    folds: Arc<Counter>,
}

impl<M: Instrument> Family<M> {
    pub(crate) fn new(def: &'static MetricDef, cap: usize, folds: Arc<Counter>) -> Self {
        let family = Self { def, cap, series: RwLock::new(IndexMap::new()), overflow: OnceLock::new(), folds };
        if def.labels.is_empty() {
            // Label-less families have exactly one series, present from start-up.
            family.get(&[]);
        }
        family
    }

    pub fn def(&self) -> &'static MetricDef {
        self.def
    }

    /// The series for `values` (one per catalog label, in catalog order), created on first use,
    /// or the overflow series when the family is full.
    ///
    /// # Panics
    /// When the number of values differs from the catalog's label count: a programming error.
    pub fn get(&self, values: &[&str]) -> Arc<M> {
        assert_eq!(values.len(), self.def.labels.len(), "label count for {}", self.def.name);
        if let Some(m) = self.series.read().get(&KeyRef(values)) {
            return m.clone();
        }
        let mut series = self.series.write();
        if let Some(m) = series.get(&KeyRef(values)) {
            return m.clone();
        }
        if series.len() >= self.cap {
            drop(series);
            self.folds.inc();
            return self.overflow.get_or_init(|| Arc::new(M::new(self.def))).clone();
        }
        let key = SeriesKey(values.iter().map(|v| Box::<str>::from(*v)).collect());
        series.entry(key).or_insert_with(|| Arc::new(M::new(self.def))).clone()
    }

    /// Number of admitted series (the overflow series not included).
    pub fn len(&self) -> usize {
        self.series.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A family as the exposition and OTLP export see it.
pub trait Collect: Send + Sync {
    fn def(&self) -> &'static MetricDef;
    /// Calls `f` with each series' label values and its current sample.
    fn collect(&self, f: &mut dyn FnMut(&[&str], Sample<'_>));
}

impl<M: Instrument> Collect for Family<M> {
    fn def(&self) -> &'static MetricDef {
        self.def
    }

    fn collect(&self, f: &mut dyn FnMut(&[&str], Sample<'_>)) {
        let mut scratch = Scratch::default();
        let mut labels: [&str; MAX_LABELS] = [""; MAX_LABELS];
        let n = self.def.labels.len();
        for (key, m) in self.series.read().iter() {
            for (slot, v) in labels.iter_mut().zip(key.0.iter()) {
                *slot = v;
            }
            f(&labels[..n], m.read(&mut scratch));
        }
        if let Some(m) = self.overflow.get() {
            let overflow = [OVERFLOW; MAX_LABELS];
            f(&overflow[..n], m.read(&mut scratch));
        }
    }
}

/// A collection-time callback: it calls its argument once per series with `(label values, value)`.
pub type ObserveFn = Box<dyn Fn(&mut dyn FnMut(&[&str], f64)) + Send + Sync>;

/// Values produced at collection time by a callback (pool sizes, queue depths, uptime).
pub struct Observed {
    def: &'static MetricDef,
    callback: ObserveFn,
}

impl Observed {
    pub(crate) fn new(def: &'static MetricDef, callback: ObserveFn) -> Self {
        Self { def, callback }
    }
}

impl Collect for Observed {
    fn def(&self) -> &'static MetricDef {
        self.def
    }

    fn collect(&self, f: &mut dyn FnMut(&[&str], Sample<'_>)) {
        let kind = self.def.kind;
        (self.callback)(&mut |labels, v| {
            let sample = match kind {
                Kind::Counter => Sample::CounterF64(v.max(0.0)),
                _ => Sample::Gauge(v),
            };
            f(labels, sample);
        });
    }
}
