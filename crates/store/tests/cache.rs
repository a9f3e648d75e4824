//! The cache suite (Redis and in-process), Redis pool metrics, Redis outages.

mod common;

use std::time::Duration;

use common::{Proxy, REDIS_ADDR, no_hang, redis_up, registry, render, sample, unique, wait_until};
use compozy_core::{Readiness, Secret};
use compozy_store::{Cache, CacheConfig, CacheError, Unavailable};

fn redis_config(addr: &str) -> CacheConfig {
    CacheConfig {
        url: Some(Secret::new(format!("redis://{addr}/0"))),
        prefix: unique("compozy-test:") + ":",
        ..CacheConfig::default()
    }
}

async fn redis_cache(config: &CacheConfig) -> (Cache, std::sync::Arc<compozy_telemetry::Registry>) {
    let reg = registry();
    let cache = Cache::connect(config, &reg).await.expect("connect redis");
    (cache, reg)
}

/// The API contract both backends keep.
async fn api_contract(cache: &Cache) {
    let ttl = Duration::from_secs(60);
    assert_eq!(cache.get("k").await.expect("get"), None);
    cache.set("k", b"v1", ttl).await.expect("set");
    assert_eq!(cache.get("k").await.expect("get").as_deref(), Some(&b"v1"[..]));
    cache.set("k", b"v2", ttl).await.expect("overwrite");
    assert_eq!(cache.get("k").await.expect("get").as_deref(), Some(&b"v2"[..]));

    assert!(cache.set_nx("once", b"a", ttl).await.expect("set_nx"));
    assert!(!cache.set_nx("once", b"b", ttl).await.expect("set_nx again"));
    assert_eq!(cache.get("once").await.expect("get").as_deref(), Some(&b"a"[..]));

    for expected in 1..=3 {
        assert_eq!(cache.incr("n", ttl).await.expect("incr"), expected);
    }
    assert_eq!(cache.get("n").await.expect("get").as_deref(), Some(&b"3"[..]));
    assert!(matches!(cache.incr("k", ttl).await, Err(CacheError::Command(_))), "incr on a non-integer");

    assert!(cache.del("k").await.expect("del"));
    assert!(!cache.del("k").await.expect("del again"));
    assert_eq!(cache.get("k").await.expect("get"), None);
    cache.ping().await.expect("ping");
}

#[tokio::test]
async fn memory_keeps_the_contract() {
    let cache = Cache::connect(&CacheConfig::default(), &registry()).await.expect("memory");
    assert_eq!(cache.backend(), "memory");
    api_contract(&cache).await;
}

#[tokio::test]
async fn redis_keeps_the_contract() {
    if !redis_up().await {
        return;
    }
    let (cache, _) = redis_cache(&redis_config(REDIS_ADDR)).await;
    assert_eq!(cache.backend(), "redis");
    api_contract(&cache).await;
}

