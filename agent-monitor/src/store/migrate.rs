//! Numbered SQL migrations from `sql/agent-monitor/`, applied on open.
//!
//! The schema version is SQLite's `user_version`; each migration runs in its own transaction
//! together with the version bump, so a crash mid-migration leaves the previous version.

use rusqlite::Connection;

/// (version, sql) in order. Append only; never edit a released migration.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../../sql/agent-monitor/0001_init.sql")),
    (2, include_str!("../../../sql/agent-monitor/0002_pushes.sql")),
];

pub fn apply(conn: &mut Connection) -> anyhow::Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let newest = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if current > newest {
        anyhow::bail!("database schema version {current} is newer than this agent-monitor ({newest})");
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, "applied schema migration");
    }
    Ok(())
}
