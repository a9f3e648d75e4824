//! `compozy keys list|create|revoke`: the caller's API keys (`/api/v0/auth/*`).

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use super::http::{Client, ClientError, segment};
use super::{Output, output};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Your API keys (an admin's listing is also its own).
    List,
    /// Create a key for yourself; it is printed once and cannot be recovered.
    Create {
        /// A label to recognise the key by.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Revoke a key by id (your own, or anyone's as an admin).
    Revoke { id: String },
}

pub async fn run(client: &Client, command: KeysCommand, out: Output) -> Result<ExitCode, ClientError> {
    match command {
        KeysCommand::List => {
            let answer = client.get("/api/v0/auth/keys").await?;
            let data = answer.data();
            if out == Output::Json {
                output::json(data);
                return Ok(ExitCode::SUCCESS);
            }
            let keys = ["id", "prefix", "name", "role", "created_at", "last_used_at", "revoked_at"];
            let rows: Vec<Vec<String>> = output::items(&data["keys"]).iter().map(|k| output::row(k, &keys)).collect();
            let headers = ["ID", "PREFIX", "NAME", "ROLE", "CREATED", "LAST USED", "REVOKED"];
            print!("{}", output::table(&headers, &rows, output::width()));
        }
        KeysCommand::Create { name } => {
            let answer = client.post("/api/v0/auth/generate", Some(json!({ "name": name }))).await?;
            let data = answer.data();
            if out == Output::Json {
                output::json(data);
                return Ok(ExitCode::SUCCESS);
            }
            // The key alone on stdout (for `KEY=$(compozy keys create)`), the rest on stderr.
            eprintln!(
                "created key {} ({}); it is shown this once:",
                output::cell(&data["key"]["id"]),
                output::cell(&data["key"]["prefix"])
            );
            println!("{}", output::cell(&data["api_key"]));
        }
        KeysCommand::Revoke { id } => {
            let answer = client.delete(&format!("/api/v0/auth/keys/{}", segment(&id))).await?;
            if out == Output::Json {
                output::json(answer.data());
                return Ok(ExitCode::SUCCESS);
            }
            println!("{} ({id})", answer.message());
        }
    }
    Ok(ExitCode::SUCCESS)
}
