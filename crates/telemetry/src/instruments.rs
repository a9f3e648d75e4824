//! Lock-free instruments.
//!
//! Counters, up-down gauges and histograms are striped: each thread writes to one of
//! [`SHARDS`] cache-line-aligned cells, and a read sums the cells. Two cores recording on the
//! same hot series therefore do not fight over one cache line, and recording is a couple of
//! relaxed atomic adds with no lock and no allocation. Keeping an exemplar (only for a sampled
//! trace, see [`Histogram::observe_traced`]) adds a try-lock on the stripe's exemplar slots.

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::exemplar::{self, Exemplar};

/// Number of stripes per instrument.
pub const SHARDS: usize = 4;

#[repr(align(64))]
#[derive(Default)]
struct Padded<T>(T);

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The stripe of the calling thread: assigned round-robin on first use.
#[inline]
fn shard() -> usize {
    SHARD.with(|s| {
        let v = s.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
        s.set(v);
        v
    })
}

/// A monotonic counter.
#[derive(Default)]
pub struct Counter {
    cells: [Padded<AtomicU64>; SHARDS],
}

impl Counter {
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    #[inline]
    pub fn add(&self, v: u64) {
        self.cells[shard()].0.fetch_add(v, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.cells.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }
}

/// A gauge moved up and down by events (for example requests in flight).
#[derive(Default)]
pub struct UpDownGauge {
    cells: [Padded<AtomicI64>; SHARDS],
}

impl UpDownGauge {
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    #[inline]
    pub fn dec(&self) {
        self.add(-1);
    }

    #[inline]
    pub fn add(&self, v: i64) {
        self.cells[shard()].0.fetch_add(v, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.cells.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }
}

/// A gauge that is set to a value.
#[derive(Default)]
pub struct Gauge {
    bits: AtomicU64,
}

impl Gauge {
    pub fn set(&self, v: f64) {
        self.bits.store(v.to_bits(), Ordering::Relaxed);
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::Relaxed))
    }
}

/// Most buckets any catalog histogram has (+Inf included).
pub const MAX_BUCKETS: usize = 16;

/// The latest exemplar of each bucket (+Inf last).
pub type BucketExemplars = [Option<Exemplar>; MAX_BUCKETS];

#[derive(Default)]
struct HistogramCell {
    /// Non-cumulative bucket counts; the slot after the last bound is +Inf.
    buckets: [AtomicU64; MAX_BUCKETS],
    sum_bits: AtomicU64,
    /// Allocated by the first exemplar this stripe keeps: a histogram that never sees a sampled
    /// trace costs no memory for them (the slot fits in the cell's padding).
    exemplars: OnceLock<Box<Mutex<BucketExemplars>>>,
}

/// A histogram with fixed bucket bounds.
pub struct Histogram {
    bounds: &'static [f64],
    cells: [Padded<HistogramCell>; SHARDS],
}

/// A consistent-enough read of a histogram: `count` always equals the sum of `buckets`.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    pub sum: f64,
    pub count: u64,
    /// Non-cumulative counts, one per bound plus the +Inf bucket.
    pub buckets: Vec<u64>,
}

impl Histogram {
    /// # Panics
    /// When `bounds` has more than `MAX_BUCKETS - 1` entries (a catalog error caught by tests).
    pub fn new(bounds: &'static [f64]) -> Self {
        assert!(bounds.len() < MAX_BUCKETS, "too many histogram buckets");
        Self { bounds, cells: Default::default() }
    }

