//! `compozy runs list|show|start|cancel|retry`: `/api/v0/executions` and
//! `/api/v0/workflows/{id}/executions`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{Value, json};

use super::http::{Answer, Client, ClientError, segment};
use super::{Output, output};

#[derive(Subcommand)]
pub enum RunsCommand {
    /// Runs, newest first.
    List {
        /// Only runs of this workflow.
        #[arg(long)]
        workflow: Option<String>,
        /// Only runs in this status (pending, running, succeeded, failed, cancelled).
        #[arg(long)]
        status: Option<String>,
        /// Runs per page (1–500).
        #[arg(long)]
        limit: Option<u32>,
        /// The next page: the cursor printed under the previous one.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// One run, with its tasks.
    Show { id: String },
    /// Start a run of a workflow.
    Start {
        workflow: String,
        /// The run's input, as JSON (default `{}`).
        #[arg(long, conflicts_with = "input_file")]
        input: Option<String>,
        /// Read the input from this JSON file (`-` for stdin).
        #[arg(long)]
        input_file: Option<PathBuf>,
    },
    /// Cancel a pending or running run.
    Cancel { id: String },
    /// Start a new run with a failed or cancelled run's workflow and input, linked to it.
    Retry { id: String },
}

pub async fn run(client: &Client, command: RunsCommand, out: Output) -> Result<ExitCode, ClientError> {
    match command {
        RunsCommand::List { workflow, status, limit, cursor } => {
            let query = [
                ("workflow_id", workflow),
                ("status", status),
                ("limit", limit.map(|l| l.to_string())),
                ("cursor", cursor),
            ];
            let answer = client.get(&Client::with_query("/api/v0/executions", &query)).await?;
            list(&answer, out);
        }
        RunsCommand::Show { id } => {
            let answer = client.get(&format!("/api/v0/executions/{}", segment(&id))).await?;
            show(&answer, out);
        }
        RunsCommand::Start { workflow, input, input_file } => {
            let input = read_input(input, input_file)?;
            let path = format!("/api/v0/workflows/{}/executions", segment(&workflow));
            let answer = client.post(&path, Some(json!({ "input": input }))).await?;
            started(&answer, out);
        }
        RunsCommand::Cancel { id } => {
            let answer = client.post(&format!("/api/v0/executions/{}/cancel", segment(&id)), None).await?;
            started(&answer, out);
        }
        RunsCommand::Retry { id } => {
            let answer = client.post(&format!("/api/v0/executions/{}/retry", segment(&id)), None).await?;
            started(&answer, out);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_input(inline: Option<String>, file: Option<PathBuf>) -> Result<Value, ClientError> {
    let (text, from) = match (inline, file) {
        (Some(t), _) => (t, "--input".to_string()),
        (None, Some(p)) if p.as_os_str() == "-" => {
            let text = std::io::read_to_string(std::io::stdin())
                .map_err(|e| ClientError::Setup(format!("cannot read the input from stdin: {e}")))?;
            (text, "stdin".to_string())
        }
        (None, Some(p)) => {
            let text = std::fs::read_to_string(&p)
                .map_err(|e| ClientError::Setup(format!("cannot read {}: {e}", p.display())))?;
            (text, p.display().to_string())
        }
        (None, None) => return Ok(json!({})),
    };
    serde_json::from_str(&text).map_err(|e| ClientError::Setup(format!("{from} is not JSON: {e}")))
}

const LIST_COLUMNS: [&str; 6] = ["id", "workflow_id", "status", "created_at", "finished_at", "error"];

fn list(answer: &Answer, out: Output) {
    let data = answer.data();
    if out == Output::Json {
        return output::json(data);
    }
    let rows: Vec<Vec<String>> =
        output::items(&data["executions"]).iter().map(|r| output::row(r, &LIST_COLUMNS)).collect();
    print!("{}", output::table(&["ID", "WORKFLOW", "STATUS", "CREATED", "FINISHED", "ERROR"], &rows, output::width()));
    if let Some(next) = data["next_cursor"].as_str() {
        eprintln!("more: --cursor {next}");
    }
}

fn show(answer: &Answer, out: Output) {
    let data = answer.data();
    if out == Output::Json {
        return output::json(data);
    }
    let run = &data["execution"];
    let keys = [
        "id",
        "workflow_id",
        "status",
        "created_at",
        "started_at",
        "finished_at",
        "error",
        "retry_of",
        "retried_by",
        "input",
        "output",
    ];
    let pairs: Vec<(&str, String)> = keys.iter().map(|k| (*k, output::cell(&run[*k]))).collect();
    let width = output::width();
    print!("{}", output::fields(&pairs, width));
    let tasks = output::items(&data["tasks"]);
    if !tasks.is_empty() {
        let rows: Vec<Vec<String>> = tasks
            .iter()
            .map(|t| {
                let mut r = output::row(t, &["position", "name", "kind", "state"]);
                r.push(format!("{}/{}", output::cell(&t["attempt"]), output::cell(&t["max_attempts"])));
                r.push(output::cell(&t["last_error"]));
                r
            })
            .collect();
        println!();
        print!("{}", output::table(&["#", "TASK", "KIND", "STATE", "ATTEMPTS", "LAST ERROR"], &rows, width));
    }
}

/// The answer of start, cancel and retry: the run and what happened to it.
fn started(answer: &Answer, out: Output) {
    let data = answer.data();
    if out == Output::Json {
        return output::json(data);
    }
    let mut pairs = vec![("execution", output::cell(&data["execution_id"])), ("status", output::cell(&data["status"]))];
    for key in ["workflow_id", "retry_of"] {
        if !data[key].is_null() {
            pairs.push((key, output::cell(&data[key])));
        }
    }
    println!("{}", answer.message());
    print!("{}", output::fields(&pairs, output::width()));
}
