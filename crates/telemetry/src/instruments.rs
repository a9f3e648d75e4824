//! Lock-free instruments.
//!
//! Counters, up-down gauges and histograms are striped: each thread writes to one of
//! [`SHARDS`] cache-line-aligned cells, and a read sums the cells. Two cores recording on the
//! same hot series therefore do not fight over one cache line, and recording is a couple of
//! relaxed atomic adds with no lock and no allocation.

use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

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

#[derive(Default)]
struct HistogramCell {
    /// Non-cumulative bucket counts; the slot after the last bound is +Inf.
    buckets: [AtomicU64; MAX_BUCKETS],
    sum_bits: AtomicU64,
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
        // Bounds are few (≤ 15), so a linear scan beats a binary search here.
        let idx = self.bounds.iter().position(|b| v <= *b).unwrap_or(self.bounds.len());
        let cell = &self.cells[shard()].0;
        cell.buckets[idx].fetch_add(1, Ordering::Relaxed);
        let mut cur = cell.sum_bits.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(cur) + v).to_bits();
            match cell.sum_bits.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
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
