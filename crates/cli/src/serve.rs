//! `compozy serve`: everything one process runs, wired together.

use std::sync::Arc;

use anyhow::Context;
use compozy_core::Readiness;
use compozy_server::AppBuilder;
use compozy_telemetry::otlp::{Exporter, OtlpOptions};
use compozy_telemetry::process::{self, BuildInfo};
use compozy_telemetry::{Registry, RegistryOptions};
use tokio::net::TcpListener;

use crate::config::Loaded;

pub fn build_info() -> BuildInfo {
    BuildInfo { version: env!("CARGO_PKG_VERSION"), commit: env!("CPZ_BUILD_COMMIT"), rustc: env!("CPZ_BUILD_RUSTC") }
}

pub async fn run(loaded: Loaded) -> anyhow::Result<()> {
    let Loaded { config, unknown_env, root, file } = loaded;
    for name in unknown_env {
        tracing::warn!(variable = %name, "environment variable names no configuration key; ignored (see `compozy config keys`)");
    }
    tracing::info!(
        config_file = %file.as_ref().map_or_else(|| "(none)".into(), |f| f.display().to_string()),
        project_root = %root.display(),
        "configuration loaded"
    );
    let monitoring = &config.monitoring;
    let registry = Registry::new(RegistryOptions {
        namespace: monitoring.namespace.clone(),
        series_limit: monitoring.series_limit,
        series_limits: monitoring.series_limits.clone(),
    });
    process::register(&registry, build_info());
    let readiness = Readiness::default();
    let ready = readiness.clone();
    process::register_ready(&registry, Arc::new(move || ready.is_ready()));

    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;

    let app = AppBuilder::new(config.server.clone(), monitoring.clone(), registry.clone(), readiness).build();
    let listener = bind(config.server.listen, "server.listen").await?;
    let metrics_listener = match monitoring.listen {
        Some(addr) => Some(bind(addr, "monitoring.listen").await?),
        None => None,
    };
    tracing::info!(
        addr = %listener.local_addr()?,
        metrics_addr = %metrics_listener.as_ref().map_or(listener.local_addr(), |l| l.local_addr())?,
        metrics_path = %monitoring.path,
        data_dir = %config.data_dir.display(),
        project = %config.project.name,
        mode = "embedded",
        "compozy listening"
    );

    let (stop_otlp, otlp_task) = start_otlp(&config, &registry)?;
    let shutdown = async {
        compozy_server::shutdown_signal().await;
        // A second signal means "now": skip the graceful deadline.
        tokio::spawn(async {
            compozy_server::shutdown_signal().await;
            tracing::warn!("second signal: exiting without waiting for in-flight requests");
            std::process::exit(130);
        });
    };
    compozy_server::serve(&app, listener, metrics_listener, shutdown).await?;
    if let (Some(stop), Some(task)) = (stop_otlp, otlp_task) {
        let _ = stop.send(());
        let _ = task.await;
    }
    tracing::info!("compozy stopped");
    Ok(())
}

async fn bind(addr: std::net::SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} (`{key}`)"))
}

type OtlpHandles = (Option<tokio::sync::oneshot::Sender<()>>, Option<tokio::task::JoinHandle<()>>);

fn start_otlp(config: &crate::config::Config, registry: &Arc<Registry>) -> anyhow::Result<OtlpHandles> {
    let otlp = &config.monitoring.otlp;
    let Some(endpoint) = &otlp.endpoint else { return Ok((None, None)) };
    let options = OtlpOptions {
        endpoint: endpoint.clone(),
        interval: otlp.interval,
        timeout: otlp.timeout,
        headers: otlp.headers.iter().map(|(k, v)| (k.clone(), v.expose().to_string())).collect(),
        service_name: config.project.name.clone(),
        service_version: env!("CARGO_PKG_VERSION").into(),
    };
    let exporter = Exporter::new(registry.clone(), options).context("cannot build the OTLP client")?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tracing::info!(interval = ?otlp.interval, "pushing metrics over OTLP");
    let task = tokio::spawn(exporter.run(async move {
        let _ = rx.await;
    }));
    Ok((Some(tx), Some(task)))
}
