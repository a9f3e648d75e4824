//! `resource: agent`: a model with instructions and the tools and MCP servers it may use.

use compozy_core::Secret;
use serde::{Deserialize, Serialize};

use super::{Id, ResourceKind};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    pub resource: ResourceKind,
    pub id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub model: Model,
    pub instructions: String,
    /// IDs of `tool` resources; each must exist.
    #[serde(default)]
    pub tools: Vec<Id>,
    /// IDs of `mcp` resources; each must exist.
    #[serde(default)]
    pub mcps: Vec<Id>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub provider: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
}

impl Agent {
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.model.provider.trim().is_empty() || self.model.name.trim().is_empty() {
            return Err("model.provider and model.name must not be empty".into());
        }
        if let Some(url) = &self.model.base_url {
            super::common::check_url("model.base_url", url)?;
        }
        if self.model.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
            return Err("model.temperature must be between 0 and 2".into());
        }
        if self.instructions.trim().is_empty() {
            return Err("instructions must not be empty".into());
        }
        Ok(())
    }
}
