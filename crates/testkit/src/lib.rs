//! Support shared by tests and benchmarks (a dev-dependency only).

pub mod postgres;
pub mod prometheus;
pub mod proxy;
pub mod scrape;

pub use scrape::{eventually, sample, sample_opt};

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

/// The system allocator, counting allocations and the bytes they hold. A benchmark installs it
/// with `#[global_allocator] static A: compozy_testkit::CountingAllocator = compozy_testkit::CountingAllocator;`
/// and reads [`allocations`] before and after the code it measures; a memory test reads
/// [`live_bytes`] (Rust's heap only: C libraries such as SQLite allocate beside it).
pub struct CountingAllocator;

#[allow(unsafe_code)]
// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocations made so far in this process (when [`CountingAllocator`] is installed).
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Bytes allocated and not yet freed (when [`CountingAllocator`] is installed).
pub fn live_bytes() -> i64 {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// Called when a service a test needs is unreachable: fails the test under
/// `COMPOZY_REQUIRE_SERVICES=1` (as CI runs), otherwise prints why it is skipped. Callers
/// return right after.
///
/// # Panics
/// When `COMPOZY_REQUIRE_SERVICES=1`.
pub fn service_missing(service: &str, reason: impl std::fmt::Display) {
    if std::env::var("COMPOZY_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
        panic!("{service} is required (COMPOZY_REQUIRE_SERVICES=1) but unavailable: {reason}");
    }
    eprintln!("SKIPPED: {service} unavailable ({reason}); set COMPOZY_REQUIRE_SERVICES=1 to fail instead");
}
