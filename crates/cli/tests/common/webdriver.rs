//! A headless Chromium driven over the WebDriver protocol (Debian's `chromium` and
//! `chromium-driver`, installed by `.ci/install`): just what the console tests need, spoken over
//! plain HTTP/1.1 to chromedriver on a loopback port.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where Debian puts the browser and its driver, if both are installed.
pub fn find() -> Result<(PathBuf, PathBuf), String> {
    let which = |names: &[&str]| {
        names.iter().map(PathBuf::from).find(|p| p.is_file()).ok_or_else(|| format!("none of {names:?} exists"))
    };
    let browser = which(&["/usr/bin/chromium", "/usr/bin/chromium-browser"])?;
    let driver = which(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"])?;
    Ok((browser, driver))
}

pub struct Driver {
    child: Child,
    port: u16,
}

pub struct Browser<'d> {
    driver: &'d Driver,
    session: String,
    _profile: tempfile::TempDir,
}

impl Driver {
    pub fn start(chromedriver: &Path) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let driver = Driver { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while driver.call("GET", "/status", None).map(|v| v["value"]["ready"] != true).unwrap_or(true) {
            assert!(Instant::now() < deadline, "chromedriver did not become ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        driver
    }

    /// One WebDriver command; the response's JSON, or its error message.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let port = self.port;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .map_err(|e| e.to_string())?;
        let body = read_response(&mut s)?;
        let value: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        if let Some(error) = value["value"]["error"].as_str() {
            return Err(format!("{error}: {}", value["value"]["message"]));
        }
        Ok(value)
    }

    /// A new browser (headless, no sandbox: CI runs as root; its own profile directory).
    pub fn browser(&self, chromium: &Path) -> Browser<'_> {
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", "--no-first-run", "--hide-scrollbars",
                         format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        let v = self.call("POST", "/session", Some(&caps)).expect("new browser session");
        let session = v["value"]["sessionId"].as_str().expect("session id").to_string();
        Browser { driver: self, session, _profile: profile }
    }
}

/// Reads one response: the head, then `Content-Length` bytes or the chunks (not waiting for the
/// server to close the connection).
fn read_response(s: &mut TcpStream) -> Result<String, String> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the response head".into());
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let length =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse::<usize>().ok());
    loop {
        let body = &raw[head_end..];
        let done = match length {
            Some(n) => body.len() >= n,
            None => body.ends_with(b"0\r\n\r\n"),
        };
        if done {
            break;
        }
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&raw[head_end..]).into_owned();
    if length.is_none() && head.contains("transfer-encoding: chunked") {
        return super::dechunk(&body).ok_or_else(|| "bad chunked body".to_string());
    }
    Ok(body)
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser<'_> {
    fn cmd(&self, method: &str, rest: &str, body: Option<Value>) -> Result<Value, String> {
        self.driver.call(method, &format!("/session/{}{rest}", self.session), body.as_ref())
    }

    pub fn go(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({"url": url}))).expect("navigate");
    }

    pub fn url(&self) -> String {
        self.cmd("GET", "/url", None).expect("url")["value"].as_str().unwrap_or_default().to_string()
    }

    pub fn source(&self) -> String {
        self.cmd("GET", "/source", None).expect("source")["value"].as_str().unwrap_or_default().to_string()
    }

    /// The first element matching `css`, if any.
    pub fn find(&self, css: &str) -> Option<String> {
        let v = self.cmd("POST", "/element", Some(json!({"using": "css selector", "value": css}))).ok()?;
        v["value"][ELEMENT].as_str().map(str::to_string)
    }

    /// Waits (up to 30 s, a guard against hangs) for an element matching `css`.
    pub fn wait_for(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(e) = self.find(css) {
                return e;
            }
            assert!(Instant::now() < deadline, "no element {css} on {}:\n{}", self.url(), self.source());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs `op` on the element matching `css`, finding it again when the page replaced it
    /// in between (pages refresh on their own: the element found may be gone by the command).
    fn on_element(&self, css: &str, op: impl Fn(&str) -> Result<Value, String>) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let e = self.wait_for(css);
            match op(&e) {
                Ok(v) => return v,
                Err(err) if replaced(&err) && Instant::now() < deadline => {}
                Err(err) => panic!("{css}: {err}"),
            }
        }
    }

    pub fn click(&self, css: &str) {
        self.on_element(css, |e| self.cmd("POST", &format!("/element/{e}/click"), Some(json!({}))));
    }

    pub fn type_into(&self, css: &str, text: &str) {
        self.on_element(css, |e| {
            self.cmd("POST", &format!("/element/{e}/clear"), Some(json!({})))?;
            self.cmd("POST", &format!("/element/{e}/value"), Some(json!({"text": text})))
        });
    }

    pub fn attribute(&self, css: &str, name: &str) -> Option<String> {
        self.find(css)?;
        let v = self.on_element(css, |e| self.cmd("GET", &format!("/element/{e}/attribute/{name}"), None));
        v["value"].as_str().map(str::to_string)
    }

    pub fn text(&self, css: &str) -> String {
        let v = self.on_element(css, |e| self.cmd("GET", &format!("/element/{e}/text"), None));
        v["value"].as_str().unwrap_or_default().to_string()
    }

    /// Waits (up to 60 s) until `f` holds, reloading nothing itself (pages refresh on their own).
    pub fn eventually(&self, what: &str, f: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !f(self) {
            assert!(Instant::now() < deadline, "gave up waiting for: {what} (at {})", self.url());
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// A PNG of the viewport into `path`.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let v = self.cmd("GET", "/screenshot", None).expect("screenshot");
        let png =
            base64::engine::general_purpose::STANDARD.decode(v["value"].as_str().unwrap_or_default()).expect("base64");
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let _ = self.cmd("DELETE", "", None);
    }
}

/// A WebDriver error saying the element found is no longer in the page (it was re-rendered).
fn replaced(err: &str) -> bool {
    err.contains("stale element") || err.contains("does not belong to the document")
}
