//! Serving an [`App`] on TCP listeners with graceful shutdown.

use std::future::Future;
use std::io;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

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
    let service = app.service();
    let metrics_service = app.metrics_router.clone();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Some(stream) = accepted_stream(accepted).await else { continue };
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service.clone()));
                spawn_connection(graceful.watch(conn.into_owned()));
            }
            accepted = accept_optional(metrics_listener.as_ref()) => {
                let (Some(stream), Some(router)) = (accepted_stream(accepted).await, metrics_service.clone()) else { continue };
                let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
                spawn_connection(graceful.watch(conn.into_owned()));
            }
            () = &mut shutdown => break,
        }
    }
    app.start_draining();
    drop(listener);
    drop(metrics_listener);
    tracing::info!(deadline = ?app.shutdown_timeout(), "shutting down: finishing in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(app.shutdown_timeout()) => {
            tracing::warn!("shutdown deadline passed; closing remaining connections");
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

/// The accepted stream, or `None` after logging an accept error (backing off briefly when the
/// process is out of file descriptors, instead of spinning).
async fn accepted_stream(
    accepted: io::Result<(tokio::net::TcpStream, std::net::SocketAddr)>,
) -> Option<tokio::net::TcpStream> {
    match accepted {
        Ok((stream, _peer)) => {
            let _ = stream.set_nodelay(true);
            Some(stream)
        }
        Err(e) => {
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

fn spawn_connection<C>(conn: C)
where
    C: Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    });
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
