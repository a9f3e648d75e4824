//! A real Prometheus (Debian's package) on a free loopback port, and its HTTP API.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// `None` (with a printed reason) when `tool` is missing and services are not required.
pub fn require_tool(tool: &str) -> Option<()> {
    let found =
        Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success());
    if !found {
        compozy_testkit::service_missing(tool, "not installed; run .ci/install");
    }
    found.then_some(())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// The running server; killed when dropped, so a failing assertion never leaves it behind.
pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
}

impl Prometheus {
    /// Starts Prometheus with `config` (prometheus.yml text) written into `dir`; rule files the
    /// config names are resolved relative to `dir`.
    pub fn start(dir: &Path, config: &str) -> Prometheus {
        Prometheus::start_with_flags(dir, config, &[])
    }

    /// [`Prometheus::start`] with extra command-line flags (`--enable-feature=exemplar-storage`).
    pub fn start_with_flags(dir: &Path, config: &str, flags: &[&str]) -> Prometheus {
        std::fs::write(dir.join("prometheus.yml"), config).expect("write prometheus.yml");
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(flags)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn prometheus");
        Prometheus { child, addr: format!("127.0.0.1:{port}").parse().expect("addr") }
    }

    /// `GET /api/v1/{path}?{param}={value}`, as JSON (`Null` when the exchange fails).
    pub fn api(&self, path: &str, param: &str, value: &str) -> Value {
        let encoded: String = value
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() || b == b'_' { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        super::http(self.addr, "GET", &format!("/api/v1/{path}?{param}={encoded}"), &[])
            .and_then(|(_, _, body)| serde_json::from_str(&body).ok())
            .unwrap_or(Value::Null)
    }

    /// An instant query's answer.
    pub fn query(&self, promql: &str) -> Value {
        self.api("query", "query", promql)
    }

    /// The `trace_id` labels of the exemplars stored for the series `selector` selects (needs
    /// `--enable-feature=exemplar-storage`).
    pub fn exemplar_trace_ids(&self, selector: &str) -> Vec<String> {
        compozy_testkit::prometheus::exemplar_trace_ids(&self.api("query_exemplars", "query", selector))
    }

    /// The names of the alerts in state `firing`.
    pub fn firing(&self) -> Vec<String> {
        let v = self.api("alerts", "x", "");
        let alerts = v["data"]["alerts"].as_array().cloned().unwrap_or_default();
        alerts
            .iter()
            .filter(|a| a["state"] == "firing")
            .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_string))
            .collect()
    }

    /// The names of the alerts that were firing at any rule evaluation within `window` (a
    /// PromQL duration): Prometheus writes each active alert's state into its `ALERTS` series,
    /// so an alert whose fault has since ended is still seen.
    pub fn fired(&self, window: &str) -> Vec<String> {
        let v =
            self.query(&format!("count by (alertname) (count_over_time(ALERTS{{alertstate=\"firing\"}}[{window}]))"));
        let series = v["data"]["result"].as_array().cloned().unwrap_or_default();
        series.iter().filter_map(|s| s["metric"]["alertname"].as_str().map(str::to_string)).collect()
    }

    /// Polls `f` until it holds or `limit` passes; returns whether it held.
    pub fn wait_for(&self, limit: Duration, f: impl Fn(&Prometheus) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if f(self) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
