//! Docs that cannot drift from the code: every configuration key named in README.md and docs/
//! exists in `compozy config keys`, every key there is documented, every alert has a runbook, and
//! every runbook's "What to do" names what to type (a configuration key, a command or an
//! endpoint), as Grafana Mimir's playbook lint does for its alerts.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::BIN;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `key -> default` from `compozy config keys`, run where no project file is found.
fn config_keys() -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN).args(["config", "keys"]).current_dir(dir.path()).output().expect("run compozy");
    assert!(out.status.success(), "compozy config keys: {}", String::from_utf8_lossy(&out.stderr));
    let keys: BTreeMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut cols = l.split('\t');
            Some((cols.next()?.to_string(), cols.nth(1)?.to_string()))
        })
        .collect();
    assert!(keys.len() > 50, "compozy config keys listed only {} keys", keys.len());
    keys
}

/// README.md and every Markdown file under docs/, as (path relative to the repository, text).
fn documents() -> Vec<(String, String)> {
    let root = repo_root();
    let mut paths = vec![root.join("README.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                paths.push(path);
            }
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
            (p.strip_prefix(&root).unwrap_or(&p).display().to_string(), text)
        })
        .collect()
}

/// Inline code spans outside fenced blocks.
fn code_spans(text: &str) -> Vec<&str> {
    let mut spans = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut parts = line.split('`');
        parts.next();
        while let (Some(inside), Some(_)) = (parts.next(), parts.next()) {
            spans.push(inside);
        }
    }
    spans
}

/// Words that read like configuration sections but are not (an older name, `cache.url`, was
/// documented for `redis.url`): a key under them is reported rather than ignored.
const NOT_SECTIONS: &[&str] = &["cache", "memory", "db", "storage", "queue", "http"];

/// The dotted key a code span names, if any: `redis.url`, `auth.enabled: false`,
/// `monitoring.series_limits.<family>`. File names and resource fields are not keys.
fn key_in(span: &str, sections: &BTreeSet<&str>) -> Option<String> {
    let token = span.trim().split([':', '=', ' ', ',']).next()?.trim_end_matches('.');
    let first = token.split('.').next()?;
    let shaped = token.contains('.')
        && token.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && token.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.<>*{}-".contains(c));
    let file =
        [".md", ".yml", ".yaml", ".json", ".rs", ".toml", ".db", ".sh", ".txt"].iter().any(|e| token.ends_with(e));
    (shaped && !file && (sections.contains(first) || NOT_SECTIONS.contains(&first))).then(|| token.to_string())
}

fn segments(key: &str) -> Vec<&str> {
    key.split('.').collect()
}

fn placeholder(segment: &str) -> bool {
    segment == "*" || segment.starts_with('<') || segment.starts_with('{')
}

/// A named key is real when it is a key, a section of keys (`auth.rate_limit`, `database.*`), an
/// entry of a map-valued key (`monitoring.series_limits.<family>`), or a key with placeholders
/// (`auth.rate_limit.groups.<name>.requests`).
fn names_a_real_key(named: &str, keys: &BTreeMap<String, String>) -> bool {
    let n = segments(named);
    let n: Vec<&str> = if n.last() == Some(&"*") { n[..n.len() - 1].to_vec() } else { n };
    keys.iter().any(|(key, default)| {
        let k = segments(key);
        let same =
            |a: &[&str], b: &[&str]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y || placeholder(x));
        let section = n.len() <= k.len() && same(&n, &k[..n.len()]);
        let map_entry = default == "{}" && k.len() < n.len() && same(&n[..k.len()], &k);
        section || map_entry
    })
}

/// Keys the README configuration table documents: the first cell of a row names a key, and the
/// spans after it (`database.max_connections` / `acquire_timeout`) are its siblings.
fn readme_table_keys(readme: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for line in readme.lines().filter(|l| l.starts_with("| `")) {
        let first_cell = line.split('|').nth(1).unwrap_or("");
        let spans = code_spans(first_cell);
        let Some(first) = spans.first() else { continue };
        let parent = first.rsplit_once('.').map_or("", |(p, _)| p);
        keys.insert(first.to_string());
        for sibling in &spans[1..] {
            keys.insert(if parent.is_empty() { sibling.to_string() } else { format!("{parent}.{sibling}") });
        }
    }
    keys
}

