//! Viewer database archives handed in by `storeviewer`.
//!
//! Files live in `<state>/archives/<project>/<viewer>/g<generation>-<sha256>.archive`. A new
//! archive is written to a temp file, fsynced and renamed before its row is committed, so the
//! newest row always names a complete, verified file; the previous good one is never
//! overwritten. The newest `keep` versions per pair are kept, older files removed after the
//! commit that dropped their rows.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection};
use sha2::{Digest, Sha256};
use vrun_proto::{FaultCode, Pair, RpcError};

use crate::instances;
use crate::store::{now_ms, Db, Store};

/// Where archives are kept, and how many versions of each pair.
#[derive(Debug, Clone)]
pub struct ArchiveSettings {
    pub dir: PathBuf,
    pub keep: usize,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn archive_path(root: &Path, pair: &Pair, generation: i64, checksum: &str) -> PathBuf {
    root.join(pair.project()).join(pair.viewer()).join(format!("g{generation}-{checksum}.archive"))
}

/// Writes the archive file durably. Names come from validated pairs and a hex checksum.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), RpcError> {
    let io = |e: std::io::Error| RpcError::new(FaultCode::Internal, format!("cannot store archive: {e}"));
    let dir = path.parent().expect("archive path has a parent");
    create_dirs_durably(dir).map_err(io)?;
    crate::private::write_private_atomic(path, bytes).map_err(|e| {
        // A failed write (a full disk) left its temp file behind: 237,568 bytes of a
        // database nobody will record (issue 13). write_private_atomic names it `<path>.tmp`.
        let _ = std::fs::remove_file(path.with_extension("tmp"));
        io(e)
    })
}

/// Creates `dir` and its missing parents owner-only, fsyncing the parent of each one created:
/// otherwise after a power loss a committed archive row could name a file whose directory
/// never reached the disk.
fn create_dirs_durably(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs_durably(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Some(parent) = dir.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Removes temp files that a crash in the middle of a store left under `root`. Only the
/// daemon writes there, and this runs before it serves, so no store is in progress.
pub fn remove_leftovers(root: &Path) {
    let Ok(projects) = std::fs::read_dir(root) else { return };
    for viewer_dir in projects.flatten().filter_map(|p| std::fs::read_dir(p.path()).ok()).flatten().flatten() {
        let Ok(files) = std::fs::read_dir(viewer_dir.path()) else { continue };
        for f in files.flatten().map(|f| f.path()).filter(|p| p.extension().is_some_and(|e| e == "tmp")) {
            match std::fs::remove_file(&f) {
                Ok(()) => {
                    tracing::warn!(path = %f.display(), "removed the temp file of an archive write that did not finish")
                }
                Err(e) => tracing::warn!(path = %f.display(), error = %e, "cannot remove an unfinished archive write"),
            }
        }
    }
}

/// An archive file that is on disk and about to be recorded.
pub struct Stored<'a> {
    pub pair: &'a Pair,
    pub generation: i64,
    pub checksum: &'a str,
    pub size: usize,
    pub path: &'a Path,
}

/// Refuses (fault 3) a generation the pair never had.
fn of_pair(conn: &Connection, pair: &Pair, generation: i64) -> Db<()> {
    match instances::by_generation(conn, generation)? {
        Some(i) if &i.pair == pair => Ok(()),
        _ => Err(RpcError::new(FaultCode::UnknownInstance, format!("no generation {generation} of {pair}")).into()),
    }
}

/// Records a stored archive and returns the files of versions that fell off the end.
pub fn record(c: &Connection, a: &Stored<'_>, keep: usize, now_ms: i64) -> Db<Vec<PathBuf>> {
    let (pair, generation, checksum, size) = (a.pair, a.generation, a.checksum, a.size);
    let path_s = a.path.to_string_lossy();
    let already: bool = c
        .prepare_cached("SELECT count(*) FROM archives WHERE project = ?1 AND viewer = ?2 AND path = ?3")?
        .query_row(params![pair.project(), pair.viewer(), path_s], |r| r.get::<_, i64>(0))?
        > 0;
    if !already {
        c.prepare_cached(
            "INSERT INTO archives (project, viewer, generation, checksum, size, path, stored_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![pair.project(), pair.viewer(), generation, checksum, size as i64, path_s, now_ms])?;
    }
    let mut stmt = c.prepare_cached(
        "SELECT version, path FROM archives WHERE project = +?1 AND viewer = +?2
         ORDER BY generation DESC, version DESC LIMIT -1 OFFSET ?3",
    )?;
    let old: Vec<(i64, String)> = stmt
        .query_map(params![pair.project(), pair.viewer(), keep as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (version, _) in &old {
        c.prepare_cached("DELETE FROM archives WHERE version = ?1")?.execute(params![version])?;
    }
    Ok(old.into_iter().map(|(_, p)| PathBuf::from(p)).collect())
}

/// (version, generation, checksum, size) of the pair's stored archives, newest first
/// (by generation, then arrival).
pub fn list(c: &Connection, pair: &Pair) -> Db<Vec<(i64, i64, String, i64)>> {
    let mut stmt = c.prepare_cached(
        "SELECT version, generation, checksum, size FROM archives WHERE project = +?1 AND viewer = +?2
         ORDER BY generation DESC, version DESC",
    )?;
    let rows =
        stmt.query_map(params![pair.project(), pair.viewer()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Forgets every stored archive of the pair and returns their files, to be removed after
/// the commit (a file removed first and a rolled-back commit would leave rows naming nothing).
pub fn delete_all(c: &Connection, pair: &Pair) -> Db<Vec<PathBuf>> {
    let mut stmt = c.prepare_cached("DELETE FROM archives WHERE project = ?1 AND viewer = ?2 RETURNING path")?;
    let paths = stmt.query_map(params![pair.project(), pair.viewer()], |r| r.get::<_, String>(0))?;
    Ok(paths.map(|p| p.map(PathBuf::from)).collect::<rusqlite::Result<_>>()?)
}

/// Keeps a viewer database for `generation` of `pair`: the file is written durably first, then
/// recorded and the oldest versions pruned in one transaction. Versions are ordered by
/// generation, then by arrival, so a database of an older generation (a job that could store
/// only after a newer run began) is kept as an older version and never becomes the one a
/// launch restores over a newer run's work; refusing it lost it (issue 13). Used by
/// `storeviewer`, by the sweep's salvage and for output disks jobs could not store.
pub async fn keep(
    store: &Store,
    settings: &ArchiveSettings,
    pair: &Pair,
    generation: i64,
    checksum: &str,
    bytes: Vec<u8>,
) -> Result<(), RpcError> {
    let (p, c) = (pair.clone(), checksum.to_string());
    store.read(move |conn| of_pair(conn, &p, generation)).await?;
    let path = archive_path(&settings.dir, pair, generation, checksum);
    let size = bytes.len();
    let file = path.clone();
    tokio::task::spawn_blocking(move || write_file(&file, &bytes))
        .await
        .map_err(|e| RpcError::new(FaultCode::Internal, e.to_string()))??;
    let (p, keep) = (pair.clone(), settings.keep);
    let recorded = store
        .write(move |conn| {
            of_pair(conn, &p, generation)?;
            let stored = Stored { pair: &p, generation, checksum: &c, size, path: &path };
            record(conn, &stored, keep, now_ms())
        })
        .await;
    for old in recorded? {
        if let Err(e) = std::fs::remove_file(&old) {
            tracing::warn!(path = %old.display(), error = %e, "cannot remove old archive");
        }
    }
    Ok(())
}
