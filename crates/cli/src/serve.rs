//! `compozy serve`: everything one process runs, wired together.

use std::sync::Arc;

use anyhow::Context;
use compozy_auth::Role;
use compozy_autoload::Autoloader;
use compozy_core::Readiness;
use compozy_server::{AppBuilder, api};
use compozy_store::{Cache, Store};
use compozy_telemetry::otlp::{Exporter, OtlpOptions};
use compozy_telemetry::process::{self, BuildInfo};
use compozy_telemetry::traces::{Tracing, TracingOptions};
use compozy_telemetry::{Registry, RegistryOptions};
use compozy_worker::Worker;
use tokio::net::TcpListener;

use crate::config::{Config, Loaded};
use crate::security::{self, Security};

pub fn build_info() -> BuildInfo {
    BuildInfo { version: env!("CARGO_PKG_VERSION"), commit: env!("CPZ_BUILD_COMMIT"), rustc: env!("CPZ_BUILD_RUSTC") }
}

pub fn registry(config: &Config) -> Arc<Registry> {
    let monitoring = &config.monitoring;
    Registry::new(RegistryOptions {
        namespace: monitoring.namespace.clone(),
        series_limit: monitoring.series_limit,
        series_limits: monitoring.series_limits.clone(),
    })
}

/// What a process serves: everything (`serve`), or a worker with only health and metrics
/// endpoints (`compozy worker`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Serves {
    All,
    Worker,
}

pub async fn run(loaded: Loaded, serves: Serves) -> anyhow::Result<()> {
    let Loaded { config, unknown_env, root, file } = loaded;
    for name in unknown_env {
        tracing::warn!(variable = %name, "environment variable names no configuration key; ignored (see `compozy config keys`)");
    }
    tracing::info!(
        config_file = %file.as_ref().map_or_else(|| "(none)".into(), |f| f.display().to_string()),
        project_root = %root.display(),
        "configuration loaded"
    );
    // Before anything opens files: the derived connection cap reads the limit in force.
    let file_limit = compozy_server::connections::raise_file_limit();
    let registry = registry(&config);
    process::register(&registry, build_info());
    let readiness = Readiness::default();
    let ready = readiness.clone();
    process::register_ready(&registry, Arc::new(move || ready.is_ready()));

    let access = compozy_core::private_fs::ensure_private_dir(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    if access == compozy_core::private_fs::DirAccess::Shared {
        tracing::warn!("the data directory is open to other users; `chmod 700` it (its files are 0600)");
    }
    let store = Store::open(&config.database, &config.data_dir, &registry).await.context("cannot open the store")?;
    let _store_probe = store.spawn_health_probe(&readiness, config.database.health_check_interval);
    let cache = Cache::connect(&config.redis, &registry).await.context("cannot connect the cache")?;
    let _cache_probe = cache.spawn_health_probe(&readiness, config.redis.health_check_interval);

    let autoloader = Autoloader::new(config.autoload_config(), &root, &config.project.name, &registry)
        .context("invalid autoload configuration")?;
    // A project is defined by its file: without one there is no root to load resources from.
    let autoload_on = config.autoload.enabled && file.is_some();
    if autoload_on {
        autoloader.register_readiness(&readiness);
        let report = autoloader.load().await.context("the project's resources do not load")?;
        tracing::info!(files = report.files_processed, resources = ?report.loaded, "project loaded");
    } else {
        tracing::info!("no project file (or autoload.enabled: false): resources are not loaded");
    }

    // The worker registers this process in the instances table and heartbeats it (dispatcher).
    let mut worker = Worker::new(config.worker.clone(), store.clone(), Arc::new(autoloader.clone()), &registry)
        .context("invalid worker configuration")?;
    if let Some(url) = &config.database.url {
        worker = worker.listen(url.clone());
    }

    // Webhooks: the receivers are public (senders authenticate by signature); the delivery log
    // and replay are admin routes.
    let webhooks = compozy_webhooks::Webhooks::new(config.webhooks.clone(), worker.clone(), cache.clone(), &registry)
        .map_err(anyhow::Error::msg)
        .context("invalid webhooks configuration")?;
    // Retention: every process prunes (batches are short and, on PostgreSQL, skip what another
    // process is deleting), so an API-only deployment is bounded too.
    let pruner = compozy_worker::Pruner::new(
        worker.queue().clone(),
        config.retention.clone(),
        vec![compozy_webhooks::deliveries::RUN_DEPENDENT],
        webhooks.sweeps(),
        &registry,
    )
    .context("invalid retention configuration")?;
    let pruner_task = pruner.spawn();
    autoloader.on_reload({
        let webhooks = webhooks.clone();
        move |registry| webhooks.prime_metrics(registry)
    });

    let mut builder =
        AppBuilder::new(config.server.clone(), config.monitoring.clone(), registry.clone(), readiness.clone());
    let mut sampler = None;
    if serves == Serves::All {
        security::check_exposure(&config.auth, config.server.listen)?;
        let security = Security::new(&config.auth, &config.data_dir, &store, &cache, &registry)?;
        let mut api = api::resources::routes(autoloader.clone());
        api.extend(api::instances::routes(store.clone()));
        api.extend(compozy_worker::api::routes(worker.clone()));
        let mut admin = api::admin::routes(autoloader.clone());
        admin.extend(compozy_webhooks::admin_routes(&webhooks));
        builder = builder
            .routes(compozy_webhooks::routes(&webhooks))
            .routes(security.own_routes())
            .routes(security.guard("default", None, api))
            .routes(security.guard("admin", Some(Role::Admin), admin));
        if config.console.enabled {
            // Sessions authenticate through the API's guard: failure guard, metrics, rate-limit
            // group `console`.
            let access = security.enabled().then(|| compozy_console::Access {
                guard: security.guard_of("console", None),
                sessions: security.sessions(config.console.session_ttl),
            });
            let console = compozy_console::Console::new(compozy_console::Deps {
                config: config.console.clone(),
                registry: registry.clone(),
                readiness: readiness.clone(),
                worker: worker.clone(),
                webhooks: webhooks.clone(),
                autoloader: autoloader.clone(),
                access,
                version: env!("CARGO_PKG_VERSION"),
                commit: env!("CPZ_BUILD_COMMIT"),
            })
            .map_err(anyhow::Error::msg)
            .context("invalid console configuration")?;
            sampler = Some(console.spawn_sampler());
            builder = builder.pages(console.routes());
        }
    }
    let app = builder.build();

    let listener = bind(config.server.listen, "server.listen").await?;
    let metrics_listener = match config.monitoring.listen {
        Some(addr) => Some(bind(addr, "monitoring.listen").await?),
        None => None,
    };
    tracing::info!(
        addr = %listener.local_addr()?,
        metrics_addr = %metrics_listener.as_ref().map_or(listener.local_addr(), |l| l.local_addr())?,
        metrics_path = %config.monitoring.path,
        data_dir = %config.data_dir.display(),
        project = %config.project.name,
        store = store.backend(),
        cache = cache.backend(),
        mode = if store.backend() == "sqlite" { "embedded" } else { "server" },
        console = if sampler.is_some() { config.console.path.as_str() } else { "off" },
        max_connections = app.connections().limit(),
        file_limit = file_limit.map_or_else(|| "unlimited".to_string(), |n| n.to_string()),
        "compozy listening"
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let watch = if autoload_on && config.autoload.watch {
        Some(autoloader.watch(stopped()).context("cannot watch the project for changes")?)
    } else {
        None
    };
    let sighup = tokio::spawn(reload_on_sighup(autoloader.clone()));
    let worker_task = {
        let (worker, stopped) = (worker.clone(), stopped());
        tokio::spawn(async move {
            if let Err(e) = worker.run(stopped).await {
                tracing::error!(error = %e, "worker stopped with an error");
            }
        })
    };
    let otlp = start_otlp(&config, &registry, stopped())?;

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

    let _ = stop_tx.send(true);
    sighup.abort();
    pruner_task.abort();
    if let Some(task) = sampler {
        task.abort();
    }
    let _ = worker_task.await;
    if let Some(task) = watch {
        let _ = task.await;
    }
    if let Some(task) = otlp {
        let _ = task.await;
    }
    store.close().await;
    tracing::info!("compozy stopped");
    Ok(())
}

/// SIGHUP reloads the project's resources; a failed reload keeps the old ones in service.
async fn reload_on_sighup(autoloader: Autoloader) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
        while hup.recv().await.is_some() {
            match autoloader.reload().await {
                Ok(report) => tracing::info!(files = report.files_processed, "reloaded on SIGHUP"),
                Err(e) => tracing::warn!(error = %e, "reload on SIGHUP failed; previous resources stay in service"),
            }
        }
    }
    #[cfg(not(unix))]
    std::future::pending::<()>().await;
}