    pub fn bounds(&self) -> &'static [f64] {
        self.bounds
    }

    #[inline]
    pub fn observe(&self, v: f64) {
        self.record(&self.cells[shard()].0, v);
    }

    /// Records `v` and, when the process's trace id source reports a sampled trace for the
    /// calling context, keeps `{trace_id}` as the exemplar of the bucket `v` fell into. Without
    /// a source this costs [`observe`](Self::observe) plus one atomic load.
    #[inline]
    pub fn observe_traced(&self, v: f64) {
        let cell = &self.cells[shard()].0;
        let idx = self.record(cell, v);
        if let Some(trace_id) = exemplar::current_trace_id() {
            keep_exemplar(cell, idx, trace_id, v);
        }
    }

    /// Records `v` with `trace_id` as its bucket's exemplar.
    pub fn observe_with_exemplar(&self, v: f64, trace_id: [u8; 16]) {
        let cell = &self.cells[shard()].0;
        let idx = self.record(cell, v);
        keep_exemplar(cell, idx, trace_id, v);
    }

    /// Adds `v` to `cell` and returns its bucket index.
    #[inline]
    fn record(&self, cell: &HistogramCell, v: f64) -> usize {
        // Bounds are few (≤ 15), so a linear scan beats a binary search here.
        let idx = self.bounds.iter().position(|b| v <= *b).unwrap_or(self.bounds.len());
        cell.buckets[idx].fetch_add(1, Ordering::Relaxed);
        let mut cur = cell.sum_bits.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(cur) + v).to_bits();
            match cell.sum_bits.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        idx
    }

    /// The newest exemplar of each bucket across stripes; `None` when no exemplar was ever kept
    /// (the common case, read without taking a lock).
    pub fn exemplars(&self) -> Option<BucketExemplars> {
        let mut out: Option<BucketExemplars> = None;
        for cell in &self.cells {
            let Some(slots) = cell.0.exemplars.get() else { continue };
            let merged = out.get_or_insert([None; MAX_BUCKETS]);
            for (m, e) in merged.iter_mut().zip(slots.lock().iter()) {
                if let Some(e) = e
                    && m.is_none_or(|m| m.timestamp_ms <= e.timestamp_ms)
                {
                    *m = Some(*e);
                }
            }
        }
        out
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let n = self.bounds.len() + 1;
        let mut buckets = vec![0u64; n];
        let mut sum = 0.0;
        for cell in &self.cells {
            for (i, b) in buckets.iter_mut().enumerate() {
                *b += cell.0.buckets[i].load(Ordering::Relaxed);
            }
            sum += f64::from_bits(cell.0.sum_bits.load(Ordering::Relaxed));
        }
        HistogramSnapshot { sum, count: buckets.iter().sum(), buckets }
    }
}

/// Keeps the newest exemplar of a bucket. A stripe's slots are only contended when two threads
/// of the same stripe record sampled traces at once; then one exemplar is dropped rather than
/// making a request wait (an exemplar is a sample, not a count).
#[cold]
fn keep_exemplar(cell: &HistogramCell, idx: usize, trace_id: [u8; 16], v: f64) {
    let Some(e) = Exemplar::now(trace_id, v) else { return };
    let slots = cell.exemplars.get_or_init(|| Box::new(Mutex::new([None; MAX_BUCKETS])));
    if let Some(mut slots) = slots.try_lock() {
        slots[idx] = Some(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static BOUNDS: [f64; 3] = [1.0, 5.0, 10.0];

    #[test]
    fn histogram_places_values_in_le_buckets() {
        let h = Histogram::new(&BOUNDS);
        for v in [0.5, 1.0, 1.5, 5.0, 7.0, 11.0, 1e9] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.buckets, vec![2, 2, 1, 2]);
        assert_eq!(s.count, 7);
        assert_eq!(s.sum, 0.5 + 1.0 + 1.5 + 5.0 + 7.0 + 11.0 + 1e9);
    }

    #[test]
    fn exemplars_are_kept_per_bucket_newest_first() {
        let h = Histogram::new(&BOUNDS);
        h.observe(0.5);
        assert_eq!(h.exemplars(), None, "no exemplar without a trace id");
        h.observe_with_exemplar(0.7, [1; 16]);
        h.observe_with_exemplar(0.9, [2; 16]);
        h.observe_with_exemplar(12.0, [3; 16]);
        h.observe_with_exemplar(1.0, [0; 16]);
        let ex = h.exemplars().expect("exemplars");
        let first = ex[0].expect("bucket le=1");
        assert_eq!((first.trace_id, first.value), ([2; 16], 0.9), "the newest of the bucket; zero ids ignored");
        assert_eq!(ex[1], None);
        assert_eq!(ex[3].map(|e| e.trace_id), Some([3; 16]), "+Inf bucket");
        assert_eq!(h.snapshot().buckets, vec![4, 0, 0, 1], "every observation counted");
    }

    #[test]
    fn striped_counts_add_up_across_threads() {
        let c = std::sync::Arc::new(Counter::default());
        let g = std::sync::Arc::new(UpDownGauge::default());
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (c, g) = (c.clone(), g.clone());
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        c.inc();
                        g.inc();
                    }
                    for _ in 0..4_000 {
                        g.dec();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        assert_eq!(c.get(), 80_000);
        assert_eq!(g.get(), 48_000);
    }
}