#[test]
fn every_key_named_in_the_docs_exists_and_every_key_is_documented() {
    let keys = config_keys();
    let sections: BTreeSet<&str> = keys.keys().filter_map(|k| k.split('.').next()).collect();
    let docs = documents();
    let mut named: BTreeSet<String> = BTreeSet::new();
    let mut unknown = Vec::new();
    for (path, text) in &docs {
        for key in code_spans(text).into_iter().filter_map(|s| key_in(s, &sections)) {
            if !names_a_real_key(&key, &keys) {
                unknown.push(format!("{path}: `{key}` is not a key of `compozy config keys`"));
            }
            named.insert(key);
        }
    }
    let readme = &docs.iter().find(|(p, _)| p == "README.md").expect("README.md").1;
    named.extend(readme_table_keys(readme));
    // A key is documented when it, or its parent (`auth.rate_limit.default` for its `.requests`
    // and `.window`), is named somewhere.
    let undocumented: Vec<String> = keys
        .keys()
        .filter(|k| !named.contains(*k) && !k.rsplit_once('.').is_some_and(|(parent, _)| named.contains(parent)))
        .map(|k| format!("`{k}` is listed by `compozy config keys` but named in no doc: add it to README.md's configuration table"))
        .collect();
    unknown.sort();
    unknown.dedup();
    assert!(unknown.is_empty(), "docs name keys that do not exist:\n{}", unknown.join("\n"));
    assert!(undocumented.is_empty(), "undocumented keys:\n{}", undocumented.join("\n"));
}

/// Every alert of the shipped rule files (`- alert: Name` lines).
fn alerts() -> BTreeSet<String> {
    let dir = repo_root().join("deploy/prometheus");
    let mut files = vec![dir.join("alerts.yml")];
    files.extend(std::fs::read_dir(dir.join("slo")).expect("slo dir").map(|e| e.expect("entry").path()));
    let alerts: BTreeSet<String> = files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_else(|e| panic!("read {}: {e}", f.display()))
                .lines()
                .filter_map(|l| l.trim().strip_prefix("- alert:").map(|a| a.trim().to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(alerts.len() > 30, "only {} alerts found", alerts.len());
    alerts
}

/// The "## What to do" section of a runbook.
fn what_to_do(text: &str) -> Option<&str> {
    let start = text.find("\n## What to do\n")?;
    let rest = &text[start + 15..];
    Some(rest.find("\n## ").map_or(rest, |end| &rest[..end]))
}

/// A span an operator can type: a configuration key, a command, or an endpoint.
fn actionable(span: &str, keys: &BTreeMap<String, String>, sections: &BTreeSet<&str>) -> bool {
    const COMMANDS: &[&str] =
        &["compozy ", "kill ", "curl ", "psql ", "redis-cli ", "promtool ", "journalctl ", "ls ", "df "];
    const METHODS: &[&str] = &["GET ", "POST ", "PUT ", "PATCH ", "DELETE "];
    let span = span.trim();
    let endpoint = |s: &str| s.starts_with('/') && s.len() > 1 && s[1..].starts_with(|c: char| c.is_ascii_lowercase());
    key_in(span, sections).is_some_and(|k| names_a_real_key(&k, keys))
        || keys.contains_key(span)
        || COMMANDS.iter().any(|c| span.starts_with(c))
        || span.starts_with("COMPOZY_")
        || endpoint(span)
        || METHODS.iter().any(|m| span.strip_prefix(m).is_some_and(endpoint))
}

#[test]
fn every_alert_has_a_runbook_whose_what_to_do_names_what_to_type() {
    let keys = config_keys();
    let sections: BTreeSet<&str> = keys.keys().filter_map(|k| k.split('.').next()).collect();
    let dir = repo_root().join("docs/runbooks");
    let index = std::fs::read_to_string(dir.join("README.md")).expect("docs/runbooks/README.md");
    let mut problems = Vec::new();
    for alert in alerts() {
        let path: &Path = &dir.join(format!("{alert}.md"));
        let Ok(text) = std::fs::read_to_string(path) else {
            problems.push(format!("{alert}: no runbook docs/runbooks/{alert}.md"));
            continue;
        };
        if !index.contains(&format!("[{alert}]({alert}.md)")) {
            problems.push(format!("{alert}: not listed in docs/runbooks/README.md"));
        }
        match what_to_do(&text) {
            None => problems.push(format!("docs/runbooks/{alert}.md: no \"## What to do\" section")),
            Some(steps) if !code_spans(steps).iter().any(|s| actionable(s, &keys, &sections)) => {
                problems.push(format!(
                    "docs/runbooks/{alert}.md: \"What to do\" names no configuration key, command or endpoint in `code`"
                ))
            }
            Some(_) => {}
        }
    }
    assert!(problems.is_empty(), "runbook problems:\n{}", problems.join("\n"));
}

/// An API key written in the docs (`cpz_…`) has the prefix keys really have, so a reader (or a
/// secret scanner configured from the docs) recognises real keys.
#[test]
fn api_keys_shown_in_the_docs_have_the_real_prefix() {
    let prefix = compozy_auth::keys::KEY_PREFIX;
    let family = &prefix[..3];
    let mut wrong = Vec::new();
    let mut shown = 0;
    for (path, text) in documents() {
        for span in code_spans(&text).into_iter().map(str::trim).filter(|s| s.starts_with(family)) {
            shown += 1;
            if !span.starts_with(prefix) {
                wrong.push(format!("{path}: `{span}` is not how keys start (`{prefix}`)"));
            }
        }
    }
    assert!(shown > 0, "no key shown in the docs: the test looks at nothing");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
