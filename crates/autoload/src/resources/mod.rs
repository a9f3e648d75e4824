//! The resource schemas. Each file holds one resource: `resource: <kind>` and `id: <id>`, then
//! the kind's fields. Unknown fields are errors (typos must not be silently ignored).

mod agent;
mod common;
mod mcp;
mod tool;
mod workflow;

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

pub use agent::{Agent, Model};
pub use common::{Backoff, RetryPolicy};
pub use mcp::{Mcp, McpTransport};
pub use tool::Tool;
pub use workflow::{
    Action, CompiledEvent, Dedupe, Encoding, HttpAction, Task, ToolAction, Trigger, Verify, VerifyMethod, WaitAction,
    WebhookEvent, WebhookTrigger, Workflow,
};

pub(crate) use workflow::RawWorkflow;

/// The kinds of resource a project can declare; also the `type` label of
/// `compozy_autoload_configs_loaded_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    Workflow,
    Agent,
    Tool,
    Mcp,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 4] =
        [ResourceKind::Workflow, ResourceKind::Agent, ResourceKind::Tool, ResourceKind::Mcp];

    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Workflow => "workflow",
            ResourceKind::Agent => "agent",
            ResourceKind::Tool => "tool",
            ResourceKind::Mcp => "mcp",
        }
    }

    /// Accepts the singular and the plural (`/api/v0/resources/workflows`), any case.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.to_ascii_lowercase();
        let s = s.strip_suffix('s').unwrap_or(&s);
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A resource or task ID: 1–128 characters of ASCII letters, digits, `-`, `_`, `.`, starting
/// with a letter or digit. Compared case-insensitively.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Id(String);

impl Id {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The registry key: IDs differing only in case are the same resource.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        check_name(&s, 128, false).map_err(|why| serde::de::Error::custom(format!("invalid id: {why}")))?;
        Ok(Id(s))
    }
}

/// A webhook slug, the last segment of `/api/v0/hooks/{slug}`: 1–64 lowercase letters, digits,
/// `-` or `_`, starting with a letter or digit.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Slug(String);

/// Slugs whose `/api/v0/hooks/{slug}` path the engine uses itself (the delivery log).
const RESERVED_SLUGS: &[&str] = &["deliveries"];

impl Slug {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Slug {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        check_name(&s, 64, true).map_err(|why| serde::de::Error::custom(format!("invalid slug: {why}")))?;
        if RESERVED_SLUGS.contains(&s.as_str()) {
            let why = format!("invalid slug: `{s}` is reserved (/api/v0/hooks/{s} is an engine route)");
            return Err(serde::de::Error::custom(why));
        }
        Ok(Slug(s))
    }
}

fn check_name(s: &str, max: usize, lowercase_only: bool) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > max {
        return Err(format!("longer than {max} characters"));
    }
    let first_ok = s.as_bytes()[0].is_ascii_alphanumeric();
    let rest_ok = s.bytes().all(|b| {
        let allowed = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (!lowercase_only && b == b'.');
        allowed && !(lowercase_only && b.is_ascii_uppercase())
    });
    if !first_ok || !rest_ok {
        let set = if lowercase_only { "lowercase letters, digits, `-`, `_`" } else { "letters, digits, `-`, `_`, `.`" };
        return Err(format!("use {set}, starting with a letter or digit"));
    }
    Ok(())
}

/// One loaded resource.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Resource {
    Workflow(Workflow),
    Agent(Agent),
    Tool(Tool),
    Mcp(Mcp),
}

impl Resource {
    pub fn kind(&self) -> ResourceKind {
        match self {
            Resource::Workflow(_) => ResourceKind::Workflow,
            Resource::Agent(_) => ResourceKind::Agent,
            Resource::Tool(_) => ResourceKind::Tool,
            Resource::Mcp(_) => ResourceKind::Mcp,
        }
    }

    pub fn id(&self) -> &Id {
        match self {
            Resource::Workflow(w) => &w.id,
            Resource::Agent(a) => &a.id,
            Resource::Tool(t) => &t.id,
            Resource::Mcp(m) => &m.id,
        }
    }
}

/// A 1-based position in the file, for errors found after deserialization.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

impl From<serde_saphyr::Location> for Pos {
    fn from(l: serde_saphyr::Location) -> Self {
        Pos { line: l.line(), column: l.column() }
    }
}

/// A semantic error found after deserialization, with where it is.
#[derive(Debug)]
pub(crate) struct Invalid {
    pub pos: Pos,
    pub message: String,
}

impl Invalid {
    pub fn new(pos: impl Into<Pos>, message: impl Into<String>) -> Self {
        Invalid { pos: pos.into(), message: message.into() }
    }
}

/// A reference from one resource to another, checked once every file is registered.
#[derive(Clone, Debug)]
pub(crate) struct Reference {
    pub kind: ResourceKind,
    pub id: Id,
    pub pos: Pos,
    /// What refers, for the message (`task \`build\``, `agent`).
    pub from: String,
}

/// A webhook slug and where it is declared, for the duplicate check.
#[derive(Clone, Debug)]
pub(crate) struct SlugDecl {
    pub slug: Slug,
    pub pos: Pos,
}

/// What parsing one file yields beside the resource itself.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub resource: Resource,
    pub id_pos: Pos,
    pub references: Vec<Reference>,
    pub slugs: Vec<SlugDecl>,
}
