//! Viewer database archives handed in by `storeviewer`.
//!
//! Files live in `<state>/archives/<project>/<viewer>/g<generation>-<sha256>.archive`. A new
//! archive is written to a temp file, fsynced and renamed before its row is committed, so the
//! newest row always names a complete, verified file; the previous good one is never
//! overwritten. The newest `keep` versions per pair are kept, older files removed after the
//! commit that dropped their rows.

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
    std::fs::create_dir_all(dir).map_err(io)?;
    crate::private::write_private_atomic(path, bytes).map_err(io)
}

/// An archive file that is on disk and about to be recorded.
pub struct Stored<'a> {
    pub pair: &'a Pair,
    pub generation: i64,
    pub checksum: &'a str,
    pub size: usize,
    pub path: &'a Path,
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
        "SELECT version, path FROM archives WHERE project = ?1 AND viewer = ?2 ORDER BY version DESC LIMIT -1 OFFSET ?3",
    )?;
    let old: Vec<(i64, String)> = stmt
        .query_map(params![pair.project(), pair.viewer(), keep as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (version, _) in &old {
        c.prepare_cached("DELETE FROM archives WHERE version = ?1")?.execute(params![version])?;
    }
    Ok(old.into_iter().map(|(_, p)| PathBuf::from(p)).collect())
}

/// (version, generation, checksum, size) of the pair's stored archives, newest first.
pub fn list(c: &Connection, pair: &Pair) -> Db<Vec<(i64, i64, String, i64)>> {
    let mut stmt = c.prepare_cached(
        "SELECT version, generation, checksum, size FROM archives WHERE project = ?1 AND viewer = ?2 ORDER BY version DESC",
    )?;
    let rows = stmt.query_map(params![pair.project(), pair.viewer()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Keeps a viewer database for `generation` of `pair`, if that generation is still the pair's
/// newest (a newer run's work must never be replaced by an older one's): the file is written
/// durably first, then recorded and the oldest versions pruned in one transaction that checks
/// the generation again. Used by `storeviewer` and by the sweep's salvage.
pub async fn keep(
    store: &Store,
    settings: &ArchiveSettings,
    pair: &Pair,
    generation: i64,
    checksum: &str,
    bytes: Vec<u8>,
) -> Result<(), RpcError> {
    let (p, c) = (pair.clone(), checksum.to_string());
    store.read(move |conn| instances::current(conn, &p, generation).map(drop)).await?;
    let path = archive_path(&settings.dir, pair, generation, checksum);
    let size = bytes.len();
    let file = path.clone();
    tokio::task::spawn_blocking(move || write_file(&file, &bytes))
        .await
        .map_err(|e| RpcError::new(FaultCode::Internal, e.to_string()))??;
    let (p, keep) = (pair.clone(), settings.keep);
    let recorded = store
        .write(move |conn| {
            instances::current(conn, &p, generation)?;
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
