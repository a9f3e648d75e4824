//! The `autoload:` block of `compozy.yaml`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Patterns always excluded: editor swap and backup files, VCS metadata, dependency trees, and
/// Kubernetes ConfigMap internals (`..data`, `..2024_…`), which would otherwise be found twice.
pub const DEFAULT_EXCLUDES: &[&str] = &[
    "*~",
    ".#*",
    "#*#",
    "*.swp",
    "*.swo",
    "*.swx",
    "*.bak",
    "*.tmp",
    "._*",
    "**/.git/**",
    "**/.hg/**",
    "**/.svn/**",
    "**/node_modules/**",
    "**/..*/**",
];

/// The project file itself, skipped at the root whatever the patterns say.
pub const PROJECT_FILES: &[&str] = &["compozy.yaml", "compozy.yml"];

/// How `watch` notices changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchMethod {
    /// inotify/FSEvents on the project directory (recursive); falls back to polling if the
    /// platform watcher cannot start (for example when inotify watches are exhausted).
    #[default]
    Native,
    /// Re-scan every `poll_interval`: for network file systems and unusual mounts.
    Poll,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoloadConfig {
    pub enabled: bool,
    /// Stop at the first error and keep the previous registry; else load every valid file.
    pub strict: bool,
    /// Globs relative to the project root. A pattern without `/` matches at any depth.
    pub include: Vec<String>,
    /// Added to [`DEFAULT_EXCLUDES`].
    pub exclude: Vec<String>,
    pub watch: bool,
    pub watch_method: WatchMethod,
    #[serde(with = "humantime_serde")]
    pub debounce: Duration,
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Bytes; larger files are refused before they are read.
    pub max_file_size: u64,
    /// Directory levels below the root that discovery descends (1 = root only).
    pub max_depth: usize,
    /// Nesting of mappings and sequences inside one document.
    pub max_nesting: usize,
    /// Programs outside the project root that tools may run (absolute paths). Set by the engine
    /// from `worker.allowed_commands`, not read from the `autoload:` block.
    #[serde(skip)]
    pub allowed_commands: Vec<std::path::PathBuf>,
}

impl Default for AutoloadConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            strict: true,
            include: vec!["**/*.yaml".into(), "**/*.yml".into(), "**/*.json".into()],
            exclude: Vec::new(),
            watch: false,
            watch_method: WatchMethod::Native,
            debounce: Duration::from_millis(300),
            poll_interval: Duration::from_secs(5),
            max_file_size: 1024 * 1024,
            max_depth: 16,
            max_nesting: 32,
            allowed_commands: Vec::new(),
        }
    }
}

/// A configuration the autoloader refuses to start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("autoload.{field}: pattern `{pattern}` {reason}")]
    InvalidPattern { field: &'static str, pattern: String, reason: String },
    #[error("autoload.{field}: {reason}")]
    InvalidValue { field: &'static str, reason: String },
}

impl AutoloadConfig {
    /// Checks everything that does not need the file system. Globs are compiled by
    /// [`crate::discovery::Matcher::new`], which calls this first.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.enabled && self.include.is_empty() {
            return Err(invalid("include", "must not be empty when autoload is enabled"));
        }
        for (field, patterns) in [("include", &self.include), ("exclude", &self.exclude)] {
            patterns.iter().try_for_each(|p| check_pattern(field, p))?;
        }
        if self.max_file_size == 0 {
            return Err(invalid("max_file_size", "must be greater than 0"));
        }
        if self.max_depth == 0 {
            return Err(invalid("max_depth", "must be at least 1"));
        }
        if !(1..=256).contains(&self.max_nesting) {
            return Err(invalid("max_nesting", "must be between 1 and 256"));
        }
        if self.poll_interval < Duration::from_millis(100) {
            return Err(invalid("poll_interval", "must be at least 100ms"));
        }
        Ok(())
    }
}

fn invalid(field: &'static str, reason: &str) -> ConfigError {
    ConfigError::InvalidValue { field, reason: reason.into() }
}

/// Patterns stay inside the root: no absolute paths, drive letters or `..` segments.
fn check_pattern(field: &'static str, pattern: &str) -> Result<(), ConfigError> {
    let err = |reason: &str| ConfigError::InvalidPattern { field, pattern: pattern.into(), reason: reason.into() };
    if pattern.trim().is_empty() {
        return Err(err("is empty"));
    }
    if pattern.starts_with('/') || pattern.starts_with('\\') || pattern.as_bytes().get(1) == Some(&b':') {
        return Err(err("is absolute; patterns are relative to the project root"));
    }
    if pattern.split(['/', '\\']).any(|seg| seg == "..") {
        return Err(err("contains `..`; patterns cannot leave the project root"));
    }
    if pattern.contains('\0') {
        return Err(err("contains a NUL byte"));
    }
    Ok(())
}
