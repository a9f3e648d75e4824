//! Connection admission and deadlines: a cap on open connections (over it, a new connection is
//! closed at accept), a deadline from accept to the first complete request head, an idle
//! deadline between requests, and the file limit the default cap is derived from.
//!
//! The per-connection bookkeeping happens at accept and at close; a request only sets one
//! connection-local flag ([`Activity`]), so nothing here is on the per-request path.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use compozy_telemetry::{Counter, Registry, catalog};
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// File descriptors kept out of the derived cap: at least this many, for the store's and the
/// cache's pools, the SQLite files, logs and the listeners.
const RESERVED_FDS_MIN: u64 = 128;
/// The derived cap never goes above this (set `server.max_connections` to go higher): a
/// million-descriptor limit is not a reason to hold a million idle sockets' buffers.
const DERIVED_CEILING: u64 = 65_536;
/// The smallest derived cap, so a tiny file limit still serves something.
const DERIVED_FLOOR: u64 = 16;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, so the cap can be as large as the
/// operator allowed; returns the soft limit now in force (`None` when unlimited or unknown).
pub fn raise_file_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit { current: limit.maximum, maximum: limit.maximum };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, "could not raise the soft file limit to the hard one");
            return limit.current;
        }
    }
    getrlimit(Resource::Nofile).current
}

/// The cap derived from a soft file limit: a quarter of it (at least 128 descriptors) is left
/// for everything that is not a client connection.
pub fn derived_limit(nofile: Option<u64>) -> usize {
    let cap = match nofile {
        Some(n) => n.saturating_sub((n / 4).max(RESERVED_FDS_MIN)).clamp(DERIVED_FLOOR, DERIVED_CEILING),
        None => DERIVED_CEILING,
    };
    usize::try_from(cap).unwrap_or(usize::MAX)
}

/// Why a connection was closed at accept: the `reason` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    OverCapacity = 0,
    AcceptError = 1,
}

/// Which deadline closed a connection: the `phase` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// No complete request head in time after accept.
    Header = 0,
    /// No new request in time after the previous one.
    Idle = 1,
}

/// The open-connection count, the cap and their metrics; one per server.
pub struct Connections {
    open: Arc<AtomicUsize>,
    limit: usize,
    refused: [Arc<Counter>; 2],
    timed_out: [Arc<Counter>; 2],
}

