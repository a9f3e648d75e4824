//! Acquire-and-release through the instrumented `Store` versus a bare sqlx pool with the same
//! options, on one PostgreSQL database; plus the instrumentation alone and allocations per acquire.
//!
//! `cargo bench -p compozy-store --bench pool -- --warm-up-time 1 --measurement-time 3`
//! Needs PostgreSQL at 127.0.0.1:5432 (trust auth, database `test`); skips otherwise.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use compozy_core::Secret;
use compozy_store::{Store, StoreConfig};
use compozy_telemetry::{Registry, RegistryOptions, catalog};
use criterion::{Criterion, criterion_group, criterion_main};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};

#[global_allocator]
static GLOBAL: compozy_testkit::CountingAllocator = compozy_testkit::CountingAllocator;

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const POOL_SIZE: u32 = 4;

async fn setup(db: &str) -> (Store, PgPool) {
    let mut admin = PgConnection::connect(ADMIN_URL).await.expect("admin");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).execute(&mut admin).await.expect("create db");
    let url = format!("postgres://postgres@127.0.0.1:5432/{db}");
    let config =
        StoreConfig { url: Some(Secret::new(url.clone())), max_connections: Some(POOL_SIZE), ..Default::default() };
    let store =
        Store::connect(&config, Path::new("/unused"), &Registry::new(RegistryOptions::default())).await.expect("store");
    // The same options `Store` uses.
    let bare = PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .acquire_timeout(config.acquire_timeout)
        .idle_timeout(config.idle_timeout)
        .max_lifetime(Some(compozy_store::config::POSTGRES_DEFAULT_MAX_LIFETIME))
        .test_before_acquire(true)
        .connect(&url)
        .await
        .expect("bare pool");
    (store, bare)
}

async fn teardown(db: &str, store: Store, bare: PgPool) {
    store.close().await;
    bare.close().await;
    let mut admin = PgConnection::connect(ADMIN_URL).await.expect("admin");
    let drop = format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut admin).await.expect("drop db");
}

/// Allocations per acquire-and-release, averaged over `n` sequential ones.
async fn allocs_per_acquire<F: AsyncFn()>(n: u64, f: F) -> f64 {
    let before = compozy_testkit::allocations();
    for _ in 0..n {
        f().await;
    }
    (compozy_testkit::allocations() - before) as f64 / n as f64
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let probe =
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(3), PgConnection::connect(ADMIN_URL)).await });
    if !matches!(probe, Ok(Ok(_))) {
        eprintln!("SKIPPED: PostgreSQL unreachable at {ADMIN_URL}");
        return;
    }
    let db = format!("compozy_bench_{}", uuid::Uuid::new_v4().simple());
    let (store, bare) = rt.block_on(setup(&db));

    let mut group = c.benchmark_group("pool_acquire_release");
    group.bench_function("bare_sqlx", |b| {
        b.to_async(&rt).iter(|| async { drop(black_box(bare.acquire().await.expect("acquire"))) })
    });
    group.bench_function("instrumented_store", |b| {
        b.to_async(&rt).iter(|| async { drop(black_box(store.acquire().await.expect("acquire"))) })
    });
    group.finish();

    // What the instrumented path adds around the acquire: two clock reads and one histogram
    // record on a handle resolved once (see `AcquireTimer`).
    let registry = Registry::new(RegistryOptions::default());
    let wait = registry.histogram(&catalog::POSTGRES_CONNECTION_WAIT_DURATION).get(&[]);
    c.bench_function("instrumentation_only", |b| {
        b.iter(|| {
            let start = Instant::now();
            wait.observe(black_box(start.elapsed()).as_secs_f64());
        })
    });

    rt.block_on(async {
        let n = 2000;
        let bare_allocs = allocs_per_acquire(n, async || drop(bare.acquire().await.expect("acquire"))).await;
        let store_allocs = allocs_per_acquire(n, async || drop(store.acquire().await.expect("acquire"))).await;
        eprintln!("allocations per acquire+release: bare_sqlx {bare_allocs:.2}, instrumented_store {store_allocs:.2}");
    });
    rt.block_on(teardown(&db, store, bare));
}

criterion_group!(benches, bench);
criterion_main!(benches);
