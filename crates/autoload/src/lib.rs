//! Project resources (workflows, agents, tools, MCP servers) loaded from YAML/JSON files under
//! the project root: discovery with include/exclude globs confined to the root, defensive
//! parsing, an immutable registry swapped atomically on reload, file watching, validation for
//! the CLI, and the autoload metrics of the catalog.
//!
//! ```no_run
//! # async fn demo(metrics: std::sync::Arc<compozy_telemetry::Registry>, readiness: compozy_core::Readiness) {
//! use compozy_autoload::{AutoloadConfig, Autoloader, ResourceKind};
//! let autoloader = Autoloader::new(AutoloadConfig::default(), "/srv/project", "quickstart", &metrics)
//!     .expect("valid autoload config");
//! autoloader.register_readiness(&readiness);
//! autoloader.load().await.expect("project loads");
//! let registry = autoloader.current();
//! for loaded in registry.list(ResourceKind::Workflow) {
//!     println!("{} from {}", loaded.resource.id(), loaded.file);
//! }
//! # }
//! ```

pub mod config;
pub mod discovery;
pub mod error;
pub mod load;
pub mod metrics;
mod parse;
pub mod registry;
pub mod reload;
pub mod resources;
pub mod tool_paths;
pub mod validate;

pub use config::{AutoloadConfig, ConfigError, WatchMethod};
pub use error::{ErrorCategory, LoadError};
pub use load::LoadReport;
/// What a reload returns: the same report as any load.
pub type ReloadReport = LoadReport;
pub use metrics::AutoloadMetrics;
pub use registry::{Loaded, ProjectRegistry};
pub use reload::{Autoloader, LastReload, ReloadError, WatchError};
pub use resources::{Resource, ResourceKind};
pub use tool_paths::{ToolPaths, ToolRules, Violation};
pub use validate::{OutputFormat, ValidationReport, validate_project};