impl Connections {
    /// Registers the connection families with every series at zero.
    pub fn new(registry: &Registry, limit: usize) -> Self {
        let open = Arc::new(AtomicUsize::new(0));
        let gauge = open.clone();
        registry.observe(&catalog::HTTP_CONNECTIONS_OPEN, move |emit| {
            emit(&[], gauge.load(Ordering::Relaxed) as f64);
        });
        registry.gauge(&catalog::HTTP_CONNECTIONS_LIMIT).get(&[]).set(limit as f64);
        let refused = registry.counter(&catalog::HTTP_CONNECTIONS_REFUSED);
        let timed_out = registry.counter(&catalog::HTTP_CONNECTIONS_TIMED_OUT);
        Self {
            open,
            limit,
            refused: ["over_capacity", "accept_error"].map(|r| refused.get(&[r])),
            timed_out: ["header", "idle"].map(|p| timed_out.get(&[p])),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// A slot for a just-accepted connection, or `None` (counted) when the cap is reached; the
    /// caller then drops the socket, which closes it without reading a byte. `evicted`: the
    /// caller just closed a connection to make room (its slot frees when its task stops).
    pub fn admit(&self, evicted: bool) -> Option<Slot> {
        if self.open.fetch_add(1, Ordering::Relaxed) >= self.limit && !evicted {
            self.open.fetch_sub(1, Ordering::Relaxed);
            self.refused(Refused::OverCapacity);
            return None;
        }
        Some(Slot(self.open.clone()))
    }

    pub fn refused(&self, reason: Refused) {
        self.refused[reason as usize].inc();
    }

    pub fn timed_out(&self, phase: Phase) {
        self.timed_out[phase as usize].inc();
    }
}

/// One open connection; frees its place in the count when dropped.
#[derive(Debug)]
pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Set by the connection's service at each request head; read by the deadline watch and by
/// eviction at the cap.
#[derive(Debug, Default)]
pub struct Activity {
    /// A request head ever arrived (never reset).
    served: AtomicBool,
    /// A request head arrived since the watch last looked.
    recent: AtomicBool,
}

impl Activity {
    /// A complete request head arrived. Plain stores: no read-modify-write per request.
    #[inline]
    pub fn request(&self) {
        self.served.store(true, Ordering::Relaxed);
        self.recent.store(true, Ordering::Relaxed);
    }

    /// Whether the connection ever sent a complete request head.
    pub fn served(&self) -> bool {
        self.served.load(Ordering::Relaxed)
    }

    /// Whether a request arrived since the last call.
    fn take(&self) -> bool {
        self.recent.swap(false, Ordering::Relaxed)
    }
}

/// Connections that have not sent a complete request head yet, oldest first. At the cap the
/// oldest is closed to admit the newcomer, so sockets that sit idle or trickle their head
/// cannot lock clients out for the length of the head deadline.
#[derive(Debug, Default)]
pub struct Unserved {
    queue: VecDeque<(AbortHandle, Arc<Activity>)>,
}

impl Unserved {
    pub fn push(&mut self, task: AbortHandle, activity: Arc<Activity>) {
        self.prune();
        self.queue.push_back((task, activity));
    }

    /// Closes the oldest connection still without a request; `false` when there is none.
    pub fn evict_oldest(&mut self) -> bool {
        self.prune();
        match self.queue.pop_front() {
            Some((task, _)) => {
                task.abort();
                true
            }
            None => false,
        }
    }

    /// Drops entries at the front that were served or have ended. An entry behind a waiting one
    /// stays until that one is served, evicted or closed by its head deadline, so the queue holds
    /// at most the connections accepted within one `header_read_timeout`.
    fn prune(&mut self) {
        while self.queue.front().is_some_and(|(task, activity)| task.is_finished() || activity.served()) {
            self.queue.pop_front();
        }
    }
}

/// The two connection deadlines.
#[derive(Clone, Copy, Debug)]
pub struct Deadlines {
    /// Accept → first complete request head.
    pub header: Duration,
    /// No new request for this long → close (gracefully: a response in progress finishes).
    pub idle: Duration,
}

type ConnResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Serves `conn` under the deadlines: closed at once when no request head arrived within
/// `deadlines.header` of accept, closed gracefully once no new request came for
/// `deadlines.idle`, and closed gracefully when `stop` turns true (shutdown). `close` is the
/// connection's graceful shutdown.
pub async fn guard<C>(
    conn: C,
    close: fn(Pin<&mut C>),
    activity: Arc<Activity>,
    slot: Slot,
    deadlines: Deadlines,
    mut stop: watch::Receiver<bool>,
    connections: Arc<Connections>,
) where
    C: Future<Output = ConnResult>,
{
    let _slot = slot;
    tokio::pin!(conn);
    let timer = tokio::time::sleep(deadlines.header);
    tokio::pin!(timer);
    let stopping = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stopping);
    let mut closing = false;
    loop {
        tokio::select! {
            biased;
            result = &mut conn => {
                ended(result, activity.served(), closing, &connections);
                return;
            }
            () = &mut stopping, if !closing => {
                closing = true;
                close(conn.as_mut());
            }
            () = &mut timer, if !closing => {
                if activity.take() {
                    timer.as_mut().reset(tokio::time::Instant::now() + deadlines.idle);
                } else if activity.served() {
                    connections.timed_out(Phase::Idle);
                    closing = true;
                    close(conn.as_mut());
                } else {
                    // Nothing in flight: dropping the connection closes the socket.
                    connections.timed_out(Phase::Header);
                    return;
                }
            }
        }
    }
}

/// A connection hyper closed by its own HTTP/1 head deadline (which runs from the end of one
/// response to the next head) counts as `idle` once it served a request.
fn ended(result: ConnResult, served: bool, closing: bool, connections: &Connections) {
    let Err(e) = result else { return };
    let timed_out = e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout);
    if timed_out && !closing {
        connections.timed_out(if served { Phase::Idle } else { Phase::Header });
    } else {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// A per-connection service: gives each request the peer address (`ConnectInfo`, for rate
/// limiting and trusted-proxy checks) and marks the connection active.
#[derive(Clone, Debug)]
pub struct ConnService<S> {
    inner: S,
    peer: std::net::SocketAddr,
    activity: Arc<Activity>,
}

impl<S> ConnService<S> {
    pub fn new(inner: S, peer: std::net::SocketAddr, activity: Arc<Activity>) -> Self {
        Self { inner, peer, activity }
    }
}

impl<S, B> tower::Service<http::Request<B>> for ConnService<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        self.activity.request();
        req.extensions_mut().insert(axum::extract::ConnectInfo(self.peer));
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_cap_leaves_room_for_the_store_and_stays_bounded() {
        assert_eq!(derived_limit(Some(1024)), 768);
        assert_eq!(derived_limit(Some(256)), 128);
        assert_eq!(derived_limit(Some(100)), DERIVED_FLOOR as usize);
        assert_eq!(derived_limit(Some(1 << 20)), DERIVED_CEILING as usize);
        assert_eq!(derived_limit(None), DERIVED_CEILING as usize);
    }

    #[test]
    fn admission_stops_at_the_cap_and_frees_on_drop() {
        let registry = Registry::new(Default::default());
        let c = Connections::new(&registry, 2);
        let (a, b) = (c.admit(false), c.admit(false));
        assert!(a.is_some() && b.is_some());
        assert!(c.admit(false).is_none());
        assert_eq!(c.refused[Refused::OverCapacity as usize].get(), 1);
        drop(a);
        assert_eq!(c.open(), 1);
        let again = c.admit(false);
        assert!(again.is_some());
        let over = c.admit(true);
        assert!(over.is_some(), "room was made by an eviction");
        assert_eq!(c.open(), 3);
    }
}
