//! One daemon per state directory, enforced with an exclusive `fd-lock` on
//! `<state>/agent-monitor.lock`. The holder writes its PID into the file so that a second
//! daemon can say who holds it. The directory also holds the daemon's id ([`monitor_id`]).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use fd_lock::{RwLock, RwLockWriteGuard};

#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error("state directory {dir} is in use by agent-monitor pid {pid}")]
    InUse { dir: PathBuf, pid: String },
    #[error("{path} is not a valid agent-monitor id (12 hex digits); refusing to start rather than disown this directory's viewers")]
    BadId { path: PathBuf },
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

/// The file holding this state directory's agent-monitor id.
const ID_FILE: &str = "monitor-id";

/// The id of the agent-monitor that owns `dir`: 12 hex digits from the OS's CSPRNG, created
/// once with the state directory and kept for its life. It is part of every domain name,
/// work directory and domain metadata this daemon's jobs create, so that two daemons on one
/// hypervisor (a staging instance, the test suite beside a demo) never take each other's
/// VMs for their own orphans. An unreadable or malformed id refuses the start: replacing it
/// would disown every running viewer.
pub fn monitor_id(dir: &Path) -> Result<String, StateDirError> {
    let path = dir.join(ID_FILE);
    let io = |source| StateDirError::Io { dir: dir.to_path_buf(), source };
    match std::fs::read(&path) {
        Ok(bytes) => {
            let id = std::str::from_utf8(&bytes).unwrap_or("").trim();
            if vrun_proto::names::is_monitor_id(id) {
                Ok(id.to_string())
            } else {
                Err(StateDirError::BadId { path })
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut raw = [0u8; vrun_proto::names::MONITOR_ID_LEN / 2];
            getrandom::fill(&mut raw).map_err(|e| io(std::io::Error::other(e.to_string())))?;
            let id = hex::encode(raw);
            // create_new: two starts racing on a fresh directory cannot both win (the state
            // lock is held by the caller anyway).
            let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(io)?;
            writeln!(f, "{id}").map_err(io)?;
            f.sync_all().map_err(io)?;
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
            tracing::info!(monitor_id = %id, "created this state directory's agent-monitor id");
            Ok(id)
        }
        Err(e) => Err(io(e)),
    }
}
