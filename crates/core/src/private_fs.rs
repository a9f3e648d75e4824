//! Files only the engine's user may read: the data directory (0700) and what it keeps there
//! (database, WAL, secrets: 0600). Payloads, outputs, e-mails and key hashes live there.

use std::io;
use std::path::Path;

/// Mode of the data directory.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file the engine keeps in it.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) as 0700. An existing directory is left as it is (it
/// may be shared, such as `/var/lib`): the answer says whether other users can enter it, for a
/// warning; the files the engine keeps there are 0600 either way.
pub fn ensure_private_dir(dir: &Path) -> io::Result<DirAccess> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder.create(dir)?;
    access(dir)
}

/// Who else than the engine's user may enter a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirAccess {
    Private,
    /// Group or other users have some permission on it.
    Shared,
}

#[cfg(unix)]
fn access(dir: &Path) -> io::Result<DirAccess> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    Ok(if mode & 0o077 == 0 { DirAccess::Private } else { DirAccess::Shared })
}

#[cfg(not(unix))]
fn access(dir: &Path) -> io::Result<DirAccess> {
    std::fs::metadata(dir).map(|_| DirAccess::Private)
}

/// Narrows an existing file to 0600; a missing file is not an error.
pub fn restrict_file(path: &Path) -> io::Result<()> {
    match restrict(path, FILE_MODE) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Open options that create a file as 0600 (umask can only narrow it further).
pub fn private_open_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    options
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let current = std::fs::metadata(path)?.permissions().mode() & 0o7777;
    // Only ever removes bits: an operator's stricter mode stays.
    if current & !mode != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(current & mode))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict(path: &Path, _mode: u32) -> io::Result<()> {
    std::fs::metadata(path).map(|_| ())
}
