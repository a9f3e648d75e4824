//! Finding resource files: include/exclude globs over a walk of the project root, and the
//! confinement check that every file's real path (symlinks resolved) stays inside the root.

use std::fs;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use walkdir::WalkDir;

use crate::config::{AutoloadConfig, ConfigError, DEFAULT_EXCLUDES, PROJECT_FILES};
use crate::error::{ErrorCategory, LoadError};

/// Compiled include/exclude patterns. Building a glob set is the expensive part, so it is
/// built once per autoloader and reused by every reload.
#[derive(Debug, Clone)]
pub struct Matcher {
    include: GlobSet,
    exclude: GlobSet,
    /// Excludes of the form `dir/**`, matched against directories so the walk skips them whole.
    prune: GlobSet,
    max_depth: usize,
}

impl Matcher {
    pub fn new(config: &AutoloadConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let excludes: Vec<&str> =
            DEFAULT_EXCLUDES.iter().copied().chain(config.exclude.iter().map(String::as_str)).collect();
        let prunes: Vec<&str> = excludes.iter().filter_map(|p| p.strip_suffix("/**")).collect();
        Ok(Self {
            include: build_set("include", config.include.iter().map(String::as_str))?,
            exclude: build_set("exclude", excludes.iter().copied())?,
            prune: build_set("exclude", prunes.into_iter())?,
            max_depth: config.max_depth,
        })
    }

    /// Whether the root-relative, `/`-separated `rel` path of a file is a resource candidate.
    pub fn selects(&self, rel: &str) -> bool {
        self.include.is_match(rel) && !self.exclude.is_match(rel) && !PROJECT_FILES.contains(&rel)
    }

    fn prunes(&self, rel_dir: &str) -> bool {
        self.prune.is_match(rel_dir)
    }
}

/// A pattern without `/` matches a file name at any depth, as in `.gitignore`.
fn anchored(pattern: &str) -> String {
    let p = pattern.trim_start_matches("./");
    if p.contains('/') { p.to_string() } else { format!("**/{p}") }
}

fn build_set<'a>(field: &'static str, patterns: impl Iterator<Item = &'a str>) -> Result<GlobSet, ConfigError> {
    let mut set = GlobSetBuilder::new();
    for p in patterns {
        let glob = GlobBuilder::new(&anchored(p))
            .literal_separator(true)
            .build()
            .map_err(|e| ConfigError::InvalidPattern { field, pattern: p.to_string(), reason: e.kind().to_string() })?;
        set.add(glob);
    }
    set.build().map_err(|e| ConfigError::InvalidPattern { field, pattern: String::new(), reason: e.to_string() })
}

/// A discovered file: its root-relative name and either its confined real path or why not.
#[derive(Debug)]
pub(crate) struct Candidate {
    pub rel: String,
    pub path: Result<PathBuf, LoadError>,
}

/// The canonical project root, or an error naming it.
pub(crate) fn canonical_root(root: &Path) -> Result<PathBuf, LoadError> {
    let err = |e: std::io::Error| {
        LoadError::new(root.display().to_string(), ErrorCategory::Validation, format!("project root: {e}"))
    };
    let real = fs::canonicalize(root).map_err(err)?;
    if !real.is_dir() {
        return Err(LoadError::new(
            root.display().to_string(),
            ErrorCategory::Validation,
            "project root is not a directory",
        ));
    }
    Ok(real)
}

/// Walks `root` (already canonical) without following directory symlinks; returns the
/// candidates sorted by relative path so registration order never depends on the walk.
pub(crate) fn discover(root: &Path, matcher: &Matcher) -> Vec<Candidate> {
    let walker = WalkDir::new(root).min_depth(1).max_depth(matcher.max_depth).follow_links(false);
    let mut out = Vec::new();
    let entries = walker
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_type().is_dir() || !matcher.prunes(&relative(root, e.path())));
    for entry in entries {
        match entry {
            Ok(e) if e.file_type().is_dir() => {}
            Ok(e) => {
                let rel = relative(root, e.path());
                if matcher.selects(&rel) {
                    let path = confine(root, e.path(), &rel);
                    out.push(Candidate { rel, path });
                }
            }
            Err(e) => {
                let rel = e.path().map(|p| relative(root, p)).unwrap_or_default();
                let msg = format!(
                    "cannot read directory: {}",
                    e.io_error().map_or("walk error".into(), |io| io.kind().to_string())
                );
                out.push(Candidate { rel: rel.clone(), path: Err(LoadError::new(rel, ErrorCategory::Parse, msg)) });
            }
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    out
}

fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let parts: Vec<_> = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect();
    parts.join("/")
}

/// Resolves symlinks and refuses anything whose real path leaves the root.
fn confine(root: &Path, path: &Path, rel: &str) -> Result<PathBuf, LoadError> {
    let security = |msg: String| LoadError::new(rel, ErrorCategory::Security, msg);
    let real = fs::canonicalize(path).map_err(|e| security(format!("cannot resolve the real path ({})", e.kind())))?;
    if !real.starts_with(root) {
        return Err(security("resolves to a path outside the project root".into()));
    }
    if !real.is_file() {
        return Err(LoadError::new(rel, ErrorCategory::Parse, "not a regular file"));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(include: &[&str], exclude: &[&str]) -> Matcher {
        let config = AutoloadConfig {
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            ..AutoloadConfig::default()
        };
        Matcher::new(&config).expect("valid patterns")
    }

    #[test]
    fn patterns_follow_gitignore_like_rules() {
        let m = matcher(&["resources/*.yaml", "*.json"], &["drafts/**", "skip.json"]);
        assert!(m.selects("resources/a.yaml"));
        assert!(!m.selects("resources/sub/a.yaml"), "`*` does not cross `/`");
        assert!(m.selects("deep/down/x.json"), "a pattern without `/` matches at any depth");
        assert!(!m.selects("deep/skip.json"));
        assert!(!m.selects("resources/a.yaml~"));
        assert!(m.prunes("drafts") && !m.prunes("resources"));
        assert!(m.prunes("a/.git") && m.prunes("..2024_01_01") && !m.prunes("a/.github"));
    }

    #[test]
    fn the_project_file_is_never_a_resource_at_the_root() {
        let m = matcher(&["**/*.yaml"], &[]);
        assert!(!m.selects("compozy.yaml"));
        assert!(m.selects("nested/compozy.yaml"));
    }

    #[test]
    fn an_invalid_glob_names_the_pattern() {
        let config = AutoloadConfig { include: vec!["a/[b.yaml".into()], ..AutoloadConfig::default() };
        let err = Matcher::new(&config).expect_err("unclosed class");
        assert!(
            matches!(err, ConfigError::InvalidPattern { field: "include", ref pattern, .. } if pattern == "a/[b.yaml")
        );
    }
}
