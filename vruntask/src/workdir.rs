//! The job's private work directory: disks and the serial log, removed on every exit path.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub struct WorkDir {
    pub path: PathBuf,
}

impl WorkDir {
    /// `<root>/<domain name>`. Mode 0711: QEMU runs as an unprivileged user and must reach
    /// the disk files libvirt hands it, but nobody may list the directory.
    pub fn create(root: &Path, name: &str) -> std::io::Result<WorkDir> {
        std::fs::create_dir_all(root)?;
        let path = root.join(name);
        if path.exists() {
            // Left by an earlier attempt at this very generation: nothing in it is worth keeping.
            std::fs::remove_dir_all(&path)?;
        }
        std::fs::create_dir(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o711))?;
        Ok(WorkDir { path })
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn remove(&self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove work directory");
        }
    }
}