#[tokio::test]
async fn redis_entries_expire_and_incr_sets_ttl_once() {
    if !redis_up().await {
        return;
    }
    let (cache, _) = redis_cache(&redis_config(REDIS_ADDR)).await;
    cache.set("short", b"x", Duration::from_millis(100)).await.expect("set");
    assert!(cache.set_nx("nx", b"x", Duration::from_millis(100)).await.expect("set_nx"));
    assert_eq!(cache.incr("n", Duration::from_millis(100)).await.expect("incr"), 1);
    // A later increment with a long TTL must not extend the first one.
    assert_eq!(cache.incr("n", Duration::from_secs(600)).await.expect("incr"), 2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    for key in ["short", "nx", "n"] {
        assert_eq!(cache.get(key).await.expect("get"), None, "{key} should have expired");
    }
    assert!(cache.set_nx("nx", b"y", Duration::from_secs(60)).await.expect("set_nx after expiry"));
    assert_eq!(cache.incr("n", Duration::from_secs(60)).await.expect("incr restarts"), 1);
}

#[tokio::test]
async fn memory_exports_no_redis_metrics() {
    let reg = registry();
    let cache = Cache::connect(&CacheConfig::default(), &reg).await.expect("memory");
    cache.set("k", b"v", Duration::from_secs(1)).await.expect("set");
    assert!(!render(&reg).contains("redis_"));
}

fn pool_counters(text: &str) -> [f64; 4] {
    ["hits", "misses", "timeouts", "stale_conns"].map(|n| sample(text, &format!("compozy_redis_pool_{n}_total")))
}

#[tokio::test]
async fn redis_counters_equal_true_totals_at_every_scrape() {
    if !redis_up().await {
        return;
    }
    let mut config = redis_config(REDIS_ADDR);
    config.pool_size = 4;
    let (cache, reg) = redis_cache(&config).await;
    // connect() pinged once: one get, which had to open the first connection.
    assert_eq!(pool_counters(&render(&reg)), [0.0, 1.0, 0.0, 0.0]);

    // Six sequential operations, one pool get each, all served by the idle connection.
    let ttl = Duration::from_secs(60);
    cache.set("a", b"1", ttl).await.expect("set");
    for _ in 0..10 {
        render(&reg);
    }
    cache.get("a").await.expect("get hit");
    cache.get("absent").await.expect("get miss");
    for _ in 0..10 {
        render(&reg);
    }
    cache.incr("n", ttl).await.expect("incr");
    cache.set_nx("a", b"2", ttl).await.expect("set_nx");
    cache.del("a").await.expect("del");
    let text = render(&reg);
    let [hits, misses, timeouts, stale] = pool_counters(&text);
    assert_eq!(hits + misses, 7.0, "pool gets: the ping plus six operations");
    assert_eq!([hits, misses, timeouts, stale], [6.0, 1.0, 0.0, 0.0]);
    for _ in 0..10 {
        assert_eq!(render(&reg), text, "scraping must not move anything");
    }
    assert_eq!(sample(&text, "compozy_redis_pool_size"), 4.0);
    assert_eq!(sample(&text, "compozy_redis_pool_total_conns"), 1.0);
    assert_eq!(sample(&text, "compozy_redis_pool_idle_conns"), 1.0);
}

#[tokio::test]
async fn redis_pool_timeouts_are_typed_and_counted() {
    if !redis_up().await {
        return;
    }
    let mut config = redis_config(REDIS_ADDR);
    config.pool_size = 1;
    config.pool_timeout = Duration::from_millis(200);
    let (cache, reg) = redis_cache(&config).await;
    let Cache::Redis(redis) = &cache else { panic!("redis backend") };
    let held = redis.get_conn().await.expect("the only connection");
    let err = no_hang(Duration::from_secs(10), cache.get("k")).await.expect_err("pool exhausted");
    assert!(matches!(err, CacheError::Unavailable { reason: Unavailable::Timeout, .. }), "{err:?}");
    assert!(err.retry_after().is_some());
    drop(held);
    cache.get("k").await.expect("free again");
    // ping (miss), held (hit), timed out, get (hit).
    assert_eq!(pool_counters(&render(&reg)), [2.0, 1.0, 1.0, 0.0]);
}

/// A get that finds no idle connection is a miss whether it opens one or waits for one to be
/// returned (the catalog's meaning, as go-redis's `PoolStats.Misses`).
#[tokio::test]
async fn redis_gets_that_find_no_idle_connection_are_misses() {
    if !redis_up().await {
        return;
    }
    let mut config = redis_config(REDIS_ADDR);
    config.pool_size = 1;
    config.pool_timeout = Duration::from_secs(5);
    let (cache, reg) = redis_cache(&config).await;
    let Cache::Redis(redis) = &cache else { panic!("redis backend") };
    let held = redis.get_conn().await.expect("the only connection");
    let waiting = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get("k").await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(held);
    no_hang(Duration::from_secs(10), waiting).await.expect("join").expect("served once returned");
    // ping (miss: opened the first connection), held (hit), the waiting get (miss).
    assert_eq!(pool_counters(&render(&reg)), [1.0, 2.0, 0.0, 0.0]);
}

/// The server-side id of the pool's (only idle) connection.
async fn pooled_client_id(cache: &Cache) -> i64 {
    let Cache::Redis(redis) = cache else { panic!("redis backend") };
    let mut conn = redis.get_conn().await.expect("conn");
    redis::cmd("CLIENT").arg("ID").query_async(conn.connection()).await.expect("client id")
}

/// A connection of its own, for `CLIENT` commands about the pool's.
async fn admin() -> redis::aio::MultiplexedConnection {
    let admin = redis::Client::open(format!("redis://{REDIS_ADDR}/0")).expect("client");
    admin.get_multiplexed_async_connection().await.expect("admin connection")
}

/// Opens a pooled connection, kills it from another client and returns the registry.
async fn pool_with_a_killed_connection() -> (Cache, std::sync::Arc<compozy_telemetry::Registry>) {
    let (cache, reg) = redis_cache(&redis_config(REDIS_ADDR)).await;
    let id = pooled_client_id(&cache).await;
    let killed: i64 =
        redis::cmd("CLIENT").arg("KILL").arg("ID").arg(id).query_async(&mut admin().await).await.expect("client kill");
    assert_eq!(killed, 1);
    (cache, reg)
}

#[tokio::test]
async fn idle_killed_connections_are_replaced_before_use() {
    if !redis_up().await {
        return;
    }
    let (cache, reg) = pool_with_a_killed_connection().await;
    // Idle past the no-ping window: the next get pings it, closes it and waits for a new one.
    tokio::time::sleep(Duration::from_millis(700)).await;
    no_hang(Duration::from_secs(10), cache.set("k", b"v", Duration::from_secs(60))).await.expect("recovers");
    let text = render(&reg);
    // ping (miss), get_conn (hit), set (found only a dead connection: miss).
    assert_eq!(pool_counters(&text), [1.0, 2.0, 0.0, 1.0]);
    assert_eq!(sample(&text, "compozy_redis_pool_total_conns"), 1.0);
}

#[tokio::test]
async fn a_connection_that_just_answered_is_not_pinged_and_a_dead_one_fails_once() {
    if !redis_up().await {
        return;
    }
    let (cache, reg) = pool_with_a_killed_connection().await;
    // Within the window the connection is handed out unchecked: the command meets the dead
    // socket, fails as unavailable, and the connection is closed as broken.
    let err = no_hang(Duration::from_secs(10), cache.set("k", b"v", Duration::from_secs(60)))
        .await
        .expect_err("the killed connection was used");
    assert!(err.is_unavailable(), "{err:?}");
    no_hang(Duration::from_secs(10), cache.set("k", b"v", Duration::from_secs(60))).await.expect("a new connection");
    let text = render(&reg);
    // ping (miss), get_conn (hit), failed set (hit), set (miss: the pool had to connect again).
    assert_eq!(pool_counters(&text), [2.0, 2.0, 0.0, 1.0]);
    assert_eq!(sample(&text, "compozy_redis_pool_total_conns"), 1.0);
}

#[tokio::test]
async fn checking_out_a_connection_that_just_answered_sends_no_ping() {
    if !redis_up().await {
        return;
    }
    let (cache, _reg) = redis_cache(&redis_config(REDIS_ADDR)).await;
    let id = pooled_client_id(&cache).await;
    cache.set("k", b"v", Duration::from_secs(60)).await.expect("set");
    let Cache::Redis(redis) = &cache else { panic!("redis backend") };
    let _conn = redis.get_conn().await.expect("the same connection, checked out again");

    // `cmd=` in CLIENT LIST is the connection's last command: a check-out ping would show `ping`.
    let list: String =
        redis::cmd("CLIENT").arg("LIST").arg("ID").arg(id).query_async(&mut admin().await).await.expect("client list");
    assert!(list.contains(" cmd=set "), "{list}");
}

#[tokio::test]
async fn concurrent_commands_share_round_trips_and_keep_their_own_replies() {
    if !redis_up().await {
        return;
    }
    let mut config = redis_config(REDIS_ADDR);
    config.pool_size = 2;
    let (cache, reg) = redis_cache(&config).await;
    let ttl = Duration::from_secs(60);
    cache.set("text", b"not a number", ttl).await.expect("set");
    let before: f64 = pool_counters(&render(&reg))[..2].iter().sum();

    // 200 writes and reads of distinct keys at once, with a command that fails among them.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let cache = cache.clone();
        tasks.spawn(async move {
            cache.set(&format!("k{i}"), format!("v{i}").as_bytes(), ttl).await.expect("set");
            (i, cache.get(&format!("k{i}")).await.expect("get"))
        });
    }
    let failed = cache.incr("text", ttl).await;
    while let Some(done) = tasks.join_next().await {
        let (i, value) = done.expect("task");
        assert_eq!(value.as_deref(), Some(format!("v{i}").as_bytes()), "reply {i} is its own");
    }
    assert!(matches!(failed, Err(CacheError::Command(_))), "{failed:?}");

    let gets: f64 = pool_counters(&render(&reg))[..2].iter().sum::<f64>() - before;
    assert!(gets < 100.0, "401 commands took {gets} round trips: they were not pipelined");
}

