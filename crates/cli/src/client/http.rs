//! Requests to the engine and what can go wrong with them.

use std::fmt;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use super::credentials::Settings;

/// Why a command failed; `Display` is the line printed after `error: `.
#[derive(Debug)]
pub enum ClientError {
    /// The engine answered with an RFC 9457 problem (or, from something else on the port, with
    /// an error that is not one).
    Problem { status: u16, title: String, detail: Option<String>, hint: Option<String> },
    /// Nothing answered at the URL (refused, unresolvable, timed out).
    Unreachable { url: String, reason: String },
    /// The client's own settings are wrong (URL, client file).
    Setup(String),
    /// Something answered, but not as the engine's API would.
    Protocol(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Problem { status, title, detail, hint } => {
                write!(f, "{title} ({status})")?;
                if let Some(d) = detail {
                    write!(f, ": {d}")?;
                }
                if let Some(h) = hint {
                    write!(f, "\nhint: {h}")?;
                }
                Ok(())
            }
            ClientError::Unreachable { url, reason } => write!(
                f,
                "cannot reach the engine at {url}: {reason}\nhint: is `compozy serve` running there? \
                 Point --url (or COMPOZY_URL) at its address"
            ),
            ClientError::Setup(why) => f.write_str(why),
            ClientError::Protocol(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ClientError {}

/// One engine's API, with the caller's key.
pub struct Client {
    http: reqwest::Client,
    settings: Settings,
}

/// A successful answer: its status and JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// The envelope's `data`.
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    /// The envelope's `message` (empty when there is none).
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
}

impl Client {
    pub fn new(settings: Settings) -> Result<Client, ClientError> {
        // reqwest is built without a default TLS provider (the workspace chooses ring).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("compozy-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Setup(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client { http, settings })
    }

    pub async fn get(&self, path: &str) -> Result<Answer, ClientError> {
        self.send(Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: Option<Value>) -> Result<Answer, ClientError> {
        self.send(Method::POST, path, body, &[]).await
    }

    pub async fn delete(&self, path: &str) -> Result<Answer, ClientError> {
        self.send(Method::DELETE, path, None, &[]).await
    }

    /// `path` with `query`'s set pairs, percent-encoded.
    pub fn with_query(path: &str, query: &[(&str, Option<String>)]) -> String {
        let pairs: Vec<String> =
            query.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v)))).collect();
        if pairs.is_empty() { path.to_string() } else { format!("{path}?{}", pairs.join("&")) }
    }

    /// A request; statuses in `accept` are answers even when they are not 2xx (`/readyz`'s 503).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        accept: &[u16],
    ) -> Result<Answer, ClientError> {
        let url = format!("{}{path}", self.settings.url);
        let mut req = self.http.request(method, &url).header("accept", "application/json");
        if let Some(key) = &self.settings.key {
            req = req.bearer_auth(key);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| self.unreachable(&e))?;
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() || accept.contains(&status.as_u16()) {
            let body = parsed.ok_or_else(|| {
                ClientError::Protocol(format!("{url} answered {status} without JSON; is this a Compozy engine?"))
            })?;
            return Ok(Answer { status: status.as_u16(), body });
        }
        Err(self.problem(status, parsed.as_ref()))
    }

    fn unreachable(&self, e: &reqwest::Error) -> ClientError {
        ClientError::Unreachable { url: self.settings.url.clone(), reason: cause(e) }
    }

    fn problem(&self, status: reqwest::StatusCode, body: Option<&Value>) -> ClientError {
        let text = |k: &str| body.and_then(|b| b[k].as_str()).map(str::to_string);
        let title = text("title").unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
        let mut detail = text("detail");
        // A rejected reload lists each file's errors beside the problem's own fields.
        if let Some(errors) = body.and_then(|b| b["errors"].as_array()).filter(|e| !e.is_empty()) {
            let lines: Vec<String> = errors.iter().map(error_line).collect();
            detail = Some(format!("{}\n  {}", detail.unwrap_or_default(), lines.join("\n  ")));
        }
        let hint = match status.as_u16() {
            401 if self.settings.key.is_none() => Some(format!(
                "no API key: set COMPOZY_API_KEY or `api_key` in {} (mode 0600)",
                self.settings.file.display()
            )),
            _ => None,
        };
        ClientError::Problem { status: status.as_u16(), title, detail, hint }
    }
}

/// The innermost cause: "connection refused" rather than "error sending request".
fn cause(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    if e.is_timeout() { "timed out".to_string() } else { source.to_string() }
}

/// One error of a rejected reload: `file:line: message` when it says where.
fn error_line(e: &Value) -> String {
    let file = e["file"].as_str().or_else(|| e["path"].as_str());
    let message = e["message"].as_str().map_or_else(|| e.to_string(), str::to_string);
    match (file, e["line"].as_u64()) {
        (Some(f), Some(l)) => format!("{f}:{l}: {message}"),
        (Some(f), None) => format!("{f}: {message}"),
        _ => message,
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A path segment from user input (an id), encoded so it stays one segment.
pub fn segment(v: &str) -> String {
    encode(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_segments_are_encoded() {
        let q = Client::with_query("/x", &[("a", Some("b c&d".into())), ("skip", None), ("n", Some("5".into()))]);
        assert_eq!(q, "/x?a=b%20c%26d&n=5");
        assert_eq!(Client::with_query("/x", &[("skip", None)]), "/x");
        assert_eq!(segment("a/b"), "a%2Fb");
    }
}
