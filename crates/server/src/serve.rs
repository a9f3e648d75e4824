//! Serving an [`App`] on TCP listeners with graceful shutdown.

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower_http::add_extension::AddExtension;

use crate::app::App;

/// Serves `app` until `shutdown` resolves, then stops accepting, lets in-flight requests
/// finish for up to `server.shutdown_timeout`, and closes what is left.
pub async fn serve(
    app: &App,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(app.server.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    let service = app.service();
    let metrics_service = app.metrics_router.clone();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Some((stream, peer)) = accepted_stream(accepted).await else { continue };
                // The peer address, for rate limiting and trusted-proxy checks (`ConnectInfo`).
                let service = AddExtension::new(service.clone(), ConnectInfo(peer));
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service));
                connections.spawn(log_errors(graceful.watch(conn.into_owned())));
            }
            accepted = accept_optional(metrics_listener.as_ref()) => {
                let (Some((stream, _)), Some(router)) = (accepted_stream(accepted).await, metrics_service.clone()) else { continue };
                let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
                connections.spawn(log_errors(graceful.watch(conn.into_owned())));
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
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(app.shutdown_timeout()) => {
            tracing::warn!(connections = connections.len(), "shutdown deadline passed; aborting remaining connections");
            app.http_metrics().set_aborting();
            connections.abort_all();
            while connections.join_next().await.is_some() {}
        }
    }
    Ok(())
}

async fn accept_optional(listener: Option<&TcpListener>) -> io::Result<(tokio::net::TcpStream, std::net::SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// The accepted stream, or `None` after an accept error. Only resource exhaustion (out of
/// file descriptors or memory) backs off, briefly, instead of spinning; a connection that
/// failed on its own (reset while queued) is skipped at once.
async fn accepted_stream(
    accepted: io::Result<(tokio::net::TcpStream, std::net::SocketAddr)>,
) -> Option<(tokio::net::TcpStream, std::net::SocketAddr)> {
    const EXHAUSTED: [i32; 4] =
        [23 /* ENFILE */, 24 /* EMFILE */, 105 /* ENOBUFS */, 12 /* ENOMEM */];
    match accepted {
        Ok((stream, peer)) => {
            let _ = stream.set_nodelay(true);
            Some((stream, peer))
        }
        Err(e) if e.raw_os_error().is_some_and(|code| EXHAUSTED.contains(&code)) => {
            tracing::warn!(error = %e, "accept failed: out of resources; backing off 50ms");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
        Err(e) => {
            tracing::debug!(error = %e, "accept failed for one connection");
            None
        }
    }
}

async fn log_errors<C>(conn: C)
where
    C: Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>,
{
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "connection ended with an error");
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
