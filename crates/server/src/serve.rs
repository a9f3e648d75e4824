//! Serving an [`App`] on TCP listeners: connection cap and deadlines (see
//! [`crate::connections`]), accept back-off, graceful shutdown.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::app::App;
use crate::connections::{Activity, ConnService, Connections, Deadlines, Refused, Slot, Unserved, guard};

/// At most one "out of resources" accept line per this period (the rest are counted).
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Serves `app` until `shutdown` resolves, then stops accepting, lets in-flight requests
/// finish for up to `server.shutdown_timeout`, and closes what is left.
pub async fn serve(
    app: &App,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let builder = builder(app);
    let deadlines = Deadlines { header: app.server.header_read_timeout, idle: app.server.idle_timeout };
    let conns = app.connections().clone();
    let (stop_tx, stop_rx) = watch::channel(false);
    let service = app.service();
    let metrics_service = app.metrics_router.clone();
    let mut accept_errors = AcceptErrors::default();
    let mut unserved = Unserved::default();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Some((stream, peer, slot)) = accept_errors.admit(accepted, &conns, &mut unserved).await else { continue };
                let activity = Arc::new(Activity::default());
                let service = ConnService::new(service.clone(), peer, activity.clone());
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
                    .into_owned();
                let task = guard(conn, |c| c.graceful_shutdown(), activity.clone(), slot, deadlines, stop_rx.clone(), conns.clone());
                unserved.push(connections.spawn(task), activity);
            }
            accepted = accept_optional(metrics_listener.as_ref()) => {
                let Some(router) = metrics_service.clone() else { continue };
                let Some((stream, peer, slot)) = accept_errors.admit(accepted, &conns, &mut unserved).await else { continue };
                let activity = Arc::new(Activity::default());
                let service = ConnService::new(router, peer, activity.clone());
                let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)).into_owned();
                let task = guard(conn, |c| c.graceful_shutdown(), activity.clone(), slot, deadlines, stop_rx.clone(), conns.clone());
                unserved.push(connections.spawn(task), activity);
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    // Not ready first, so load balancers stop sending before the listener closes.
    app.start_draining();
    if !app.server.drain_delay.is_zero() {
        tracing::info!(delay = ?app.server.drain_delay, "draining: /readyz answers 503 before the listener closes");
        tokio::time::sleep(app.server.drain_delay).await;
    }
    drop(listener);
    drop(metrics_listener);
    tracing::info!(deadline = ?app.shutdown_timeout(), "shutting down: finishing in-flight requests");
    let _ = stop_tx.send(true);
    let all_closed = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(app.shutdown_timeout(), all_closed).await.is_ok() {
        tracing::info!("all connections closed");
    } else {
        tracing::warn!(connections = connections.len(), "shutdown deadline passed; aborting remaining connections");
        app.http_metrics().set_aborting();
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
    Ok(())
}

/// HTTP/1 and HTTP/2 settings. hyper's HTTP/1 head deadline runs from the end of a response to
/// the next complete head, so it is the keep-alive idle deadline; the deadline from accept to
/// the first head (which hyper starts only at the first byte) is [`guard`]'s.
fn builder(app: &App) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(app.server.idle_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    builder
}

async fn accept_optional(listener: Option<&TcpListener>) -> io::Result<(TcpStream, std::net::SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Accept failures: counted, backed off exponentially while resources are exhausted, logged at
/// most once per [`ACCEPT_LOG_EVERY`].
#[derive(Default)]
struct AcceptErrors {
    backoff: Option<Duration>,
    last_log: Option<Instant>,
    unlogged: u64,
}

impl AcceptErrors {
    /// The accepted stream with its slot, or `None` after an accept error. At the cap the
    /// oldest connection without a request is closed to make room; with none, the new stream is
    /// dropped (closed without reading a byte).
    async fn admit(
        &mut self,
        accepted: io::Result<(TcpStream, std::net::SocketAddr)>,
        conns: &Connections,
        unserved: &mut Unserved,
    ) -> Option<(TcpStream, std::net::SocketAddr, Slot)> {
        match accepted {
            Ok((stream, peer)) => {
                self.backoff = None;
                let slot = match conns.admit(false) {
                    Some(slot) => slot,
                    None if unserved.evict_oldest() => conns.admit(true)?,
                    None => return None,
                };
                let _ = stream.set_nodelay(true);
                Some((stream, peer, slot))
            }
            Err(e) => {
                conns.refused(Refused::AcceptError);
                self.failed(&e, conns).await;
                None
            }
        }
    }

    /// Only resource exhaustion (out of file descriptors or memory) backs off instead of
    /// spinning; a connection that failed on its own (reset while queued) is skipped at once.
    async fn failed(&mut self, e: &io::Error, conns: &Connections) {
        const EXHAUSTED: [i32; 4] =
            [23 /* ENFILE */, 24 /* EMFILE */, 105 /* ENOBUFS */, 12 /* ENOMEM */];
        if !e.raw_os_error().is_some_and(|code| EXHAUSTED.contains(&code)) {
            tracing::debug!(error = %e, "accept failed for one connection");
            return;
        }
        self.unlogged += 1;
        let delay = self.backoff.map_or(ACCEPT_BACKOFF_MIN, |d| (d * 2).min(ACCEPT_BACKOFF_MAX));
        self.backoff = Some(delay);
        if self.last_log.is_none_or(|t| t.elapsed() >= ACCEPT_LOG_EVERY) {
            tracing::warn!(
                error = %e,
                failures = self.unlogged,
                open = conns.open(),
                limit = conns.limit(),
                "accept failing: out of resources; backing off (lower server.max_connections or raise the file limit)"
            );
            self.last_log = Some(Instant::now());
            self.unlogged = 0;
        }
        tokio::time::sleep(delay).await;
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT"),
        () = term => tracing::info!("received SIGTERM"),
    }
}
