//! `compozy project reload`: reload the project's resources now (admin).

use std::process::ExitCode;

use clap::Subcommand;

use super::http::{Client, ClientError};
use super::{Output, output};

#[derive(Subcommand)]
pub enum ProjectCommand {
    /// Reload the project's resources; when they do not load, the errors are printed and the
    /// previous resources stay in service.
    Reload,
}

pub async fn run(client: &Client, command: ProjectCommand, out: Output) -> Result<ExitCode, ClientError> {
    match command {
        ProjectCommand::Reload => {
            let answer = client.post("/api/v0/admin/reload", None).await?;
            let data = answer.data();
            if out == Output::Json {
                output::json(data);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{}", answer.message());
            let loaded = data["loaded"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| format!("{k} {}", output::cell(v))).collect::<Vec<_>>().join(", "))
                .unwrap_or_else(|| "-".to_string());
            let mut pairs = vec![
                ("files", output::cell(&data["files_processed"])),
                ("failed", output::cell(&data["files_failed"])),
                ("loaded", loaded),
            ];
            // The duration under whichever name (and unit) the engine gives it.
            if let Some((k, v)) = data.as_object().and_then(|m| m.iter().find(|(k, _)| k.starts_with("duration"))) {
                pairs.push((k.as_str(), output::cell(v)));
            }
            print!("{}", output::fields(&pairs, output::width()));
        }
    }
    Ok(ExitCode::SUCCESS)
}
