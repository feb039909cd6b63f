//! Just enough of the zip format to read the source archive Code Dx clients upload as
//! `file2`: the central directory, stored and deflated entries. No zip64, no encryption
//! (such entries are skipped). Every size is bounded by the caller.

use std::io::{Read, Seek, SeekFrom};

/// One file in the archive.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    method: u16,
    compressed: u64,
    pub size: u64,
    header_offset: u64,
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// The entries of the archive (files only), at most `max_entries`.
pub fn entries<R: Read + Seek>(r: &mut R, max_entries: usize) -> Result<Vec<Entry>, String> {
    let len = r.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
    // The end-of-central-directory record is in the last 22 + 65535 bytes.
    let tail_len = len.min(22 + 65_535);
    let mut tail = vec![0u8; tail_len as usize];
    r.seek(SeekFrom::Start(len - tail_len)).map_err(|e| e.to_string())?;
    r.read_exact(&mut tail).map_err(|e| e.to_string())?;
    let eocd = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| tail[i..].starts_with(b"PK\x05\x06"))
        .ok_or("no end of central directory (not a zip, or cut short)")?;
    let count = u16_at(&tail, eocd + 10) as usize;
    let cd_size = u32_at(&tail, eocd + 12) as u64;
    let cd_offset = u32_at(&tail, eocd + 16) as u64;
    if cd_offset == 0xFFFF_FFFF || cd_offset + cd_size > len {
        return Err("zip64 or a central directory outside the file".into());
    }
    let mut cd = vec![0u8; cd_size as usize];
    r.seek(SeekFrom::Start(cd_offset)).map_err(|e| e.to_string())?;
    r.read_exact(&mut cd).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut i = 0;
    for _ in 0..count {
        if i + 46 > cd.len() || !cd[i..].starts_with(b"PK\x01\x02") {
            return Err("a damaged central directory".into());
        }
        let (flags, method) = (u16_at(&cd, i + 8), u16_at(&cd, i + 10));
        let (compressed, size) = (u32_at(&cd, i + 20) as u64, u32_at(&cd, i + 24) as u64);
        let (name_len, extra_len, comment_len) =
            (u16_at(&cd, i + 28) as usize, u16_at(&cd, i + 30) as usize, u16_at(&cd, i + 32) as usize);
        let header_offset = u32_at(&cd, i + 42) as u64;
        let name_end = i + 46 + name_len;
        if name_end > cd.len() {
            return Err("a damaged central directory".into());
        }
        let name = String::from_utf8_lossy(&cd[i + 46..name_end]).replace('\\', "/");
        i = name_end + extra_len + comment_len;
        let encrypted = flags & 1 != 0;
        let zip64 = compressed == 0xFFFF_FFFF || size == 0xFFFF_FFFF || header_offset == 0xFFFF_FFFF;
        if name.ends_with('/') || encrypted || zip64 || !(method == 0 || method == 8) {
            continue;
        }
        out.push(Entry { name, method, compressed, size, header_offset });
        if out.len() >= max_entries {
            break;
        }
    }
    Ok(out)
}

/// The content of `e`, refused when it inflates beyond `max` bytes.
pub fn read<R: Read + Seek>(r: &mut R, e: &Entry, max: u64) -> Result<Vec<u8>, String> {
    if e.size > max {
        return Err(format!("{} is larger than {max} bytes", e.name));
    }
    let mut header = [0u8; 30];
    r.seek(SeekFrom::Start(e.header_offset)).map_err(|x| x.to_string())?;
    r.read_exact(&mut header).map_err(|x| x.to_string())?;
    if !header.starts_with(b"PK\x03\x04") {
        return Err(format!("{}: no local header", e.name));
    }
    let skip = u16_at(&header, 26) as i64 + u16_at(&header, 28) as i64;
    r.seek(SeekFrom::Current(skip)).map_err(|x| x.to_string())?;
    let raw = r.take(e.compressed);
    let mut out = Vec::new();
    let got = match e.method {
        0 => raw.take(max + 1).read_to_end(&mut out),
        _ => flate2::read::DeflateDecoder::new(raw).take(max + 1).read_to_end(&mut out),
    };
    got.map_err(|x| format!("{}: {x}", e.name))?;
    if out.len() as u64 > max {
        return Err(format!("{} inflates beyond {max} bytes", e.name));
    }
    Ok(out)
}
