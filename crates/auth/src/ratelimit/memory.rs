//! The in-process fixed windows: one entry per (group, key), each with its own window length and
//! expiry, in a table bounded by `memory_max_keys`.
//!
//! Written here rather than taken from `governor`: its keyed store grows until something calls
//! `retain_recent()`, and its GCRA would not give the decisions of the Redis fixed windows that
//! instances share; this map is the same arithmetic as the Redis script, bounded.

use std::hash::{BuildHasher, Hash, Hasher, RandomState};

use hashbrown::HashTable;
use parking_lot::Mutex;

use super::RateKey;

/// One (group, key) and its current window.
struct Entry {
    hash: u64,
    group: Box<str>,
    key: RateKey,
    /// Window length in seconds (the group's own).
    window: u64,
    /// Index of the current window (`now / window`).
    idx: u64,
    count: u64,
    /// Order of last use, for eviction (unique, unlike a clock reading).
    used: u64,
}

impl Entry {
    fn expired(&self, now: u64) -> bool {
        (self.idx + 1).saturating_mul(self.window) <= now
    }
}

struct Table {
    entries: HashTable<Entry>,
    tick: u64,
}

/// Fixed windows keyed by the full (group, key): two keys never share a count.
pub(super) struct MemoryWindows {
    max_keys: usize,
    hasher: RandomState,
    table: Mutex<Table>,
}

impl MemoryWindows {
    pub(super) fn new(max_keys: usize) -> Self {
        Self {
            max_keys: max_keys.max(1),
            hasher: RandomState::new(),
            table: Mutex::new(Table { entries: HashTable::new(), tick: 0 }),
        }
    }

    fn hash(&self, group: &str, key: &RateKey) -> u64 {
        let mut h = self.hasher.build_hasher();
        group.hash(&mut h);
        key.hash(&mut h);
        h.finish()
    }

    /// Adds `add` to the key's window containing `now` (seconds) and returns that window's count.
    pub(super) fn add(&self, group: &str, key: &RateKey, window: u64, now: u64, add: u64) -> u64 {
        let hash = self.hash(group, key);
        let idx = now / window;
        let mut table = self.table.lock();
        table.tick += 1;
        let tick = table.tick;
        if let Some(e) = table.entries.find_mut(hash, |e| e.hash == hash && *e.group == *group && e.key == *key) {
            if e.idx != idx || e.window != window {
                (e.idx, e.window, e.count) = (idx, window, 0);
            }
            e.count += add;
            e.used = tick;
            return e.count;
        }
        if table.entries.len() >= self.max_keys {
            self.evict(&mut table.entries, now);
        }
        let entry = Entry { hash, group: group.into(), key: key.clone(), window, idx, count: add, used: tick };
        table.entries.insert_unique(hash, entry, |e| e.hash);
        add
    }

    /// Makes room: expired windows go first; if that frees less than a sixteenth of the table,
    /// the least recently used entries go until it does (so a full table of live keys costs one
    /// sweep per sixteenth of its capacity, not one per request).
    fn evict(&self, entries: &mut HashTable<Entry>, now: u64) {
        entries.retain(|e| !e.expired(now));
        let target = self.max_keys - (self.max_keys / 16).max(1);
        if entries.len() <= target {
            return;
        }
        let mut used: Vec<u64> = entries.iter().map(|e| e.used).collect();
        let excess = entries.len() - target;
        let (_, cutoff, _) = used.select_nth_unstable(excess - 1);
        let cutoff = *cutoff;
        entries.retain(|e| e.used > cutoff);
    }

    pub(super) fn len(&self) -> usize {
        self.table.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(i: u32) -> RateKey {
        RateKey::User(i.to_string())
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_the_recently_used() {
        let m = MemoryWindows::new(64);
        m.add("g", &user(0), 60, 0, 1);
        for i in 1..1000u32 {
            m.add("g", &user(0), 60, 1, 1);
            m.add("g", &user(i), 60, 1, 1);
            assert!(m.len() <= 64);
        }
        assert_eq!(m.add("g", &user(0), 60, 2, 0), 1000, "a key in constant use survives the churn");
    }

    #[test]
    fn each_group_keeps_its_own_window() {
        let m = MemoryWindows::new(2);
        assert_eq!(m.add("minute", &user(1), 60, 0, 1), 1);
        assert_eq!(m.add("five", &user(1), 300, 0, 1), 1);
        // At 60 s the minute window has ended; the five-minute one has not, and survives a sweep.
        assert_eq!(m.add("minute", &user(2), 60, 61, 1), 1);
        assert_eq!(m.add("five", &user(1), 300, 61, 1), 2);
    }
}
