//! `resource: tool`: an executable run with JSON on stdin, JSON read from stdout.

use std::collections::BTreeMap;
use std::time::Duration;

use compozy_core::Secret;
use serde::{Deserialize, Serialize};

use super::common::check_env_names;
use super::{Id, ResourceKind};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Tool {
    pub resource: ResourceKind,
    pub id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Program to run: a name looked up in `PATH`, or a path relative to the project root.
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Values may be secrets (`${NAME}` reads the environment); they serialize redacted.
    #[serde(default)]
    pub env: BTreeMap<String, Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Default timeout for tasks running this tool when the task sets none.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// JSON Schema of the input the tool expects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<serde_json::Value>,
    /// JSON Schema of the output it produces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
}

impl Tool {
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.command.trim().is_empty() {
            return Err("command must not be empty".into());
        }
        if self.command.contains('\0') || self.args.iter().any(|a| a.contains('\0')) {
            return Err("command and args must not contain NUL bytes".into());
        }
        check_env_names("env", self.env.keys())?;
        for (field, schema) in [("input", &self.input), ("output", &self.output)] {
            if schema.as_ref().is_some_and(|s| !s.is_object()) {
                return Err(format!("{field} must be a JSON Schema object"));
            }
        }
        Ok(())
    }
}
