//! File modes of the state directory, set explicitly rather than left to the umask.
//!
//! With umask 022 the SQLite files (which hold every viewer's API key) came out 0644 and
//! `jobs/` 0755; only the state directory's 0700, applied when it was created, protected
//! them, and a state directory created by hand or restored from a backup may not be 0700
//! (issue 13). So at every start the directory and what agent-monitor keeps in it are set
//! owner-only, and anything that had to be tightened is logged.

use std::fs::OpenOptions;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Sets `path` to `mode` if it exists with any other; logs when it had more.
fn tighten(path: &Path, mode: u32) -> std::io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let old = meta.permissions().mode() & 0o7777;
    if old != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        if old & !mode != 0 {
            tracing::warn!(path = %path.display(), old = format!("{old:o}"), new = format!("{mode:o}"), "tightened permissions");
        }
    }
    Ok(())
}

/// Creates `dir` (and its parents) owner-only, or tightens it if it exists.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    tighten(dir, 0o700)
}

/// The state directory, its subdirectories, and the database files (created 0600 before
/// SQLite opens them: SQLite gives its `-wal` and `-shm` files the database file's mode).
pub fn secure_state_dir(state_dir: &Path, db: &Path) -> std::io::Result<()> {
    private_dir(state_dir)?;
    for sub in ["secrets", "jobs", "archives"] {
        private_dir(&state_dir.join(sub))?;
    }
    OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(db)?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        tighten(Path::new(&name), 0o600)?;
    }
    Ok(())
}
