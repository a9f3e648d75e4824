//! `compozy validate [DIR]`: check a project without serving it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::OnceLock;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::config::{AutoloadConfig, ConfigError};
use crate::discovery::Matcher;
use crate::error::{ErrorCategory, LoadError};
use crate::load::{NoProgress, Progress, run};
use crate::resources::ResourceKind;

/// Above this many files the CLI shows a progress bar on stderr.
pub const PROGRESS_THRESHOLD: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Human,
    Json,
}

/// Everything `compozy validate` prints. The caller exits non-zero when [`Self::is_ok`] is false.
#[derive(Clone, Debug, Serialize)]
pub struct ValidationReport {
    pub root: String,
    pub files: usize,
    /// Valid resources by type (all types present).
    pub resources: BTreeMap<ResourceKind, usize>,
    pub error_counts: BTreeMap<ErrorCategory, usize>,
    pub errors: Vec<LoadError>,
}

/// Checks every file the configuration selects, reporting all errors (lenient, whatever
/// `strict` says). `progress` enables the stderr progress bar for large projects.
pub fn validate_project(root: &Path, config: &AutoloadConfig, progress: bool) -> Result<ValidationReport, ConfigError> {
    let config = AutoloadConfig { enabled: true, strict: false, ..config.clone() };
    let matcher = Matcher::new(&config)?;
    let bar = Bar::default();
    let progress: &dyn Progress = if progress { &bar } else { &NoProgress };
    let report = run(root, &config, &matcher, progress).report;
    Ok(ValidationReport {
        root: root.display().to_string(),
        files: report.files_discovered,
        resources: report.loaded.clone(),
        error_counts: report.error_counts(),
        errors: report.errors,
    })
}

impl ValidationReport {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn render(&self, format: OutputFormat) -> String {
        match format {
            OutputFormat::Human => self.render_human(),
            OutputFormat::Json => self.render_json(),
        }
    }

    /// One line per error (`file:line:col: category error: message`), then a summary.
    pub fn render_human(&self) -> String {
        let mut out = String::new();
        for e in &self.errors {
            let _ = writeln!(out, "{e}");
        }
        if !self.errors.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(out, "Checked {} file{} in {}", self.files, plural(self.files), self.root);
        for (kind, n) in &self.resources {
            let _ = writeln!(out, "  {:<10}{n:>6}", format!("{kind}s"));
        }
        if self.errors.is_empty() {
            out.push_str("No errors.\n");
        } else {
            let parts: Vec<String> =
                self.error_counts.iter().filter(|(_, n)| **n > 0).map(|(c, n)| format!("{n} {c}")).collect();
            let n = self.errors.len();
            let _ = writeln!(out, "{n} error{}: {}", plural(n), parts.join(", "));
        }
        out
    }

    pub fn render_json(&self) -> String {
        // Plain data (strings, numbers, maps with string keys): serialization cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A stderr progress bar shown only for projects larger than [`PROGRESS_THRESHOLD`].
#[derive(Default)]
struct Bar(OnceLock<ProgressBar>);

impl Progress for Bar {
    fn start(&self, total: usize) {
        if total > PROGRESS_THRESHOLD {
            let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} files {msg}") {
                bar.set_style(style);
            }
            let _ = self.0.set(bar);
        }
    }

    fn advance(&self) {
        if let Some(bar) = self.0.get() {
            bar.inc(1);
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.0.get() {
            bar.finish_and_clear();
        }
    }
}
