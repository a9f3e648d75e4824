//! The in-process cache when it is full: every insert evicts. Webhook dedupe keeps one key per
//! delivery for a day, so a busy embedded engine lives in this state.
//!
//! `cargo bench -p compozy-store --bench memory_cache`

use std::hint::black_box;
use std::time::Duration;

use compozy_store::CacheConfig;
use compozy_store::cache::MemoryCache;
use criterion::{Criterion, criterion_group, criterion_main};

fn full_cache_insert(c: &mut Criterion) {
    for max_entries in [1_000, 10_000, 100_000] {
        let cache = MemoryCache::new(&CacheConfig { max_entries, ..CacheConfig::default() });
        for i in 0..max_entries {
            cache.set(&format!("warm-{i}"), b"1", Duration::from_secs(3600));
        }
        let mut i = 0u64;
        c.bench_function(&format!("memory_cache_set_nx_full_{max_entries}"), |b| {
            b.iter(|| {
                i += 1;
                black_box(cache.set_nx(&format!("k-{i}"), b"1", Duration::from_secs(86_400)))
            })
        });
    }
}

criterion_group!(benches, full_cache_insert);
criterion_main!(benches);