#[tokio::test]
async fn a_command_whose_caller_stopped_waiting_is_not_sent() {
    if !redis_up().await {
        return;
    }
    let mut config = redis_config(REDIS_ADDR);
    config.pool_size = 1;
    let (cache, _reg) = redis_cache(&config).await;
    let Cache::Redis(redis) = &cache else { panic!("redis backend") };
    let held = redis.get_conn().await.expect("the only connection");
    // Queued behind the held connection, then abandoned (a client that went away).
    let gave_up = tokio::time::timeout(Duration::from_millis(100), cache.set_nx("x", b"p", Duration::from_secs(60)));
    assert!(gave_up.await.is_err(), "the command cannot run while the connection is held");
    drop(held);
    assert_eq!(cache.get("x").await.expect("get"), None, "the abandoned SET NX was not run");
}

#[tokio::test]
async fn redis_outage_fails_fast_then_recovers() {
    if !redis_up().await {
        return;
    }
    let proxy = Proxy::start(REDIS_ADDR).await;
    let mut config = redis_config(&proxy.addr());
    config.pool_timeout = Duration::from_millis(500);
    config.connect_timeout = Duration::from_millis(500);
    config.response_timeout = Duration::from_millis(500);
    let (cache, reg) = redis_cache(&config).await;
    let readiness = Readiness::default();
    let _probe = cache.spawn_health_probe(&readiness, Duration::from_millis(100));
    cache.set("k", b"v", Duration::from_secs(60)).await.expect("works through the proxy");

    proxy.cut();
    let err = no_hang(Duration::from_secs(10), cache.get("k")).await.expect_err("redis cut off");
    assert!(err.is_unavailable(), "{err:?}");
    wait_until("not ready", Duration::from_secs(10), || !readiness.is_ready()).await;
    assert_eq!(readiness.states()[0].1.backend.as_deref(), Some("redis"));
    // The cut connection is closed; no new one can be had within `pool_timeout`. (The first
    // failure may instead have been shared by the probe's ping in the same pipeline.)
    let err = no_hang(Duration::from_secs(10), cache.get("k")).await.expect_err("still cut off");
    assert!(matches!(err, CacheError::Unavailable { reason: Unavailable::Timeout, .. }), "{err:?}");

    proxy.restore();
    wait_until("ready again", Duration::from_secs(20), || readiness.is_ready()).await;
    let value = no_hang(Duration::from_secs(10), cache.get("k")).await.expect("recovered");
    assert_eq!(value.as_deref(), Some(&b"v"[..]));
    let [_, _, timeouts, stale] = pool_counters(&render(&reg));
    assert!(stale >= 1.0, "the connection cut by the outage is counted as stale");
    assert!(timeouts >= 1.0, "gets during the outage timed out");
}

