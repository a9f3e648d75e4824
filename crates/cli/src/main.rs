//! `compozy`: the workflow engine's command line.

mod client;
mod config;
mod logging;
mod security;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::Value;

use crate::config::{Sources, default_file, env_name, leaf_keys, load};

/// mimalloc instead of glibc's malloc: allocation was a fifth of the engine's CPU under webhook
/// load (per-request headers, JSON values, CEL contexts); see docs/performance.md. The
/// `system-alloc` feature keeps glibc's, so that heap profilers (heaptrack, massif) see every
/// allocation (docs/performance.md, "Soak").
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "compozy", version, about = "Compozy workflow engine")]
struct Cli {
    /// Project configuration file (default: ./compozy.yaml when it exists).
    #[arg(long, short = 'c', global = true, env = "COMPOZY_CONFIG")]
    config: Option<PathBuf>,
    /// The engine's address, for the client commands (default: the client file's `url`, else
    /// `serve`'s default listen address).
    #[arg(long, global = true, env = "COMPOZY_URL")]
    url: Option<String>,
    /// How the client commands print answers.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = client::Output::Table)]
    output: client::Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine: HTTP API and /metrics (embedded mode when no database is configured).
    Serve {
        /// Listen address, e.g. 127.0.0.1:5001 (overrides `server.listen`).
        #[arg(long)]
        listen: Option<String>,
        /// Data directory for embedded state (overrides `data_dir`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Run only a worker (with /healthz, /readyz and /metrics): any number share one PostgreSQL.
    Worker {
        /// Listen address of the health and metrics endpoints (overrides `server.listen`).
        #[arg(long)]
        listen: Option<String>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Apply the store's migrations (also done at `serve` start unless `database.auto_migrate: false`).
    Migrate,
    /// Check a project's resources without serving: errors with file and line, a summary by type.
    Validate {
        /// Project root (default: the configuration file's directory, or the current one).
        dir: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = ValidateFormat::Human)]
        format: ValidateFormat,
    },
    /// Users and API keys (bootstrap the first admin).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Print version, commit and compiler.
    Version,
    #[command(flatten)]
    Client(client::ClientCommand),
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a user and its first API key; the key is printed once and cannot be recovered.
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long, value_enum, default_value_t = RoleArg::User)]
        role: RoleArg,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Admin,
    User,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration (file + environment + defaults), secrets redacted.
    Show {
        #[arg(long, value_enum, default_value_t = OutputFormat::Yaml)]
        format: OutputFormat,
    },
    /// List every configuration key with its environment variable and default.
    Keys,
}

#[derive(Clone, Copy, ValueEnum)]
enum ValidateFormat {
    Human,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    Yaml,
    Json,
}

fn sources(cli_config: Option<PathBuf>, flags: Vec<(&'static str, &'static str, Value)>) -> Sources {
    Sources { file: cli_config.or_else(default_file), env: std::env::vars().collect(), flags }
}

/// `EX_CONFIG` from sysexits: the configuration is wrong (2 stays clap's usage error).
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            let config_error = e.downcast_ref::<config::ConfigError>().is_some();
            ExitCode::from(if config_error { EXIT_CONFIG } else { 1 })
        }
    }
}

/// Panics go through the log (one structured line with their location) instead of the default
/// hook's plain text; the message is cut short because it may quote request input.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("");
        let message: String = message.chars().take(160).collect();
        tracing::error!(location, message, "panic");
    }));
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Client(command) => return Ok(client::run(command, cli.url, cli.output)),
        Command::Version => {
            let b = serve::build_info();
            println!("compozy {} (commit {}, rustc {})", b.version, b.commit, b.rustc);
        }
        Command::Config { command: ConfigCommand::Keys } => {
            for (key, default) in leaf_keys() {
                println!("{key}\t{}\t{default}", env_name(&key));
            }
        }
        Command::Config { command: ConfigCommand::Show { format } } => {
            let loaded = load(sources(cli.config, Vec::new()))?;
            match format {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&loaded.config)?),
                OutputFormat::Yaml => print!("{}", serde_saphyr::to_string(&loaded.config)?),
            }
        }
        Command::Migrate => {
            let loaded = load(sources(cli.config, Vec::new()))?;
            logging::init(&loaded.config.log, None)?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let config = &loaded.config;
                compozy_core::private_fs::ensure_private_dir(&config.data_dir)?;
                let store =
                    compozy_store::Store::connect(&config.database, &config.data_dir, &serve::registry(config)).await?;
                store.migrate().await?;
                println!("migrations applied ({})", store.backend());
                store.close().await;
                anyhow::Ok(())
            })?;
        }
        Command::Validate { dir, format } => {
            let loaded = load(sources(cli.config, Vec::new()))?;
            let root = dir.unwrap_or(loaded.root);
            let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let report = compozy_autoload::validate_project(&root, &loaded.config.autoload_config(), progress)?;
            let format = match format {
                ValidateFormat::Human => compozy_autoload::OutputFormat::Human,
                ValidateFormat::Json => compozy_autoload::OutputFormat::Json,
            };
            print!("{}", report.render(format));
            if !report.is_ok() {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Admin { command: AdminCommand::CreateUser { email, role, data_dir } } => {
            let role = match role {
                RoleArg::Admin => compozy_auth::Role::Admin,
                RoleArg::User => compozy_auth::Role::User,
            };
            create_user(cli.config, data_dir, &email, role)?;
        }
        Command::Serve { listen, data_dir } => serve_command(cli.config, listen, data_dir, serve::Serves::All)?,
        Command::Worker { listen, data_dir } => serve_command(cli.config, listen, data_dir, serve::Serves::Worker)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens the store like `serve` does (same data directory, same secret) and creates the user.
fn create_user(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    email: &str,
    role: compozy_auth::Role,
) -> anyhow::Result<()> {
    let flags =
        data_dir.map(|d| ("data_dir", "data-dir", Value::String(d.display().to_string()))).into_iter().collect();
    let loaded = load(sources(config, flags))?;
    logging::init(&loaded.config.log, None)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let config = &loaded.config;
        compozy_core::private_fs::ensure_private_dir(&config.data_dir)?;
        let registry = serve::registry(config);
        let store = compozy_store::Store::open(&config.database, &config.data_dir, &registry).await?;
        let auth = security::authenticator(&config.auth, &config.data_dir, &store, &registry)?;
        let created = compozy_auth::create_user_with_key(&auth, email, role).await;
        store.close().await;
        let (user, key) = created?;
        eprintln!("created {} user {} ({}); its API key, shown this once:", role.as_str(), user.email, user.id);
        println!("{key}");
        anyhow::Ok(())
    })
}

fn serve_command(
    config: Option<PathBuf>,
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    serves: serve::Serves,
) -> anyhow::Result<()> {
    let mut flags = Vec::new();
    if let Some(l) = listen {
        flags.push(("server.listen", "listen", Value::String(l)));
    }
    if let Some(d) = data_dir {
        flags.push(("data_dir", "data-dir", Value::String(d.display().to_string())));
    }
    let loaded = load(sources(config, flags))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    // Before logging: the subscriber is built once, with the exporter's layer in it.
    let tracing = serve::start_tracing(&loaded.config, runtime.handle().clone())?;
    logging::init(&loaded.config.log, tracing.as_ref())?;
    install_panic_hook();
    let served = runtime.block_on(serve::run(loaded, serves));
    // Off the runtime's threads (the flush's requests run on them), before the runtime goes.
    if let Some(tracing) = tracing {
        tracing.shutdown();
    }
    served
}
