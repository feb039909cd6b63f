//! A run's lock on its node: `<runtime dir>/jobs/<domain name>.lock`, held (flock) by the
//! `vruntask run` that owns the domain from before the domain is defined until after it is
//! removed. The node's DomainMonitor asks "is anyone holding it?" to learn whether a
//! domain's job still lives, the node-local truth that needs neither agent-monitor nor the
//! job system: a job killed with `kill -9`, by Slurm, or with its node's slurmd, drops the
//! lock the moment its process is gone. A domain whose lock file is missing has no job
//! either (the run removes the file just before it exits, while still holding it).

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The lock file of domain `name`'s run. Domain names are vrun's own (validated parts).
pub fn path(runtime_dir: &Path, name: &str) -> PathBuf {
    runtime_dir.join("jobs").join(format!("{name}.lock"))
}

/// A held run lock; the file goes when this is dropped (the lock with the process).
pub struct RunLock {
    path: PathBuf,
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another vruntask on this node runs this generation (it holds {0})")]
    Held(PathBuf),
    #[error("cannot take the node's run lock {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

fn flock(file: &File, op: libc::c_int) -> std::io::Result<bool> {
    // SAFETY: flock(2) on a descriptor this process owns.
    if unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

impl RunLock {
    /// Takes the lock of domain `name`'s run.
    pub fn take(runtime_dir: &Path, name: &str) -> Result<RunLock, LockError> {
        let path = path(runtime_dir, name);
        let io = |source| LockError::Io { path: path.clone(), source };
        let dir = path.parent().expect("lock path has a parent");
        std::fs::create_dir_all(dir).map_err(io)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        // A DomainMonitor's probe holds the lock for an instant: try for a moment.
        for _ in 0..50 {
            if flock(&file, libc::LOCK_EX).map_err(io)? {
                return Ok(RunLock { path, _file: file });
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Err(LockError::Held(path))
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Removed while still held, so no prober ever finds the file of a finished run free
        // and mistakes it for one whose job died.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether a live run holds domain `name`'s lock. A missing file means no run; an error
/// other than that counts as held (never destroy a domain on a doubt).
pub fn is_held(runtime_dir: &Path, name: &str) -> bool {
    let file = match File::open(path(runtime_dir, name)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
        Err(_) => return true,
    };
    // Shared is enough to test, and never blocks another prober.
    match flock(&file, libc::LOCK_SH) {
        Ok(got) => !got,
        Err(_) => true,
    }
}

/// Removes the lock file of a run that is gone (after its domain was salvaged).
pub fn remove_stale(runtime_dir: &Path, name: &str) {
    if !is_held(runtime_dir, name) {
        let _ = std::fs::remove_file(path(runtime_dir, name));
    }
}

/// This node's name: `--node-name`, else Slurm's name for it (`SLURMD_NODENAME`, set in
/// every batch job), else the host name. `vruntask run` writes it into the domain's
/// metadata and `vruntask domain-monitor` acts only on domains naming it, so both must
/// resolve it the same way.
pub fn node_name(configured: Option<&str>) -> Result<String, String> {
    let name = match configured {
        Some(n) => n.to_string(),
        None => match std::env::var("SLURMD_NODENAME") {
            Ok(n) if !n.is_empty() => n,
            _ => hostname()?,
        },
    };
    if vrun_proto::names::is_node_name(&name) {
        Ok(name)
    } else {
        Err(format!(
            "node name {:?} is not 1 to 64 characters from [A-Za-z0-9._-]",
            name.chars().take(80).collect::<String>()
        ))
    }
}

fn hostname() -> Result<String, String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return Err(format!("cannot read the host name: {}", std::io::Error::last_os_error()));
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_while_the_run_lives_and_gone_after() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_held(dir.path(), "vrun-d1"), "no file, no run");
        let lock = RunLock::take(dir.path(), "vrun-d1").unwrap();
        assert!(is_held(dir.path(), "vrun-d1"));
        assert!(matches!(RunLock::take(dir.path(), "vrun-d1"), Err(LockError::Held(_))));
        drop(lock);
        assert!(!is_held(dir.path(), "vrun-d1"));
        assert!(!path(dir.path(), "vrun-d1").exists(), "a finished run leaves no file");
        assert_eq!(node_name(Some("n2")).unwrap(), "n2");
        assert!(node_name(Some("n2; reboot")).is_err());
    }
}
