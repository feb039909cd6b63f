//! `viewer export` / `viewer import`: the whole state as one file.
//!
//! The archive is a plain SQLite database file: a consistent snapshot made with
//! `VACUUM INTO` (a read transaction, so it is safe while a server is writing), written to
//! a temporary name beside the target, synced, then renamed into place. Uploads in
//! progress are not part of the state; jobs that were queued or running are marked failed
//! when a server next starts on the restored data.
//!
//! Import copies the archive into the data directory under a temporary name and checks
//! the copy (SQLite header, `application_id`, `user_version` not newer than this build,
//! `PRAGMA integrity_check`, foreign keys) and migrates it to the current schema. Only then
//! is the live database replaced, by rename. A refused archive leaves the data directory
//! as it was. Import refuses to run while a server holds the data directory's lock.

use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::OpenFlags;

use crate::db::{self, DbError, APPLICATION_ID, DB_FILE, SCHEMA_VERSION};

/// Lock file a running server holds (exclusive `flock`) in the data directory.
pub const LOCK_FILE: &str = "viewer.lock";

/// Why an export or import did not happen. [`ArchiveError::exit_code`] is the CLI's status.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("no viewer database in {0}")]
    NoDatabase(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("archive refused: {0}")]
    Invalid(String),
    #[error("a viewer server is running on {0}; stop it first")]
    Busy(PathBuf),
    #[error("{0}")]
    Db(#[from] DbError),
}

impl ArchiveError {
    /// 3: the archive was refused; 4: the data directory is in use; 1: anything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            ArchiveError::Invalid(_) => 3,
            ArchiveError::Busy(_) => 4,
            _ => 1,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io { path: path.to_owned(), source }
}

fn invalid(e: impl std::fmt::Display) -> ArchiveError {
    ArchiveError::Invalid(e.to_string())
}

/// A temporary sibling of `path` that no one else will pick.
fn temp_beside(path: &Path, tag: &str) -> PathBuf {
    let mut rnd = [0u8; 6];
    let _ = getrandom::fill(&mut rnd);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{tag}-{}", hex::encode(rnd)))
}

/// Removes a temporary file when dropped, unless disarmed.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Writes a consistent snapshot of `data_dir`'s database to `out`.
pub fn export(data_dir: &Path, out: &Path) -> Result<(), ArchiveError> {
    let db_path = data_dir.join(DB_FILE);
    if !db_path.is_file() {
        return Err(ArchiveError::NoDatabase(data_dir.to_owned()));
    }
    let conn = db::connect(&db_path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    let (app, _) = db::identity(&conn)?;
    if app != APPLICATION_ID {
        return Err(DbError::NotViewer(app).into());
    }
    let tmp = temp_beside(out, "export");
    let guard = TempFile(Some(tmp.clone()));
    conn.execute("VACUUM INTO ?1", [tmp.to_string_lossy()]).map_err(DbError::from)?;
    File::open(&tmp).and_then(|f| f.sync_all()).map_err(io(&tmp))?;
    std::fs::rename(&tmp, out).map_err(io(out))?;
    std::mem::forget(guard);
    sync_dir(out.parent().unwrap_or(Path::new(".")));
    Ok(())
}

/// Replaces `data_dir`'s state with the archive `archive`, after validating it.
pub fn import(data_dir: &Path, archive: &Path) -> Result<(), ArchiveError> {
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    let _lock = lock_data_dir(data_dir)?.ok_or_else(|| ArchiveError::Busy(data_dir.to_owned()))?;
    let db_path = data_dir.join(DB_FILE);
    let staged = temp_beside(&db_path, "import");
    let mut guard = TempFile(Some(staged.clone()));
    std::fs::copy(archive, &staged).map_err(io(archive))?;
    validate(&staged)?;

    // A WAL left by the old database would be replayed onto the new one: checkpoint it
    // into the old file (which is about to be replaced) and remove what is left.
    if db_path.exists() {
        if let Ok(conn) = rusqlite::Connection::open(&db_path) {
            let _ = conn.pragma_update(None, "wal_checkpoint", "TRUNCATE");
        }
    }
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", db_path.display()));
        match std::fs::remove_file(&side) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&side)(e)),
            _ => {}
        }
    }
    std::fs::rename(&staged, &db_path).map_err(io(&db_path))?;
    guard.0 = None;
    sync_dir(data_dir);
    Ok(())
}

/// Checks that `path` is a sound viewer database and migrates it to this build's schema.
fn validate(path: &Path) -> Result<(), ArchiveError> {
    // The first read (a pragma in connect, or identity) is what detects a non-database.
    let not_sqlite = |e: DbError| invalid(format!("not an SQLite database ({e})"));
    let mut conn = db::connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(not_sqlite)?;
    let (app, version) = db::identity(&conn).map_err(not_sqlite)?;
    if app != APPLICATION_ID {
        return Err(invalid(format!("not a viewer database (application_id {app:#x})")));
    }
    if !(1..=SCHEMA_VERSION).contains(&version) {
        return Err(invalid(format!("unknown schema version {version} (this viewer knows 1..={SCHEMA_VERSION})")));
    }
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(invalid)?;
    if check != "ok" {
        let first = check.lines().find(|l| !l.starts_with("***")).unwrap_or("").to_owned();
        return Err(invalid(format!("integrity check failed: {first}")));
    }
    let fk_violations: i64 =
        conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| r.get(0)).map_err(invalid)?;
    if fk_violations > 0 {
        return Err(invalid(format!("{fk_violations} foreign key violations")));
    }
    db::migrate(&mut conn).map_err(invalid)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(invalid)?;
    Ok(())
}

/// Takes the data directory's lock without waiting; `Ok(None)` when someone holds it.
/// The lock is released when the returned file is closed (dropped).
pub fn lock_data_dir(data_dir: &Path) -> Result<Option<File>, ArchiveError> {
    let path = data_dir.join(LOCK_FILE);
    let file = File::options().create(true).truncate(false).write(true).open(&path).map_err(io(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(io(&path)(e)),
    }
}

/// Makes a rename durable; best effort (not every filesystem supports it).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