mod memory {
    use super::*;
    use compozy_store::cache::MemoryCache;

    fn config(max_entries: usize) -> CacheConfig {
        CacheConfig { max_entries, sweep_interval: Duration::from_secs(5), ..CacheConfig::default() }
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire() {
        let cache = MemoryCache::new(&config(100));
        cache.set("k", b"v", Duration::from_secs(1));
        assert!(cache.set_nx("nx", b"v", Duration::from_secs(1)));
        tokio::time::advance(Duration::from_millis(999)).await;
        assert_eq!(cache.get("k").as_deref(), Some(&b"v"[..]));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(cache.get("k"), None);
        assert!(cache.set_nx("nx", b"w", Duration::from_secs(1)), "an expired key is absent");
        assert!(!cache.del("k"));
    }

    #[tokio::test(start_paused = true)]
    async fn incr_sets_the_ttl_on_the_first_increment_only() {
        let cache = MemoryCache::new(&config(100));
        assert_eq!(cache.incr("n", Duration::from_secs(1)).expect("incr"), 1);
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(cache.incr("n", Duration::from_secs(600)).expect("incr"), 2);
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(cache.get("n"), None);
        assert_eq!(cache.incr("n", Duration::from_secs(1)).expect("incr"), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_sweeper_drops_expired_entries() {
        let cache = MemoryCache::new(&config(100));
        for i in 0..10 {
            cache.set(&format!("k{i}"), b"v", Duration::from_secs(1));
        }
        cache.set("long", b"v", Duration::from_secs(3600));
        assert_eq!(cache.len(), 11);
        // Past the TTL and one sweep interval, with nothing touching the keys.
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get("long").as_deref(), Some(&b"v"[..]));
    }

    #[tokio::test(start_paused = true)]
    async fn stays_within_max_entries() {
        let cache = MemoryCache::new(&config(3));
        cache.set("soon", b"v", Duration::from_secs(10));
        cache.set("later", b"v", Duration::from_secs(20));
        cache.set("expiring", b"v", Duration::from_secs(1));
        tokio::time::advance(Duration::from_secs(2)).await;
        // Full: the expired entry goes first.
        cache.set("new1", b"v", Duration::from_secs(30));
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get("soon").as_deref(), Some(&b"v"[..]));
        // Full with live entries only: the one closest to expiry goes.
        cache.set("new2", b"v", Duration::from_secs(30));
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get("soon"), None);
        for key in ["later", "new1", "new2"] {
            assert!(cache.get(key).is_some(), "{key}");
        }
        // Overwriting a present key never evicts.
        cache.set("later", b"w", Duration::from_secs(30));
        assert_eq!(cache.len(), 3);
        assert!(cache.get("new1").is_some());
    }
}
