//! Where a tool may run. Its program and working directory stay inside the project root, judged
//! on real paths (symlinks resolved, `..` included), like the resource files themselves. A
//! program outside the root runs only when the operator lists its absolute path in
//! `worker.allowed_commands`; a bare name (`python3`) is looked up in the engine's `PATH`, which
//! the operator controls. Autoload checks this (a `security` error with file and line) and the
//! worker checks it again right before it starts the process.

use std::io;
use std::path::{Component, Path, PathBuf};

use crate::resources::Tool;

/// The root and the operator's exceptions a tool is judged against.
#[derive(Clone, Debug)]
pub struct ToolRules {
    root: PathBuf,
    /// Allowed programs, each as written and as its real path.
    allowed: Vec<PathBuf>,
}

/// What to start: the program as the tool names it (a bare name or a checked path) and the
/// directory it runs in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolPaths {
    pub program: PathBuf,
    pub working_dir: PathBuf,
}

/// Which field breaks the rule, and why (no path from the file is quoted).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("command {0}")]
    Command(&'static str),
    #[error("working_dir {0}")]
    WorkingDir(&'static str),
}

const ABSOLUTE: &str = "is an absolute path: tools run programs inside the project root (list an outside program in worker.allowed_commands)";
const ESCAPES: &str = "leaves the project root (`..` or a symlink); list an outside program in worker.allowed_commands";
const ABSOLUTE_DIR: &str = "is an absolute path: a tool's working directory stays inside the project root";
const ESCAPES_DIR: &str = "leaves the project root (`..` or a symlink)";
const UNRESOLVED: &str = "cannot be resolved to a real path";

impl ToolRules {
    /// `root` is canonicalized here; `allowed` are absolute program paths.
    pub fn new(root: &Path, allowed: &[PathBuf]) -> io::Result<Self> {
        let root = std::fs::canonicalize(root)?;
        let mut all = Vec::with_capacity(allowed.len() * 2);
        for path in allowed.iter().filter(|p| p.is_absolute()) {
            all.push(path.clone());
            if let Ok(real) = std::fs::canonicalize(path) {
                all.push(real);
            }
        }
        Ok(Self { root, allowed: all })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn check(&self, tool: &Tool) -> Result<ToolPaths, Violation> {
        self.resolve(&tool.command, tool.working_dir.as_deref())
    }

    /// The paths to start `command` with, or the rule it breaks.
    pub fn resolve(&self, command: &str, working_dir: Option<&str>) -> Result<ToolPaths, Violation> {
        let working_dir = match working_dir {
            None => self.root.clone(),
            Some(dir) if Path::new(dir).is_absolute() => return Err(Violation::WorkingDir(ABSOLUTE_DIR)),
            Some(dir) => self.within(dir).map_err(|why| Violation::WorkingDir(dir_reason(why)))?,
        };
        let program = if !command.contains('/') {
            PathBuf::from(command)
        } else if Path::new(command).is_absolute() {
            self.allowed_program(Path::new(command)).ok_or(Violation::Command(ABSOLUTE))?
        } else {
            match self.within(command) {
                Ok(path) => path,
                Err(why) => self.allowed_program(&self.root.join(command)).ok_or(Violation::Command(why))?,
            }
        };
        Ok(ToolPaths { program, working_dir })
    }

    /// `path` when it, or its real path, is listed.
    fn allowed_program(&self, path: &Path) -> Option<PathBuf> {
        let real = std::fs::canonicalize(path).ok();
        let listed = |p: &Path| self.allowed.iter().any(|a| a == p);
        (listed(path) || real.as_deref().is_some_and(listed)).then(|| path.to_path_buf())
    }

    /// `rel` joined onto the root when neither its components nor its real path leave the root.
    /// A path that does not exist yet is judged by its deepest existing ancestor.
    fn within(&self, rel: &str) -> Result<PathBuf, &'static str> {
        let mut depth = 0usize;
        for component in Path::new(rel).components() {
            match component {
                Component::Normal(_) => depth += 1,
                Component::ParentDir => depth = depth.checked_sub(1).ok_or(ESCAPES)?,
                Component::CurDir => {}
                Component::RootDir | Component::Prefix(_) => return Err(ABSOLUTE),
            }
        }
        let joined = self.root.join(rel);
        let mut probe = joined.as_path();
        let real = loop {
            match std::fs::canonicalize(probe) {
                Ok(real) => break real,
                Err(e) if e.kind() == io::ErrorKind::NotFound => probe = probe.parent().ok_or(UNRESOLVED)?,
                Err(_) => return Err(UNRESOLVED),
            }
        };
        if real.starts_with(&self.root) { Ok(joined) } else { Err(ESCAPES) }
    }
}

fn dir_reason(why: &'static str) -> &'static str {
    match why {
        ABSOLUTE => ABSOLUTE_DIR,
        ESCAPES => ESCAPES_DIR,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> (tempfile::TempDir, ToolRules) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("bin")).expect("mkdir");
        std::fs::write(dir.path().join("bin/tool"), "#!/bin/sh\n").expect("write");
        let rules = ToolRules::new(dir.path(), &[]).expect("rules");
        (dir, rules)
    }

    #[test]
    fn paths_inside_the_root_and_bare_names_pass() {
        let (_dir, rules) = project();
        let ok = rules.resolve("./bin/tool", Some("bin")).expect("inside");
        assert_eq!(ok.program, rules.root().join("./bin/tool"));
        assert_eq!(ok.working_dir, rules.root().join("bin"));
        assert_eq!(rules.resolve("python3", None).expect("name").program, PathBuf::from("python3"));
        assert!(rules.resolve("bin/../bin/tool", Some("not-yet/created")).is_ok(), "`..` that stays inside");
    }

    #[test]
    fn absolute_and_escaping_paths_are_refused() {
        let (_dir, rules) = project();
        assert_eq!(rules.resolve("/bin/sh", None), Err(Violation::Command(ABSOLUTE)));
        assert_eq!(rules.resolve("../../bin/sh", None), Err(Violation::Command(ESCAPES)));
        assert_eq!(rules.resolve("x", Some("/")), Err(Violation::WorkingDir(ABSOLUTE_DIR)));
        assert_eq!(rules.resolve("x", Some("../../../../")), Err(Violation::WorkingDir(ESCAPES_DIR)));
        assert_eq!(rules.resolve("x", Some("bin/../..")), Err(Violation::WorkingDir(ESCAPES_DIR)));
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_out_of_the_root_are_refused() {
        let (dir, rules) = project();
        let outside = tempfile::tempdir().expect("outside");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).expect("symlink");
        assert_eq!(rules.resolve("out/sh", None), Err(Violation::Command(ESCAPES)), "missing file behind the link");
        assert_eq!(rules.resolve("x", Some("out")), Err(Violation::WorkingDir(ESCAPES_DIR)));
        assert_eq!(rules.resolve("x", Some("out/deeper/still")), Err(Violation::WorkingDir(ESCAPES_DIR)));
    }

    #[cfg(unix)]
    #[test]
    fn listed_programs_run_from_anywhere() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rules = ToolRules::new(dir.path(), &[PathBuf::from("/bin/sh")]).expect("rules");
        assert_eq!(rules.resolve("/bin/sh", None).expect("listed").program, PathBuf::from("/bin/sh"));
        let real = std::fs::canonicalize("/bin/sh").expect("real sh");
        assert!(rules.resolve(real.to_str().expect("utf-8"), None).is_ok(), "its real path too");
        assert!(rules.resolve("/bin/ls", None).is_err(), "only what is listed");
        assert!(rules.resolve("x", Some("/tmp")).is_err(), "no exception for the working directory");
    }
}
