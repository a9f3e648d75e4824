//! `compozy hooks deliveries|replay`: the webhook delivery log and replay (admin routes).

use std::process::ExitCode;

use clap::Subcommand;

use super::http::{Client, ClientError, segment};
use super::{Output, output};

#[derive(Subcommand)]
pub enum HooksCommand {
    /// Webhook deliveries, newest first.
    Deliveries {
        /// Only deliveries to this webhook slug.
        #[arg(long)]
        slug: Option<String>,
        /// Only deliveries with this result (e.g. accepted).
        #[arg(long)]
        result: Option<String>,
        /// Deliveries per page (1–500).
        #[arg(long)]
        limit: Option<u32>,
        /// The next page: the cursor printed under the previous one.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Run a stored delivery again with the current configuration (its payload must be kept:
    /// `webhooks.retention`).
    Replay { id: String },
}

pub async fn run(client: &Client, command: HooksCommand, out: Output) -> Result<ExitCode, ClientError> {
    match command {
        HooksCommand::Deliveries { slug, result, limit, cursor } => {
            let query =
                [("slug", slug), ("result", result), ("limit", limit.map(|l| l.to_string())), ("cursor", cursor)];
            let answer = client.get(&Client::with_query("/api/v0/hooks/deliveries", &query)).await?;
            let data = answer.data();
            if out == Output::Json {
                output::json(data);
                return Ok(ExitCode::SUCCESS);
            }
            let keys = ["id", "slug", "event", "result", "run_id", "replay_of", "created_at"];
            let rows: Vec<Vec<String>> =
                output::items(&data["deliveries"]).iter().map(|d| output::row(d, &keys)).collect();
            let headers = ["ID", "SLUG", "EVENT", "RESULT", "RUN", "REPLAY OF", "CREATED"];
            print!("{}", output::table(&headers, &rows, output::width()));
            if let Some(next) = data["next"].as_str().or_else(|| data["next_cursor"].as_str()) {
                eprintln!("more: --cursor {next}");
            }
        }
        HooksCommand::Replay { id } => {
            let answer = client.post(&format!("/api/v0/hooks/deliveries/{}/replay", segment(&id)), None).await?;
            let data = answer.data();
            if out == Output::Json {
                output::json(data);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{}", answer.message());
            let pairs: Vec<(&str, String)> =
                ["status", "event", "delivery_id", "run_id"].iter().map(|k| (*k, output::cell(&data[*k]))).collect();
            print!("{}", output::fields(&pairs, output::width()));
        }
    }
    Ok(ExitCode::SUCCESS)
}
