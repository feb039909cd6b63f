//! What only the daemon may read: fresh random tokens (secrets, viewer API keys) and the
//! files that hold them or other private data (secrets, job descriptions, archives).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// `bytes` random bytes from the OS CSPRNG, hex-encoded.
pub fn random_hex(bytes: usize) -> std::io::Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(hex::encode(buf))
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename) with mode 0600.
pub fn write_private_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Writes `bytes` to `path` (mode 0600 when created) in place: no temporary file, no fsync.
/// Only for a file no one reads while it is written and whose one reader is a process of
/// this same boot, which an OS crash ends too: a local job's description, written under its
/// job's lock and read once by the job spawned right after. Its fsyncs protected nothing and,
/// while jobs started, halved the disk's fsync rate left for the store's commits; its
/// temporary file and rename cost a directory operation per job and could be left behind
/// by a crash (docs/performance.md, durable launches).
pub fn write_private_in_place(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?.write_all(bytes)
}
