//! `resource: mcp`: a Model Context Protocol server, local (stdio) or remote (HTTP).

use std::collections::BTreeMap;

use compozy_core::Secret;
use serde::{Deserialize, Serialize};

use super::common::{check_env_names, check_url};
use super::{Id, ResourceKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum McpTransport {
    Stdio,
    Sse,
    StreamableHttp,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Mcp {
    pub resource: ResourceKind,
    pub id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub transport: McpTransport,
    /// stdio only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, Secret>,
    /// sse and streamable-http only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Secret>,
}

impl Mcp {
    pub(crate) fn check(&self) -> Result<(), String> {
        match self.transport {
            McpTransport::Stdio => {
                if self.command.as_deref().is_none_or(|c| c.trim().is_empty()) {
                    return Err("a stdio MCP server needs a command".into());
                }
                if self.url.is_some() || !self.headers.is_empty() {
                    return Err("url and headers are only valid for sse and streamable-http".into());
                }
                check_env_names("env", self.env.keys())
            }
            McpTransport::Sse | McpTransport::StreamableHttp => {
                if self.command.is_some() || !self.args.is_empty() || !self.env.is_empty() {
                    return Err("command, args and env are only valid for stdio".into());
                }
                check_url("url", self.url.as_deref().unwrap_or_default())
            }
        }
    }
}
