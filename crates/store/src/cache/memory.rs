//! The in-process cache: a map with per-entry expiry, for single-instance (embedded) runs.
//!
//! Expired entries are never served, are dropped when touched, and are swept every
//! `sweep_interval` by a background task; the map never holds more than `max_entries` (when
//! full, expired entries go first, then the one closest to expiry).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::config::CacheConfig;
use crate::error::CacheError;

pub(crate) const BACKEND: &str = "memory";

struct Entry {
    value: Vec<u8>,
    /// Also this entry's key in `Map::by_expiry`.
    expires: (Instant, u64),
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.0 > now
    }
}

/// The entries, and the same keys ordered by expiry (ties broken by insertion order), so that
/// sweeping and evicting cost O(log n) per entry instead of a scan of the whole map.
struct Map {
    entries: HashMap<String, Entry>,
    by_expiry: BTreeMap<(Instant, u64), String>,
    next_seq: u64,
    max_entries: usize,
}

impl Map {
    fn new(max_entries: usize) -> Self {
        Self { entries: HashMap::new(), by_expiry: BTreeMap::new(), next_seq: 0, max_entries }
    }

    /// The live entry under `key`, dropping it if it has expired.
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut Entry> {
        if self.entries.get(key).is_some_and(|e| !e.live(now)) {
            self.remove(key);
        }
        self.entries.get_mut(key)
    }

    fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.by_expiry.remove(&entry.expires);
        Some(entry)
    }

    /// Drops the entries that have expired, soonest first.
    fn sweep(&mut self, now: Instant) -> usize {
        let mut dropped = 0;
        while let Some(entry) = self.by_expiry.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.entries.remove(&key);
            dropped += 1;
        }
        dropped
    }

    /// Frees a slot for a new key when the map is full: the entry closest to expiry goes (an
    /// expired one if there is any, since they come first).
    fn make_room(&mut self, key: &str) {
        if self.entries.len() < self.max_entries || self.entries.contains_key(key) {
            return;
        }
        if let Some((_, soonest)) = self.by_expiry.pop_first() {
            self.entries.remove(&soonest);
        }
    }

    fn insert(&mut self, key: &str, value: Vec<u8>, ttl: Duration, now: Instant) {
        self.remove(key);
        self.make_room(key);
        let expires = (now + ttl.max(Duration::from_millis(1)), self.next_seq);
        self.next_seq += 1;
        self.by_expiry.insert(expires, key.to_string());
        self.entries.insert(key.to_string(), Entry { value, expires });
    }
}

/// Cheap to clone; clones share the map.
#[derive(Clone)]
pub struct MemoryCache {
    map: Arc<Mutex<Map>>,
}

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache").field("entries", &self.len()).finish()
    }
}

impl MemoryCache {
    /// Creates the cache; inside a tokio runtime it also starts the sweeper, which ends when the
    /// last clone is dropped.
    pub fn new(config: &CacheConfig) -> Self {
        let map = Map::new(config.max_entries.max(1));
        let cache = MemoryCache { map: Arc::new(Mutex::new(map)) };
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(sweeper(Arc::downgrade(&cache.map), config.sweep_interval));
        }
        cache
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.map.lock().live(key, Instant::now()).map(|e| e.value.clone())
    }

    pub fn set(&self, key: &str, value: &[u8], ttl: Duration) {
        self.map.lock().insert(key, value.to_vec(), ttl, Instant::now());
    }

    pub fn set_nx(&self, key: &str, value: &[u8], ttl: Duration) -> bool {
        let now = Instant::now();
        let mut map = self.map.lock();
        if map.live(key, now).is_some() {
            return false;
        }
        map.insert(key, value.to_vec(), ttl, now);
        true
    }

    /// Like Redis `INCR`: the value is a decimal integer; anything else is an error.
    pub fn incr(&self, key: &str, ttl: Duration) -> Result<i64, CacheError> {
        let now = Instant::now();
        let mut map = self.map.lock();
        if let Some(entry) = map.live(key, now) {
            let current = std::str::from_utf8(&entry.value).ok().and_then(|s| s.parse::<i64>().ok());
            let next = current
                .and_then(|v| v.checked_add(1))
                .ok_or_else(|| CacheError::Command("value is not an integer or out of range".into()))?;
            entry.value = next.to_string().into_bytes();
            return Ok(next);
        }
        map.insert(key, b"1".to_vec(), ttl, now);
        Ok(1)
    }

    pub fn del(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut map = self.map.lock();
        let live = map.live(key, now).is_some();
        map.remove(key);
        live
    }

    /// Entries held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.map.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every expired entry now; returns how many.
    pub fn sweep_expired(&self) -> usize {
        self.map.lock().sweep(Instant::now())
    }
}

async fn sweeper(map: Weak<Mutex<Map>>, every: Duration) {
    let mut ticker = tokio::time::interval(every.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let Some(map) = map.upgrade() else { return };
        map.lock().sweep(Instant::now());
    }
}
