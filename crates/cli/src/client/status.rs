//! `compozy status`: `/readyz`, component by component.

use std::process::ExitCode;

use reqwest::Method;

use super::http::{Client, ClientError};
use super::{Output, output};

/// Exit 0 when every component is ready, 1 when one is not (`/readyz` answered 503).
pub async fn run(client: &Client, out: Output) -> Result<ExitCode, ClientError> {
    let answer = client.send(Method::GET, "/readyz", None, &[503]).await?;
    let body = &answer.body;
    let ready = answer.status == 200;
    if out == Output::Json {
        output::json(body);
    } else {
        let rows: Vec<Vec<String>> = body["components"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(name, state)| {
                        let ready = if state["ready"].as_bool() == Some(true) { "yes" } else { "no" };
                        vec![
                            name.clone(),
                            ready.to_string(),
                            output::cell(&state["backend"]),
                            output::cell(&state["reason"]),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default();
        println!("engine: {}", output::cell(&body["status"]));
        print!("{}", output::table(&["COMPONENT", "READY", "BACKEND", "REASON"], &rows, output::width()));
    }
    Ok(if ready { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
