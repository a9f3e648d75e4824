//! Reading and parsing one file, defensively: bounded reads, encoding checks, a YAML parser
//! with depth, node and alias budgets, and error messages that never quote file contents.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;
use serde::de::IgnoredAny as _Unused;
use serde_saphyr::Spanned;

use crate::error::{ErrorCategory, LoadError};
use crate::resources::{Agent, Invalid, Mcp, Parsed, Pos, RawWorkflow, Reference, Resource, ResourceKind, Tool};
use crate::tool_paths::{ToolRules, Violation};

/// Limits applied to every file, and the rules tools are held to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits<'a> {
    pub max_file_size: u64,
    pub max_nesting: usize,
    pub tools: &'a ToolRules,
}

/// Reads, decodes and parses `path`; errors are reported against `rel`.
pub(crate) fn load_file(rel: &str, path: &Path, limits: Limits) -> Result<Parsed, LoadError> {
    let bytes = read_bounded(rel, path, limits.max_file_size)?;
    let text = decode(rel, &bytes)?;
    parse_resource(rel, text, limits)
}

/// Refuses oversized files from their metadata, reads at most `max + 1` bytes in case the file
/// grew since, and reports a file whose size or mtime changed while it was read: a load sees
/// each file whole or not at all.
fn read_bounded(rel: &str, path: &Path, max: u64) -> Result<Vec<u8>, LoadError> {
    let io = |what: &str, e: std::io::Error| LoadError::new(rel, ErrorCategory::Parse, format!("cannot {what}: {e}"));
    let too_large = |size: u64| {
        LoadError::new(rel, ErrorCategory::Security, format!("file is {size} bytes, over the {max}-byte limit"))
    };
    let file = File::open(path).map_err(|e| io("open", e))?;
    let before = file.metadata().map_err(|e| io("stat", e))?;
    if before.len() > max {
        return Err(too_large(before.len()));
    }
    let mut buf = Vec::with_capacity(before.len() as usize);
    (&file).take(max + 1).read_to_end(&mut buf).map_err(|e| io("read", e))?;
    if buf.len() as u64 > max {
        return Err(too_large(buf.len() as u64));
    }
    let after = file.metadata().map_err(|e| io("stat", e))?;
    let changed = after.len() != buf.len() as u64 || after.modified().ok() != before.modified().ok();
    if changed {
        let msg = "file changed while it was being read; it is read again on the next reload";
        return Err(LoadError::new(rel, ErrorCategory::Parse, msg));
    }
    Ok(buf)
}

/// UTF-8 text only. NUL bytes mark a binary file; the position of the first invalid byte is given.
fn decode<'a>(rel: &str, bytes: &'a [u8]) -> Result<&'a str, LoadError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        let (line, col) = line_col(&bytes[..at]);
        return Err(LoadError::new(rel, ErrorCategory::Parse, "binary file (contains NUL bytes)").at(line, col));
    }
    std::str::from_utf8(bytes).map_err(|e| {
        let (line, col) = line_col(&bytes[..e.valid_up_to()]);
        LoadError::new(rel, ErrorCategory::Parse, "not valid UTF-8").at(line, col)
    })
}

fn line_col(prefix: &[u8]) -> (u64, u64) {
    let line = prefix.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    let col = prefix.iter().rev().take_while(|&&b| b != b'\n').count() as u64 + 1;
    (line, col)
}

fn options(limits: Limits) -> serde_saphyr::Options {
    serde_saphyr::options! {
        // Snippets would copy file text into error messages, which end up in logs.
        with_snippet: false,
        budget: serde_saphyr::budget! {
            max_reader_input_bytes: Some(limits.max_file_size as usize),
            max_depth: limits.max_nesting,
            max_documents: 1,
            max_nodes: 100_000,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_total_scalar_bytes: limits.max_file_size as usize,
        },
        alias_limits: alias_limits(),
    }
}

fn alias_limits() -> serde_saphyr::options::AliasLimits {
    let mut limits = serde_saphyr::options::AliasLimits::default();
    limits.max_total_replayed_events = 10_000;
    limits.max_replay_stack_depth = 16;
    limits.max_alias_expansions_per_anchor = 100;
    limits
}

/// Only what is needed to pick the schema; every other field is skipped here.
#[derive(Deserialize)]
struct Header {
    resource: Spanned<String>,
    id: Option<Spanned<_Unused>>,
}

fn parse_resource(rel: &str, text: &str, limits: Limits) -> Result<Parsed, LoadError> {
    // Fast path: one parse instead of two when a line scan finds the kind. The scan can be
    // fooled (multi-line flow collections), so its answer is confirmed by the `resource`
    // field the full parse reads, and by the exact header parse before reporting an error.
    if let Some(scan) = scan_header(text) {
        match parse_as(rel, text, limits, scan.kind, scan.id_pos) {
            Ok(parsed) if parsed.declared == scan.kind => return Ok(parsed.parsed),
            Err(e) if header_kind(rel, text, limits).ok().map(|(k, _)| k) == Some(scan.kind) => return Err(e),
            _ => {}
        }
    }
    let (kind, id_pos) = header_kind(rel, text, limits)?;
    parse_as(rel, text, limits, kind, id_pos).map(|p| p.parsed)
}

