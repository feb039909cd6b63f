//! The SQLite store: opening, pragmas and schema migrations.
//!
//! One database file, `viewer.db`, in the data directory, in WAL mode so that pages keep
//! reading while an import writes. The schema lives in numbered files under
//! `sql/viewer/`, embedded at compile time; `PRAGMA user_version` records how many have
//! been applied and `PRAGMA application_id` marks the file as ours, which is what
//! `viewer import` checks before it trusts an archive.
//!
//! Connections are cheap to open and not shared: every request and every import opens its
//! own ([`Db::connect`]), which keeps the async side free of locks around a `Connection`.

pub mod findings;
pub mod identity;
pub mod listing;
pub mod projects;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use vrun_migrate::{MigrateError, Schema};

/// Marks a database as a viewer database ("VRVW").
pub const APPLICATION_ID: i32 = 0x5652_5657;

/// The database file inside the data directory.
pub const DB_FILE: &str = "viewer.db";

/// Migration scripts, in order (index + 1 is the schema version each one produces), and
/// the mark that makes a file a viewer database.
const SCHEMA: Schema = Schema {
    migrations: &[
        include_str!("../../../sql/viewer/0001_init.sql"),
        include_str!("../../../sql/viewer/0002_triage_identity.sql"),
        include_str!("../../../sql/viewer/0003_sources_flows.sql"),
    ],
    application_id: Some(APPLICATION_ID),
};

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = SCHEMA.version();

/// Storage failures. These are never the client's fault: the HTTP layer maps them to 500.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("not a viewer database (application_id {0:#x})")]
    NotViewer(i32),
    #[error("database schema version {found} is newer than this viewer understands ({known})")]
    TooNew { found: i64, known: i64 },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Handle to the database of one data directory.
#[derive(Debug, Clone)]
pub struct Db {
    path: PathBuf,
}

impl Db {
    /// Creates the data directory if needed, opens the database, switches it to WAL and
    /// brings the schema up to date.
    pub fn open(data_dir: &Path) -> Result<Db, DbError> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join(DB_FILE);
        let mut conn = connect(&path, OpenFlags::default())?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        migrate(&mut conn)?;
        identity::fill_missing(&mut conn)?;
        Ok(Db { path })
    }

    /// A fresh connection with this crate's pragmas.
    pub fn connect(&self) -> Result<Connection, DbError> {
        connect(&self.path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Opens `path` with the pragmas every connection needs.
pub fn connect(path: &Path, flags: OpenFlags) -> Result<Connection, DbError> {
    let conn = Connection::open_with_flags(path, flags)?;
    // Imports hold the write lock for a while; other writers (triage) wait instead of
    // failing with SQLITE_BUSY.
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // WAL + NORMAL is durable across application crashes, which is what a VM needs.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Unicode lower-casing for case-insensitive search (SQLite's lower() and LIKE fold
    // ASCII only, so "Ü" would not find "ü").
    conn.create_scalar_function(
        "fold",
        1,
        rusqlite::functions::FunctionFlags::SQLITE_UTF8 | rusqlite::functions::FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| Ok(ctx.get::<Option<String>>(0)?.map(|s| s.to_lowercase())),
    )?;
    Ok(conn)
}

/// Reads `(application_id, user_version)`.
pub fn identity(conn: &Connection) -> Result<(i32, i64), DbError> {
    let app = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    let version = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    Ok((app, version))
}

/// Applies the missing migrations (see `vrun-migrate` for how a crash or a second opener
/// is handled).
pub fn migrate(conn: &mut Connection) -> Result<(), DbError> {
    SCHEMA.apply(conn).map(drop).map_err(|e| match e {
        MigrateError::Sqlite(e) => DbError::Sqlite(e),
        MigrateError::Foreign(app) => DbError::NotViewer(app),
        MigrateError::TooNew { found, known } => DbError::TooNew { found, known },
    })
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_marks_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let conn = db.connect().unwrap();
        assert_eq!(identity(&conn).unwrap(), (APPLICATION_ID, SCHEMA_VERSION));
        drop(conn);
        // Opening again is a no-op, not a second CREATE TABLE.
        Db::open(dir.path()).unwrap();
    }

    #[test]
    fn refuses_foreign_and_newer_databases() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE other (x)").unwrap();
        drop(conn);
        assert!(matches!(Db::open(dir.path()), Err(DbError::NotViewer(0))));

        std::fs::remove_file(&path).unwrap();
        Db::open(dir.path()).unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        drop(conn);
        assert!(matches!(Db::open(dir.path()), Err(DbError::TooNew { .. })));
    }
}
