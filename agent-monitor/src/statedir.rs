//! One daemon per state directory, enforced with an exclusive `fd-lock` on
//! `<state>/agent-monitor.lock`. The holder writes its PID into the file so that a second
//! daemon can say who holds it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use fd_lock::{RwLock, RwLockWriteGuard};

#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error("state directory {dir} is in use by agent-monitor pid {pid}")]
    InUse { dir: PathBuf, pid: String },
    #[error("cannot use state directory {dir}: {source}")]
    Io { dir: PathBuf, source: std::io::Error },
}

/// Held for the daemon's lifetime; dropping it releases the directory.
pub struct StateDirLock {
    _guard: RwLockWriteGuard<'static, File>,
}

pub fn lock(dir: &Path) -> Result<StateDirLock, StateDirError> {
    let io = |source| StateDirError::Io { dir: dir.to_path_buf(), source };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(dir.join("agent-monitor.lock"))
        .map_err(io)?;
    // The lock must outlive this function; the File it wraps is leaked on purpose (one per
    // daemon start), the guard itself is released on drop.
    let lock: &'static mut RwLock<File> = Box::leak(Box::new(RwLock::new(file)));
    match lock.try_write() {
        Ok(mut guard) => {
            guard.set_len(0).map_err(io)?;
            guard.rewind().map_err(io)?;
            writeln!(guard, "{}", std::process::id()).map_err(io)?;
            guard.sync_all().map_err(io)?;
            Ok(StateDirLock { _guard: guard })
        }
        Err(_) => {
            let mut pid = String::new();
            let _ = File::open(dir.join("agent-monitor.lock")).and_then(|mut f| f.read_to_string(&mut pid));
            let pid = pid.trim();
            Err(StateDirError::InUse {
                dir: dir.to_path_buf(),
                pid: if pid.is_empty() { "unknown".into() } else { pid.into() },
            })
        }
    }
}
