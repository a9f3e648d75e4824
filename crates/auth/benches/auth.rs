//! Hot paths: a valid API key on the warm path (no database round trip), and an in-memory
//! rate-limit decision. Allocations per call are counted and printed after the run.

use std::hint::black_box;
use std::sync::Arc;

use compozy_auth::{AuthConfig, AuthMetrics, Authenticator, RateKey, RateLimiter, Role};
use compozy_core::Secret;
use compozy_store::{Store, StoreConfig};
use compozy_telemetry::{Registry, RegistryOptions};
use criterion::{Criterion, criterion_group, criterion_main};

#[global_allocator]
static GLOBAL: compozy_testkit::CountingAllocator = compozy_testkit::CountingAllocator;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// Allocations per call of `f`, averaged over `n` calls.
fn allocs_per_call(rt: &tokio::runtime::Runtime, n: u64, mut f: impl AsyncFnMut()) -> f64 {
    let before = compozy_testkit::allocations();
    rt.block_on(async {
        for _ in 0..n {
            f().await;
        }
    });
    (compozy_testkit::allocations() - before) as f64 / n as f64
}

fn warm_api_key(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = Registry::new(RegistryOptions::default());
    let (auth, key) = rt.block_on(async {
        let store = Store::open(&StoreConfig::default(), dir.path(), &registry).await.expect("store");
        let secret = Secret::new("bench-secret-of-at-least-32-bytes!!");
        let auth = Arc::new(
            Authenticator::new(&AuthConfig::default(), &secret, store, AuthMetrics::new(&registry)).expect("auth"),
        );
        let (_, key) = compozy_auth::create_user_with_key(&auth, "bench@example.com", Role::User).await.expect("user");
        auth.authenticate(&key).await.expect("warm up");
        (auth, key)
    });
    c.bench_function("api_key_warm_path", |b| {
        b.to_async(&rt).iter(|| async { black_box(auth.authenticate(black_box(&key)).await.is_ok()) })
    });
    let allocs = allocs_per_call(&rt, 10_000, async || {
        black_box(auth.authenticate(&key).await.is_ok());
    });
    println!("api_key_warm_path: {allocs:.1} allocations per call");
}

fn memory_rate_limit(c: &mut Criterion) {
    let rt = runtime();
    let limiter = RateLimiter::in_memory(compozy_auth::RateLimitConfig {
        default: compozy_auth::Limit { requests: u64::MAX, window: std::time::Duration::from_secs(60) },
        ..Default::default()
    });
    let key = RateKey::User("3f1c0a52-9d1e-4c43-8f0e-0123456789ab".into());
    c.bench_function("rate_limit_memory_decision", |b| {
        b.to_async(&rt).iter(|| async { black_box(limiter.hit("default", &key).await.is_ok()) })
    });
    let allocs = allocs_per_call(&rt, 10_000, async || {
        black_box(limiter.hit("default", &key).await.is_ok());
    });
    println!("rate_limit_memory_decision: {allocs:.1} allocations per call");
}

/// A Redis-backed decision next to a bare `PING` on the same pool: one round trip each, so
/// the ratio shows what the script adds on top of the network.
fn redis_rate_limit(c: &mut Criterion) {
    let rt = runtime();
    let registry = Registry::new(RegistryOptions::default());
    let config = compozy_store::CacheConfig {
        url: Some(compozy_core::Secret::new("redis://127.0.0.1:6379")),
        ..Default::default()
    };
    let Ok(cache) = rt.block_on(compozy_store::Cache::connect(&config, &registry)) else {
        println!("rate_limit_redis_decision: skipped, Redis 127.0.0.1:6379 unreachable");
        return;
    };
    let limiter = RateLimiter::new(
        compozy_auth::RateLimitConfig {
            default: compozy_auth::Limit { requests: u64::MAX, window: std::time::Duration::from_secs(60) },
            redis_prefix: format!("bench-rl-{}:", std::process::id()),
            ..Default::default()
        },
        Some(cache.clone()),
        &registry,
    );
    let key = RateKey::User("3f1c0a52-9d1e-4c43-8f0e-0123456789ab".into());
    c.bench_function("redis_ping_round_trip", |b| {
        b.to_async(&rt).iter(|| async { black_box(cache.ping().await.is_ok()) })
    });
    c.bench_function("rate_limit_redis_decision", |b| {
        b.to_async(&rt).iter(|| async { black_box(limiter.hit("default", &key).await.is_ok()) })
    });
}

criterion_group!(benches, warm_api_key, memory_rate_limit, redis_rate_limit);
criterion_main!(benches);
