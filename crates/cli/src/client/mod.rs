//! The client of a running engine's API: `compozy runs|hooks|keys|project|status`.
//!
//! Success bodies are `{"data": …, "message": …}`; errors are RFC 9457 problems, printed as
//! their title and detail. The key comes from `COMPOZY_API_KEY` or the client file
//! ([`credentials`]); the engine's address from `--url`, `COMPOZY_URL`, the client file, or
//! `serve`'s default listen address.

pub mod credentials;
pub mod hooks;
pub mod http;
pub mod keys;
pub mod output;
pub mod project;
pub mod runs;
pub mod status;

use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

pub use http::{Client, ClientError};

/// How answers are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns that fit the terminal's width (long cells are cut with `…`).
    #[default]
    Table,
    /// The answer's `data`, as pretty-printed JSON.
    Json,
}

/// The client's commands, each a group of `crate::client::<group>`.
#[derive(Subcommand)]
pub enum ClientCommand {
    /// Workflow runs: list, show, start, cancel, retry.
    Runs {
        #[command(subcommand)]
        command: runs::RunsCommand,
    },
    /// Webhook deliveries: the log and replay (admin).
    Hooks {
        #[command(subcommand)]
        command: hooks::HooksCommand,
    },
    /// Your API keys: list, create, revoke.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// The project's resources: reload (admin).
    Project {
        #[command(subcommand)]
        command: project::ProjectCommand,
    },
    /// The engine's readiness, component by component (exit 1 when not ready).
    Status,
}

/// Exit status when the engine cannot be reached (`EX_UNAVAILABLE` from sysexits).
const EXIT_UNREACHABLE: u8 = 69;
/// Exit status when the client's own settings are wrong (`EX_CONFIG`).
const EXIT_CONFIG: u8 = 78;

/// Runs `command` against the engine and prints its answer; errors go to stderr.
pub fn run(command: ClientCommand, url: Option<String>, output: Output) -> ExitCode {
    let outcome = credentials::resolve(url).and_then(|settings| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::Setup(format!("cannot start the runtime: {e}")))?;
        runtime.block_on(async {
            let client = Client::new(settings)?;
            dispatch(&client, command, output).await
        })
    });
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(match e {
                ClientError::Unreachable { .. } => EXIT_UNREACHABLE,
                ClientError::Setup(_) => EXIT_CONFIG,
                _ => 1,
            })
        }
    }
}

async fn dispatch(client: &Client, command: ClientCommand, output: Output) -> Result<ExitCode, ClientError> {
    match command {
        ClientCommand::Runs { command } => runs::run(client, command, output).await,
        ClientCommand::Hooks { command } => hooks::run(client, command, output).await,
        ClientCommand::Keys { command } => keys::run(client, command, output).await,
        ClientCommand::Project { command } => project::run(client, command, output).await,
        ClientCommand::Status => status::run(client, output).await,
    }
}
