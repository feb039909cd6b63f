//! The checksum of a platform image, computed the same way by agent-monitor (which puts it in
//! the job) and by vruntask on the node (which refuses a copy that differs): with no shared
//! filesystem, each node has its own copy of the image, and a stale or half-copied one must
//! fail the run with a clear reason rather than boot the wrong viewer.
//!
//! A platform file (disk image) is the SHA-256 of its bytes. A platform directory is the
//! SHA-256 of `sha256sum`-style lines (`<hex>  <name>\n`) for its regular files, sorted by
//! name, so `cd <image>; sha256sum * | sha256sum` reproduces it by hand.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

/// The platform checksum of the file or directory at `path`.
pub fn checksum(path: &Path) -> std::io::Result<String> {
    if !path.is_dir() {
        return file_sha256(path);
    }
    let mut names: Vec<String> = std::fs::read_dir(path)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    let mut h = Sha256::new();
    for n in names {
        h.update(format!("{}  {n}\n", file_sha256(&path.join(&n))?));
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn directory_checksum_follows_its_files() {
        let d = std::env::temp_dir().join(format!("vrun-platform-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("vmlinuz"), b"k").unwrap();
        std::fs::write(d.join("initrd.img"), b"i").unwrap();
        let a = super::checksum(&d).unwrap();
        assert_eq!(a, super::checksum(&d).unwrap());
        std::fs::write(d.join("initrd.img"), b"I").unwrap();
        assert_ne!(a, super::checksum(&d).unwrap(), "a changed file changes the checksum");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
