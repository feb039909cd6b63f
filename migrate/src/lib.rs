//! Numbered SQLite schema migrations, applied on open; shared by agent-monitor's store and
//! the viewer's database, so both upgrade a file by the same rules.
//!
//! The schema version is SQLite's `user_version`: the number of migrations applied. Each
//! migration runs in its own `IMMEDIATE` transaction together with the version bump, and
//! the version is read again inside that transaction, so a crash mid-migration leaves the
//! previous version and two openers never apply the same step twice. A file that is newer
//! than the caller knows is refused, never downgraded.

use rusqlite::{Connection, TransactionBehavior};

/// A database's schema: its migrations in order (index + 1 is the version each produces)
/// and, if the file is marked as the caller's, its `application_id`.
pub struct Schema {
    pub migrations: &'static [&'static str],
    /// Set with the first migration and checked before every one: a file with another id,
    /// or without one and with tables in it, is not this schema's.
    pub application_id: Option<i32>,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("not this schema's database (application_id {0:#x})")]
    Foreign(i32),
    #[error("database schema version {found} is newer than this build ({known})")]
    TooNew { found: i64, known: i64 },
}

impl Schema {
    /// The version this build writes and understands.
    pub const fn version(&self) -> i64 {
        self.migrations.len() as i64
    }

    /// Applies the missing migrations; returns the versions applied, oldest first.
    pub fn apply(&self, conn: &mut Connection) -> Result<Vec<i64>, MigrateError> {
        let known = self.version();
        let mut applied = Vec::new();
        loop {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if let Some(id) = self.application_id {
                let app: i32 = tx.pragma_query_value(None, "application_id", |r| r.get(0))?;
                if app != id {
                    let tables: i64 = tx.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
                    // A fresh file has no identity yet; anything else with content is not ours.
                    if !(app == 0 && version == 0 && tables == 0) {
                        return Err(MigrateError::Foreign(app));
                    }
                }
            }
            if version > known {
                return Err(MigrateError::TooNew { found: version, known });
            }
            if version == known {
                return Ok(applied);
            }
            tx.execute_batch(self.migrations[version as usize])?;
            tx.pragma_update(None, "user_version", version + 1)?;
            if let Some(id) = self.application_id {
                tx.pragma_update(None, "application_id", id)?;
            }
            tx.commit()?;
            applied.push(version + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: Schema =
        Schema { migrations: &["CREATE TABLE a (x)", "CREATE TABLE b (y)"], application_id: Some(7) };

    #[test]
    fn applies_each_step_once() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(SCHEMA.apply(&mut conn).unwrap(), vec![1, 2]);
        assert_eq!(SCHEMA.apply(&mut conn).unwrap(), Vec::<i64>::new());
        let app: i32 = conn.pragma_query_value(None, "application_id", |r| r.get(0)).unwrap();
        assert_eq!(app, 7);
    }

    #[test]
    fn refuses_foreign_and_newer_files() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE other (x)").unwrap();
        assert!(matches!(SCHEMA.apply(&mut conn), Err(MigrateError::Foreign(0))));

        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 3).unwrap();
        let unmarked = Schema { migrations: SCHEMA.migrations, application_id: None };
        assert!(matches!(unmarked.apply(&mut conn), Err(MigrateError::TooNew { found: 3, known: 2 })));
    }
}
