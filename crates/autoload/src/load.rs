//! One load: discover, parse in parallel, register in path order.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::Serialize;

use crate::config::AutoloadConfig;
use crate::discovery::{Candidate, Matcher, canonical_root, discover};
use crate::error::{ErrorCategory, LoadError};
use crate::parse::{Limits, load_file};
use crate::registry::{Builder, ProjectRegistry};
use crate::resources::{Parsed, ResourceKind};
use crate::tool_paths::ToolRules;

/// What one load or reload did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadReport {
    /// Whether the load produced a registry (and, for the autoloader, put it in service).
    pub applied: bool,
    pub files_discovered: usize,
    /// Files whose outcome was decided; in strict mode the files after the first error are not.
    pub files_processed: usize,
    pub files_failed: usize,
    /// Resources in the new registry, by type (all types present, zeros included).
    pub loaded: BTreeMap<ResourceKind, usize>,
    /// Sorted by file, then in discovery order.
    pub errors: Vec<LoadError>,
    #[serde(rename = "duration_ms", serialize_with = "compozy_core::timestamp::duration_ms")]
    pub duration: Duration,
}

impl LoadReport {
    /// Errors by category, all categories present.
    pub fn error_counts(&self) -> BTreeMap<ErrorCategory, usize> {
        let mut counts: BTreeMap<_, _> = ErrorCategory::ALL.into_iter().map(|c| (c, 0)).collect();
        for e in &self.errors {
            *counts.entry(e.category).or_default() += 1;
        }
        counts
    }
}

/// Progress of a long load, for the CLI's progress bar.
pub(crate) trait Progress: Sync {
    fn start(&self, _total: usize) {}
    fn advance(&self) {}
    fn finish(&self) {}
}

pub(crate) struct NoProgress;
impl Progress for NoProgress {}

pub(crate) struct Outcome {
    pub registry: Option<ProjectRegistry>,
    pub report: LoadReport,
}

pub(crate) fn run(root: &Path, config: &AutoloadConfig, matcher: &Matcher, progress: &dyn Progress) -> Outcome {
    let started = Instant::now();
    let mut outcome = load(root, config, matcher, progress);
    outcome.report.duration = started.elapsed();
    outcome
}

fn load(root: &Path, config: &AutoloadConfig, matcher: &Matcher, progress: &dyn Progress) -> Outcome {
    let mut report =
        LoadReport { loaded: ResourceKind::ALL.into_iter().map(|k| (k, 0)).collect(), ..Default::default() };
    if !config.enabled {
        report.applied = true;
        return Outcome { registry: Some(ProjectRegistry::default()), report };
    }
    let root = match canonical_root(root) {
        Ok(r) => r,
        Err(e) => {
            report.errors.push(e);
            return Outcome { registry: None, report };
        }
    };
    let tools = match ToolRules::new(&root, &config.allowed_commands) {
        Ok(t) => t,
        Err(e) => {
            report.errors.push(LoadError::new(root.display().to_string(), ErrorCategory::Validation, e.to_string()));
            return Outcome { registry: None, report };
        }
    };
    let limits = Limits { max_file_size: config.max_file_size, max_nesting: config.max_nesting, tools: &tools };
    let candidates = discover(&root, matcher);
    report.files_discovered = candidates.len();
    progress.start(candidates.len());
    let parsed = parse_all(&candidates, limits, config.strict, progress);
    progress.finish();
    let builder = register(&candidates, parsed, limits, config.strict, &mut report);
    finish(builder, config.strict, report)
}

/// Parses every candidate in parallel, keeping discovery order. In strict mode files not yet
/// started when an error is seen are skipped (`None`) and parsed later only if needed.
fn parse_all(
    candidates: &[Candidate],
    limits: Limits,
    strict: bool,
    progress: &dyn Progress,
) -> Vec<Option<Result<Parsed, LoadError>>> {
    let failed = AtomicBool::new(false);
    candidates
        .par_iter()
        .map(|c| {
            if strict && failed.load(Ordering::Relaxed) {
                return None;
            }
            let result = parse_one(c, limits);
            if result.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            progress.advance();
            Some(result)
        })
        .collect()
}

fn parse_one(c: &Candidate, limits: Limits) -> Result<Parsed, LoadError> {
    match &c.path {
        Ok(path) => load_file(&c.rel, path, limits),
        Err(e) => Err(e.clone()),
    }
}

/// Registers in path order so duplicates resolve the same way on every run. Strict mode stops
/// at the first error in that order (a skipped file before it is parsed now, so the first
/// error reported never depends on thread timing).
fn register(
    candidates: &[Candidate],
    parsed: Vec<Option<Result<Parsed, LoadError>>>,
    limits: Limits,
    strict: bool,
    report: &mut LoadReport,
) -> Builder {
    let mut builder = Builder::default();
    for (c, result) in candidates.iter().zip(parsed) {
        let result = result.unwrap_or_else(|| parse_one(c, limits));
        let outcome = result.and_then(|p| builder.insert(&c.rel, p));
        report.files_processed += 1;
        if let Err(e) = outcome {
            report.files_failed += 1;
            report.errors.push(e);
            if strict {
                break;
            }
        }
    }
    builder
}

fn finish(builder: Builder, strict: bool, mut report: LoadReport) -> Outcome {
    if strict && !report.errors.is_empty() {
        return Outcome { registry: None, report };
    }
    let (registry, reference_errors) = builder.finish();
    if !reference_errors.is_empty() {
        report.files_failed += reference_errors.len();
        report.errors.extend(reference_errors);
        report.errors.sort_by(|a, b| a.file.cmp(&b.file));
        if strict {
            report.errors.truncate(1);
            report.files_failed = 1;
            return Outcome { registry: None, report };
        }
    }
    for kind in ResourceKind::ALL {
        report.loaded.insert(kind, registry.count(kind));
    }
    report.applied = true;
    Outcome { registry: Some(registry), report }
}
