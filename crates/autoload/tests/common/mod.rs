//! Helpers shared by the integration tests: temporary projects, metrics read back.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use compozy_autoload::{AutoloadConfig, Autoloader};
use compozy_telemetry::{Format, Registry, RegistryOptions, render};

pub const PROJECT: &str = "test-project";

pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Self {
        Project { dir: tempfile::tempdir().expect("tempdir") }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.root().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, content).expect("write");
        path
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.root().join(rel)).expect("remove");
    }
}

pub fn tool(id: &str) -> String {
    format!("resource: tool\nid: {id}\ncommand: echo\n")
}

pub fn workflow(id: &str, slug: &str) -> String {
    format!(
        "resource: workflow\nid: {id}\ntriggers:\n  - type: webhook\n    slug: {slug}\ntasks:\n  - id: pause\n    type: wait\n    duration: 1s\n"
    )
}

pub fn metrics() -> Arc<Registry> {
    Registry::new(RegistryOptions::default())
}

pub fn autoloader(project: &Project, config: AutoloadConfig, metrics: &Arc<Registry>) -> Autoloader {
    Autoloader::new(config, project.root(), PROJECT, metrics).expect("valid config")
}

pub fn lenient() -> AutoloadConfig {
    AutoloadConfig { strict: false, ..AutoloadConfig::default() }
}

/// The value of one series in the Prometheus text, e.g.
/// `value(&m, "compozy_autoload_errors_total", &[("error_type", "parse_error")])`.
/// The `project` label is added.
pub fn value(metrics: &Arc<Registry>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = render(metrics, Format::Prometheus);
    let mut want = vec![format!("project=\"{PROJECT}\"")];
    want.extend(labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")));
    let prefix = format!("{name}{{");
    let line = text
        .lines()
        .find(|l| {
            l.starts_with(&prefix) && {
                let inner = &l[prefix.len()..l.find('}').expect("closing brace")];
                let mut got: Vec<&str> = inner.split(',').collect();
                got.sort_unstable();
                let mut want: Vec<&str> = want.iter().map(String::as_str).collect();
                want.sort_unstable();
                got == want
            }
        })
        .unwrap_or_else(|| panic!("no series {name} {labels:?} in:\n{text}"));
    line.rsplit(' ').next().expect("value").parse().expect("number")
}

pub fn errors_metric(metrics: &Arc<Registry>, error_type: &str) -> f64 {
    value(metrics, "compozy_autoload_errors_total", &[("error_type", error_type)])
}