struct Scan {
    kind: ResourceKind,
    id_pos: Pos,
}

/// Finds exactly one top-level `resource:` line naming a known kind and exactly one top-level
/// `id:` line. Anything else (JSON, flow style, duplicates) takes the exact path.
fn scan_header(text: &str) -> Option<Scan> {
    let (mut kind, mut id_pos) = (None, None);
    for (n, line) in text.lines().enumerate() {
        if let Some(rest) = line.strip_prefix("resource:") {
            let value = rest.split(" #").next().unwrap_or_default().trim().trim_matches(['"', '\'']);
            let found = ResourceKind::parse(value).filter(|k| k.as_str() == value)?;
            if kind.replace(found).is_some() {
                return None;
            }
        } else if let Some(rest) = line.strip_prefix("id:") {
            let column = (line.len() - rest.trim_start().len() + 1) as u64;
            if id_pos.replace(Pos { line: n as u64 + 1, column }).is_some() {
                return None;
            }
        }
    }
    Some(Scan { kind: kind?, id_pos: id_pos? })
}

/// The exact header: the kind, and where the ID is.
fn header_kind(rel: &str, text: &str, limits: Limits) -> Result<(ResourceKind, Pos), LoadError> {
    let header: Header = from_yaml(rel, text, limits)?;
    let Some(kind) = ResourceKind::parse(&header.resource.value).filter(|k| k.as_str() == header.resource.value) else {
        let pos = Pos::from(header.resource.referenced);
        let msg = "`resource` must be one of workflow, agent, tool, mcp";
        return Err(LoadError::new(rel, ErrorCategory::Validation, msg).at(pos.line, pos.column));
    };
    match &header.id {
        Some(id) => Ok((kind, Pos::from(id.referenced))),
        None => Err(LoadError::new(rel, ErrorCategory::Validation, "missing field `id`").at(1, 1)),
    }
}

/// Where the fields a tool's paths come from are written.
#[derive(Deserialize)]
struct ToolFields {
    command: Option<Spanned<_Unused>>,
    working_dir: Option<Spanned<_Unused>>,
}

/// A `security` error at the offending field (parsed again only in this rare case).
fn tool_violation(rel: &str, text: &str, limits: Limits, v: Violation, id_pos: Pos) -> LoadError {
    let fields = from_yaml::<ToolFields>(rel, text, limits).ok();
    let field = fields.and_then(|f| match v {
        Violation::Command(_) => f.command,
        Violation::WorkingDir(_) => f.working_dir,
    });
    let pos = field.map_or(id_pos, |f| Pos::from(f.referenced));
    LoadError::new(rel, ErrorCategory::Security, v.to_string()).at(pos.line, pos.column)
}

/// A parse with the `resource` value the file declares, to confirm the schema chosen.
struct Typed {
    parsed: Parsed,
    declared: ResourceKind,
}

fn parse_as(rel: &str, text: &str, limits: Limits, kind: ResourceKind, id_pos: Pos) -> Result<Typed, LoadError> {
    let invalid = |i: Invalid| LoadError::new(rel, ErrorCategory::Validation, i.message).at(i.pos.line, i.pos.column);
    let at_id = |m: String| invalid(Invalid { pos: id_pos, message: m });
    let typed = |resource: Resource, declared, references| Typed {
        parsed: Parsed { resource, id_pos, references, slugs: Vec::new() },
        declared,
    };
    match kind {
        ResourceKind::Workflow => {
            let raw = from_yaml::<RawWorkflow>(rel, text, limits)?;
            let declared = raw.declared();
            let c = raw.convert().map_err(invalid)?;
            let parsed = Parsed {
                resource: Resource::Workflow(c.workflow),
                id_pos: c.id_pos,
                references: c.references,
                slugs: c.slugs,
            };
            Ok(Typed { parsed, declared })
        }
        ResourceKind::Tool => {
            let t: Tool = from_yaml(rel, text, limits)?;
            t.check().map_err(at_id)?;
            if let Err(v) = limits.tools.check(&t) {
                return Err(tool_violation(rel, text, limits, v, id_pos));
            }
            let declared = t.resource;
            Ok(typed(Resource::Tool(t), declared, Vec::new()))
        }
        ResourceKind::Mcp => {
            let m: Mcp = from_yaml(rel, text, limits)?;
            m.check().map_err(at_id)?;
            let declared = m.resource;
            Ok(typed(Resource::Mcp(m), declared, Vec::new()))
        }
        ResourceKind::Agent => {
            let a: Agent = from_yaml(rel, text, limits)?;
            a.check().map_err(at_id)?;
            let refs = agent_references(&a, id_pos);
            let declared = a.resource;
            Ok(typed(Resource::Agent(a), declared, refs))
        }
    }
}