async fn bind(addr: std::net::SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} (`{key}`)"))
}

fn start_otlp(
    config: &Config,
    registry: &Arc<Registry>,
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let otlp = &config.monitoring.otlp;
    let Some(endpoint) = &otlp.endpoint else { return Ok(None) };
    let options = OtlpOptions {
        endpoint: endpoint.clone(),
        interval: otlp.interval,
        timeout: otlp.timeout,
        headers: otlp.headers.iter().map(|(k, v)| (k.clone(), v.expose().to_string())).collect(),
        service_name: config.project.name.clone(),
        service_version: env!("CARGO_PKG_VERSION").into(),
    };
    let exporter = Exporter::new(registry.clone(), options).context("cannot build the OTLP client")?;
    tracing::info!(interval = ?otlp.interval, "pushing metrics over OTLP");
    Ok(Some(tokio::spawn(exporter.run(stopped))))
}

/// Starts exporting spans when a traces endpoint is configured (`monitoring.tracing.endpoint`,
/// else `monitoring.otlp.endpoint`); the collector's headers and timeout are `monitoring.otlp`'s.
pub fn start_tracing(config: &Config, runtime: tokio::runtime::Handle) -> anyhow::Result<Option<Tracing>> {
    let monitoring = &config.monitoring;
    let Some(endpoint) = monitoring.traces_endpoint() else { return Ok(None) };
    let options = TracingOptions {
        endpoint: endpoint.to_string(),
        headers: monitoring.otlp.headers.iter().map(|(k, v)| (k.clone(), v.expose().to_string())).collect(),
        timeout: monitoring.otlp.timeout,
        sample_ratio: monitoring.tracing.sample_ratio,
        service_name: config.project.name.clone(),
        service_version: env!("CARGO_PKG_VERSION").into(),
    };
    Ok(Some(Tracing::start(&options, runtime)?))
}
