//! A running server on a loopback port, and small HTTP helpers for exact assertions.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use compozy_core::Readiness;
use compozy_server::{AppBuilder, MonitoringConfig, ServerConfig};
use compozy_telemetry::{Format, Registry, RegistryOptions, render};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub registry: Arc<Registry>,
    stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start(
        server: ServerConfig,
        monitoring: MonitoringConfig,
        limit: usize,
        routes: impl FnOnce(AppBuilder) -> AppBuilder,
    ) -> TestServer {
        let registry = Registry::new(RegistryOptions { series_limit: limit, ..Default::default() });
        let separate = monitoring.listen.is_some();
        let app = routes(AppBuilder::new(server, monitoring, registry.clone(), Readiness::default())).build();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let metrics_listener =
            if separate { Some(TcpListener::bind("127.0.0.1:0").await.expect("bind metrics")) } else { None };
        let metrics_addr = metrics_listener.as_ref().map(|l| l.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            compozy_server::serve(&app, listener, metrics_listener, async move {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        TestServer { addr, metrics_addr, registry, stop: Some(tx), task }
    }

    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    pub fn text(&self) -> String {
        render(&self.registry, Format::Prometheus)
    }

    pub fn samples(&self) -> HashMap<String, f64> {
        parse_samples(&self.text())
    }

    /// Waits until `sample` reaches `want` (metrics are recorded when hyper drops the response
    /// body, which can be a moment after the client has read it), then returns its value.
    pub async fn settle(&self, sample: &str, want: f64) -> f64 {
        for _ in 0..200 {
            if self.samples().get(sample).copied() == Some(want) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.samples().get(sample).copied().unwrap_or(f64::NAN)
    }
}

/// `name{labels}` → value, exactly as rendered.
pub fn parse_samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

pub fn series(name: &str, method: &str, path: &str, status: &str) -> String {
    format!("{name}{{method=\"{method}\",path=\"{path}\",status_code=\"{status}\"}}")
}

pub fn bucket(name: &str, method: &str, path: &str, status: &str, le: &str) -> String {
    format!("{name}_bucket{{method=\"{method}\",path=\"{path}\",status_code=\"{status}\",le=\"{le}\"}}")
}

/// A raw HTTP/1.1 exchange on a fresh connection (`Connection: close`): returns the status,
/// the raw header block and the decoded body.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.expect("read");
    parse_response(&buf)
}

/// Like [`raw`], but tolerates the server closing the connection without an answer.
pub async fn raw_result(addr: SocketAddr, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request).await?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await?;
    Ok(buf)
}

pub fn parse_response(buf: &[u8]) -> (u16, String, Vec<u8>) {
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").expect("header end");
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
    let rest = &buf[split + 4..];
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(rest) } else { rest.to_vec() };
    (status, head, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") else { return out };
        let size = usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap_or("0").trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 2 + size + 2..];
    }
}

pub fn get_req(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n").into_bytes()
}

pub fn post_req(path: &str, body: &[u8]) -> Vec<u8> {
    let mut r =
        format!("POST {path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\ncontent-length: {}\r\n\r\n", body.len())
            .into_bytes();
    r.extend_from_slice(body);
    r
}

pub fn post_chunked(path: &str, chunks: &[&[u8]]) -> Vec<u8> {
    let mut r = format!("POST {path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n")
        .into_bytes();
    for c in chunks {
        r.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        r.extend_from_slice(c);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"0\r\n\r\n");
    r
}
