//! The VM's two raw disks (see docs/image.md, "Host contract").
//!
//! - Configuration disk: a ustar archive from offset 0 holding `run.json` (data only, read by
//!   the viewer binary, never by a shell) and, when restoring, `viewerdb.archive`.
//! - Output disk: zeros; at shutdown the guest writes the exported database from offset 512
//!   and then the header line `VRUNDB1 <size> <sha256>` in block 0.

use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;

pub use vrun_proto::outdisk::{read_saved, write_saved, Saved};

const MIB: u64 = 1 << 20;

pub use vrun_proto::job::RunJson as RunConfig;

fn append(builder: &mut tar::Builder<&mut File>, name: &str, size: u64, data: impl Read) -> std::io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o600);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut h, name, data)
}

/// Creates (or truncates) a disk file readable by its owner only: the configuration disk holds
/// the viewer's API key and both disks its database, and the work directory's file names are
/// predictable. libvirt hands the files to QEMU's user by changing their owner.
fn create_private(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).mode(0o600).open(path)?;
    // `mode` only applies to a new file.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

/// Writes the configuration disk; returns its size.
pub fn write_config_disk(path: &Path, run: &RunConfig, restore: Option<&Path>) -> std::io::Result<u64> {
    let mut f = create_private(path)?;
    {
        let mut b = tar::Builder::new(&mut f);
        let json = serde_json::to_vec_pretty(run).map_err(std::io::Error::other)?;
        append(&mut b, "run.json", json.len() as u64, json.as_slice())?;
        if let Some(archive) = restore {
            let a = File::open(archive)?;
            let len = a.metadata()?.len();
            append(&mut b, "viewerdb.archive", len, a)?;
        }
        b.finish()?;
    }
    let len = f.stream_position()?;
    let padded = len.div_ceil(MIB).max(1) * MIB;
    f.set_len(padded)?;
    f.sync_all()?;
    Ok(padded)
}

/// Creates a sparse, zeroed output disk big enough for an archive of `expected` bytes.
pub fn create_output_disk(path: &Path, expected: u64) -> std::io::Result<()> {
    let size = (expected * 2 + 64 * MIB).div_ceil(MIB) * MIB;
    let f = create_private(path)?;
    f.set_len(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{SeekFrom, Write};

    #[test]
    fn config_disk_is_a_tar_with_run_json_and_archive() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a");
        std::fs::write(&archive, b"db bytes").unwrap();
        let run = RunConfig {
            project: "p".into(),
            viewer: "v".into(),
            users: vec!["alice".into()],
            apikey: "k".into(),
            urluuid: "proxy-x".into(),
            port: 8080,
        };
        let disk = dir.path().join("cfg.img");
        let size = write_config_disk(&disk, &run, Some(&archive)).unwrap();
        assert_eq!(size % MIB, 0);
        let mut t = tar::Archive::new(File::open(&disk).unwrap());
        let mut names = Vec::new();
        for e in t.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut body = String::new();
            e.read_to_string(&mut body).unwrap();
            if name == "run.json" {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert_eq!(v["users"][0], "alice");
            } else {
                assert_eq!(body, "db bytes");
            }
            names.push(name);
        }
        assert_eq!(names, ["run.json", "viewerdb.archive"]);
    }

    #[test]
    fn output_disk_round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.img");
        create_output_disk(&out, 10).unwrap();
        assert_eq!(read_saved(&out).unwrap(), None, "a fresh disk holds nothing");
        let sum = write_saved(&out, b"the database").unwrap();
        assert_eq!(read_saved(&out).unwrap().unwrap(), Saved { bytes: b"the database".to_vec(), sha256: sum });
        // Flip a byte of the archive: refused, never stored.
        let mut f = std::fs::OpenOptions::new().write(true).open(&out).unwrap();
        f.seek(SeekFrom::Start(513)).unwrap();
        f.write_all(b"X").unwrap();
        assert!(read_saved(&out).is_err());
    }
}