fn agent_references(a: &Agent, pos: Pos) -> Vec<Reference> {
    let tools = a.tools.iter().map(|id| (ResourceKind::Tool, id));
    let mcps = a.mcps.iter().map(|id| (ResourceKind::Mcp, id));
    let from = format!("agent `{}`", a.id);
    tools.chain(mcps).map(|(kind, id)| Reference { kind, id: id.clone(), pos, from: from.clone() }).collect()
}

/// YAML 1.2 is a superset of JSON, so `.json` files go through the same parser and budgets.
fn from_yaml<T: serde::de::DeserializeOwned>(rel: &str, text: &str, limits: Limits) -> Result<T, LoadError> {
    serde_saphyr::from_str_with_options(text, options(limits)).map_err(|e| to_load_error(rel, &e))
}

fn to_load_error(rel: &str, e: &serde_saphyr::Error) -> LoadError {
    use serde_saphyr::Error as E;
    let inner = match e {
        E::WithSnippet { error, .. } => error.as_ref(),
        other => other,
    };
    let category = match inner {
        E::SerdeInvalidType { .. }
        | E::SerdeInvalidValue { .. }
        | E::SerdeInvalidLength { .. }
        | E::SerdeUnknownVariant { .. }
        | E::SerdeUnknownField { .. }
        | E::SerdeMissingField { .. }
        | E::Message { .. }
        | E::NullIntoString { .. }
        | E::Unexpected { .. } => ErrorCategory::Validation,
        _ => ErrorCategory::Parse,
    };
    let message = match inner {
        // Serde's own text quotes the offending value, which may be a secret typed in the wrong place.
        E::SerdeInvalidType { expected, .. } => format!("invalid type, expected {expected}"),
        E::SerdeInvalidValue { expected, .. } => format!("invalid value, expected {expected}"),
        E::SerdeUnknownVariant { expected, .. } => format!("unknown value, expected one of {}", expected.join(", ")),
        E::Budget { breach, .. } => budget_message(breach),
        other => strip_location(&other.to_string()),
    };
    let err = LoadError::new(rel, category, message);
    match inner.location() {
        Some(l) => err.at(l.line(), l.column()),
        None => err,
    }
}

fn budget_message(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach as B;
    match breach {
        B::Depth { .. } => "nested deeper than the limit (autoload.max_nesting)".into(),
        B::Aliases { .. } | B::Anchors { .. } | B::AliasAnchorRatio { .. } => "too many aliases or anchors".into(),
        B::InputBytes { .. } | B::ScalarBytes { .. } => "larger than the limit (autoload.max_file_size)".into(),
        other => format!("exceeds a parser limit ({other:?})"),
    }
}

/// The error text ends with " at line L, column C"; the position is kept in its own fields.
fn strip_location(msg: &str) -> String {
    let tail_is_position = |tail: &str| {
        let Some(rest) = tail.strip_prefix(" at line ") else { return false };
        let Some((line, col)) = rest.split_once(", column ") else { return false };
        !line.is_empty()
            && line.bytes().all(|b| b.is_ascii_digit())
            && !col.is_empty()
            && col.bytes().all(|b| b.is_ascii_digit())
    };
    match msg.rfind(" at line ") {
        Some(i) if tail_is_position(&msg[i..]) => msg[..i].to_string(),
        _ => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_limits<T>(f: impl FnOnce(Limits) -> T) -> T {
        let tools = ToolRules::new(Path::new("."), &[]).expect("rules");
        f(Limits { max_file_size: 1 << 20, max_nesting: 32, tools: &tools })
    }

    #[test]
    fn a_fooled_line_scan_falls_back_to_the_exact_header() {
        // The only `resource:` line at column 0 is inside a flow mapping of a tool.
        let text =
            "{resource: tool, id: t, command: x, input: {\nresource: agent\n, x: 1}, output: {\nid: nested\n}}\n";
        let scan = scan_header(text).expect("the scan is fooled");
        assert_eq!(scan.kind, ResourceKind::Agent);
        let parsed = with_limits(|l| parse_resource("f.yaml", text, l)).expect("loads as what it is");
        assert_eq!(parsed.resource.kind(), ResourceKind::Tool);
    }

    #[test]
    fn the_scan_and_the_header_agree_on_the_id_position() {
        let text = "# comment\nresource: tool\nid:   spaced\ncommand: x\n";
        let scan = scan_header(text).expect("scan");
        let (_, exact) = with_limits(|l| header_kind("f.yaml", text, l)).expect("header");
        assert_eq!(scan.id_pos, exact);
        assert_eq!(exact, Pos { line: 3, column: 7 });
    }
}
