//! The output disk's format (docs/image.md, "Output disk"): the guest writes the exported
//! viewer database from offset 512, then the header line `VRUNDB1 <size> <sha256>` in block 0.
//! vruntask reads it at teardown; agent-monitor reads it when it salvages an orphaned domain.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

const HEADER_MAGIC: &str = "VRUNDB1";

/// A database archive the guest saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub bytes: Vec<u8>,
    pub sha256: String,
}

/// Reads the output disk. `Ok(None)`: the guest saved nothing. `Err`: a header that lies
/// (truncated or corrupt archive), which must never be stored over a good version.
pub fn read_saved(path: &Path) -> Result<Option<Saved>, String> {
    let mut f = File::open(path).map_err(|e| format!("cannot open output disk: {e}"))?;
    let mut block = [0u8; 512];
    f.read_exact(&mut block).map_err(|e| format!("cannot read output disk: {e}"))?;
    if !block.starts_with(HEADER_MAGIC.as_bytes()) {
        return Ok(None);
    }
    let line_end = block.iter().position(|&b| b == b'\n').ok_or("output disk header has no end")?;
    let line = std::str::from_utf8(&block[..line_end]).map_err(|_| "output disk header is not text")?;
    let mut parts = line.split(' ');
    let (Some(_), Some(size), Some(sum), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(format!("malformed output disk header {line:?}"));
    };
    let size: u64 = size.parse().map_err(|_| format!("bad size in output disk header {line:?}"))?;
    let disk_len = f.metadata().map_err(|e| e.to_string())?.len();
    if size > disk_len.saturating_sub(512) {
        return Err(format!("output disk header claims {size} bytes, the disk holds {disk_len}"));
    }
    f.seek(SeekFrom::Start(512)).map_err(|e| e.to_string())?;
    let mut bytes = vec![0u8; size as usize];
    f.read_exact(&mut bytes).map_err(|e| format!("cannot read saved archive: {e}"))?;
    let actual = hex::encode(Sha256::digest(&bytes));
    if actual != sum.to_ascii_lowercase() {
        return Err(format!("saved archive checksum {actual} does not match the header's {sum}"));
    }
    Ok(Some(Saved { bytes, sha256: actual }))
}

/// What a guest writes; used by tests to play the guest's part.
pub fn write_saved(path: &Path, bytes: &[u8]) -> std::io::Result<String> {
    let sum = hex::encode(Sha256::digest(bytes));
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.seek(SeekFrom::Start(512))?;
    f.write_all(bytes)?;
    let mut block = format!("{HEADER_MAGIC} {} {sum}\n", bytes.len()).into_bytes();
    block.resize(512, 0);
    f.seek(SeekFrom::Start(0))?;
    f.write_all(&block)?;
    Ok(sum)
}
