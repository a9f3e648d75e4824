//! What a task does: `wait`, `tool` and `http`. Each attempt ends in an [`Outcome`].

use std::process::Stdio;
use std::time::Duration;

use compozy_autoload::resources::{HttpAction, Tool};
use compozy_autoload::{ToolPaths, ToolRules};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// The end of one attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Success(Value),
    /// A failure retrying may fix.
    Error(String),
    Timeout,
    /// A failure no retry fixes (unknown tool, workflow gone).
    Permanent(String),
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Success(_) => "success",
            Outcome::Error(_) | Outcome::Permanent(_) => "error",
            Outcome::Timeout => "timeout",
        }
    }
}

/// Size caps of one attempt.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub stdout: usize,
    pub stderr: usize,
    pub response: usize,
}

pub async fn wait(duration: Duration, timeout: Duration) -> Outcome {
    if duration > timeout {
        tokio::time::sleep(timeout).await;
        return Outcome::Timeout;
    }
    // A zero wait would still go through the timer wheel (up to a tick of latency).
    if !duration.is_zero() {
        tokio::time::sleep(duration).await;
    }
    Outcome::Success(Value::Null)
}

/// Runs `tool` with `input` as JSON on stdin in its own process group, with only the tool's
/// configured environment; the group is killed at `timeout` (or when this future is dropped).
/// Its program and working directory are checked against the project root again here (autoload
/// checked them at load): a symlink may have changed since.
pub async fn tool(tool: &Tool, rules: &ToolRules, input: &Value, timeout: Duration, limits: Limits) -> Outcome {
    let paths = match rules.check(tool) {
        Ok(p) => p,
        Err(v) => return Outcome::Permanent(format!("tool `{}` refused: {v}", tool.id)),
    };
    let mut child = match command(tool, &paths).spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::Error(format!("could not start tool `{}`: {e}", tool.id)),
    };
    let group = child.id();
    let _killer = GroupKiller(group);
    let run = async {
        let mut stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let body = input.to_string();
        let write = async move {
            if let Some(s) = stdin.as_mut() {
                // A tool that does not read its input is not an error.
                let _ = s.write_all(body.as_bytes()).await;
            }
            drop(stdin);
        };
        let (_, out, err, status) =
            tokio::join!(write, read_capped(stdout, limits.stdout), read_capped(stderr, limits.stderr), child.wait());
        (out, err, status)
    };
    let Ok((out, err, status)) = tokio::time::timeout(timeout, run).await else { return Outcome::Timeout };
    tool_result(out, err, status)
}

fn command(tool: &Tool, paths: &ToolPaths) -> Command {
    let mut cmd = Command::new(&paths.program);
    cmd.args(&tool.args)
        .env_clear()
        .envs(tool.env.iter().map(|(k, v)| (k, v.expose())))
        .current_dir(&paths.working_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    if let Some(path) = std::env::var_os("PATH").filter(|_| !tool.env.contains_key("PATH")) {
        // Only to find the program and its children; nothing else of ours leaks in.
        cmd.env("PATH", path);
    }
    cmd
}

/// Kills the tool's whole process group when the attempt ends, so grandchildren die too.
struct GroupKiller(Option<u32>);

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // No unsafe code here: `kill(1)` signals the group `-pid` (the child leads it).
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Reads at most `cap` bytes; the rest is drained and discarded. `(bytes, overflowed)`.
async fn read_capped<R: AsyncRead + Unpin>(reader: Option<R>, cap: usize) -> (Vec<u8>, bool) {
    let Some(mut r) = reader else { return (Vec::new(), false) };
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    let mut over = false;
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, over),
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                over |= n > room;
            }
        }
    }
}

fn tool_result(
    (out, out_over): (Vec<u8>, bool),
    (err, _): (Vec<u8>, bool),
    status: std::io::Result<std::process::ExitStatus>,
) -> Outcome {
    let stderr = String::from_utf8_lossy(&err);
    match status {
        Err(e) => Outcome::Error(format!("waiting for the tool failed: {e}")),
        Ok(s) if !s.success() => Outcome::Error(format!("tool exited with {s}: {}", stderr.trim())),
        Ok(_) if out_over => Outcome::Error("tool stdout exceeded max_output_bytes".into()),
        Ok(_) if out.iter().all(u8::is_ascii_whitespace) => Outcome::Success(Value::Null),
        Ok(_) => match serde_json::from_slice(&out) {
            Ok(v) => Outcome::Success(v),
            Err(e) => Outcome::Error(format!("tool stdout is not JSON: {e}")),
        },
    }
}

/// The HTTP client activities share (ring's rustls provider, installed once per process).
pub fn http_client() -> Result<reqwest::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().map_err(|e| format!("http client: {e}"))
}

/// Calls the action's URL; 2xx gives `{"status", "body"}` (JSON when it parses, else text).
pub async fn http(
    client: &reqwest::Client,
    action: &HttpAction,
    body: Option<Value>,
    timeout: Duration,
    cap: usize,
) -> Outcome {
    let Ok(method) = reqwest::Method::from_bytes(action.method.as_bytes()) else {
        return Outcome::Permanent(format!("bad method {}", action.method));
    };
    let mut req = client.request(method, action.url.expose()).timeout(timeout);
    for (k, v) in &action.headers {
        req = req.header(k.as_str(), v.expose());
    }
    if let Some(b) = body {
        req = req.header(http::header::CONTENT_TYPE, "application/json").body(b.to_string());
    }
    // The target continues this trace (W3C Trace Context) when tracing is on.
    if let Some(traceparent) = compozy_telemetry::traces::traceparent() {
        req = req.header("traceparent", traceparent);
    }
    let call = async {
        let resp = req.send().await.map_err(|e| describe(&e))?;
        let status = resp.status();
        if compozy_telemetry::traces::enabled() {
            tracing::Span::current().record("http.response.status_code", i64::from(status.as_u16()));
        }
        let bytes = read_body(resp, cap).await?;
        Ok::<_, String>((status, bytes))
    };
    match tokio::time::timeout(timeout, call).await {
        Err(_) => Outcome::Timeout,
        Ok(Err(e)) if e == "timeout" => Outcome::Timeout,
        Ok(Err(e)) => Outcome::Error(e),
        Ok(Ok((status, _))) if !status.is_success() => Outcome::Error(format!("http status {}", status.as_u16())),
        Ok(Ok((status, bytes))) => {
            let body = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
            Outcome::Success(serde_json::json!({ "status": status.as_u16(), "body": body }))
        }
    }
}

/// Errors name their class only: the URL may carry credentials.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "http connect failed".into()
    } else {
        "http request failed".into()
    }
}

async fn read_body(mut resp: reqwest::Response, cap: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
        if out.len() + chunk.len() > cap {
            return Err("http response exceeded max_response_bytes".into());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
