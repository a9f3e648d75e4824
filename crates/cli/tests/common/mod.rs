//! A `compozy serve` child process on a loopback port, and plain HTTP/1.1 requests to it.

#![allow(dead_code)]

pub mod console;
pub mod prometheus;
pub mod proxy;
pub mod services;
pub mod webdriver;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_compozy");

pub struct Engine {
    pub child: Child,
    pub addr: SocketAddr,
    /// An admin's API key, sent with every request that brings no credential of its own.
    pub key: String,
    /// The engine's WARN and ERROR log lines (JSON) so far.
    pub warnings: Arc<Mutex<Vec<String>>>,
}

impl Engine {
    /// Creates an admin (`compozy admin create-user`), then starts `compozy [args] serve` in
    /// `dir` with JSON logs and waits for its "listening" line.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Engine {
        // A restart in the same directory (same store) keeps the admin created the first time.
        let saved = dir.join("admin.key");
        let key = std::fs::read_to_string(&saved).unwrap_or_else(|_| {
            let key = create_user(dir, args, env, "admin@example.com", "admin");
            std::fs::write(&saved, &key).expect("save the admin key");
            key
        });
        Engine::spawn(dir, args, "serve", env, key)
    }

    /// [`Engine::start`] with the process's file limit, soft and hard, lowered to `nofile`
    /// (`ulimit -n` in a shell that then execs the engine).
    pub fn start_with_file_limit(dir: &Path, args: &[&str], env: &[(&str, String)], nofile: u64) -> Engine {
        let key = create_user(dir, args, env, "admin@example.com", "admin");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &format!("ulimit -n {nofile} && exec \"$0\" \"$@\""), BIN]);
        Engine::spawn_command(cmd, dir, args, "serve", env, key)
    }

    /// Starts `compozy [args] worker` (health and metrics endpoints only, no API, no key) like
    /// [`Engine::start`].
    pub fn start_worker(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Engine {
        Engine::spawn(dir, args, "worker", env, String::new())
    }

    fn spawn(dir: &Path, args: &[&str], command: &str, env: &[(&str, String)], key: String) -> Engine {
        Engine::spawn_command(Command::new(BIN), dir, args, command, env, key)
    }

    fn spawn_command(
        mut cmd: Command,
        dir: &Path,
        args: &[&str],
        command: &str,
        env: &[(&str, String)],
        key: String,
    ) -> Engine {
        cmd.args(args)
            .args([command, "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("data"))
            .current_dir(dir)
            .env("COMPOZY_LOG_FORMAT", "json")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn compozy");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let addr = loop {
            let line = lines.next().expect("compozy exited before listening").expect("log line");
            let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
            if v["message"] == "compozy listening" {
                break v["addr"].as_str().expect("addr").parse().expect("socket addr");
            }
        };
        let warnings = Arc::new(Mutex::new(Vec::new()));
        let kept = warnings.clone();
        std::thread::spawn(move || {
            // Read to the end past any bad line, so the engine never blocks on a full pipe.
            for line in lines {
                let Ok(line) = line else { continue };
                if line.contains(r#""level":"WARN""#) || line.contains(r#""level":"ERROR""#) {
                    kept.lock().unwrap_or_else(PoisonError::into_inner).push(line);
                }
            }
        });
        Engine { child, addr, key, warnings }
    }

    /// `(status, lower-cased header block, body)`; authenticated as the admin unless `headers`
    /// bring an `authorization` or `x-api-key` of their own.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
        let own =
            headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("authorization") || k.eq_ignore_ascii_case("x-api-key"));
        let bearer = format!("Bearer {}", self.key);
        let mut all = headers.to_vec();
        if !own && !self.key.is_empty() {
            all.push(("authorization", &bearer));
        }
        http(self.addr, method, path, &all).expect("HTTP exchange")
    }

    pub fn get(&self, path: &str) -> (u16, String, String) {
        self.request("GET", path, &[])
    }

    /// The value of the sample written exactly `sample` (name and labels) in `/metrics`.
    pub fn metric(&self, sample: &str) -> Option<f64> {
        let (_, _, text) = self.get("/metrics");
        text.lines().find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
    }

    /// The WARN and ERROR lines logged so far whose message starts with `message`.
    pub fn warnings_starting(&self, message: &str) -> Vec<serde_json::Value> {
        let lines = self.warnings.lock().unwrap_or_else(PoisonError::into_inner);
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["message"].as_str().is_some_and(|m| m.starts_with(message)))
            .collect()
    }

    /// Polls until `f` holds (a guard against hangs, not a timing assertion).
    pub fn eventually(&self, what: &str, f: impl Fn(&Engine) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !f(self) {
            assert!(Instant::now() < deadline, "gave up waiting for: {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: the process dies mid-work, as in a crash.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(mut self) -> ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "compozy did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `compozy [args] admin create-user` with the engine's data directory and environment: the key.
pub fn create_user(dir: &Path, args: &[&str], env: &[(&str, String)], email: &str, role: &str) -> String {
    std::fs::create_dir_all(dir).expect("engine directory");
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .args(["admin", "create-user", "--email", email, "--role", role, "--data-dir"])
        .arg(dir.join("data"))
        .current_dir(dir)
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run compozy admin create-user");
    assert!(out.status.success(), "create-user failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 key").trim().to_string()
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request on a fresh connection; `None` when nothing listens yet or the exchange breaks.
pub fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Option<(u16, String, String)> {
    exchange(addr, method, path, headers, "")
}

/// A POST with `body`, like [`http`].
pub fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &str) -> Option<(u16, String, String)> {
    exchange(addr, "POST", path, headers, body)
}

fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String, String)> {
    let (status, head, body) = exchange_raw(addr, method, path, headers, body)?;
    Some((status, head.to_ascii_lowercase(), body))
}

/// [`http`] or [`post`] with the header block as sent (cookie values keep their case).
pub fn exchange_raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let len = body.len();
    write!(s, "{method} {path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\ncontent-length: {len}\r\n{extra}\r\n{body}")
        .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok())?;
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    let body = if chunked { dechunk(body)? } else { body.to_string() };
    Some((status, head.to_string(), body))
}

/// The payload of a chunked body (`size CRLF data CRLF ... 0 CRLF CRLF`).
fn dechunk(mut rest: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(after.get(..size)?);
        rest = after.get(size..)?.strip_prefix("\r\n")?;
    }
}
