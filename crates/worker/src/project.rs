//! Where the worker reads workflow and tool definitions: the autoloader's current registry.

use std::path::PathBuf;
use std::sync::Arc;

use compozy_autoload::{Autoloader, ProjectRegistry};

/// The project in service. Definitions are read when a task starts, so a reload applies to the
/// next task (a run whose workflow disappeared fails its next task permanently).
pub trait Project: Send + Sync + 'static {
    fn registry(&self) -> Arc<ProjectRegistry>;
    /// Tool commands and working directories are relative to this.
    fn root(&self) -> PathBuf;
}

impl Project for Autoloader {
    fn registry(&self) -> Arc<ProjectRegistry> {
        self.current()
    }

    fn root(&self) -> PathBuf {
        Autoloader::root(self).to_path_buf()
    }
}
